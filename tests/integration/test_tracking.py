"""A tiny training with every tracker (``logger=many``), read back with each tracker's own reader: the
offline W&B run file, MLflow's client on the SQLite store, TensorBoard's event reader. No network."""

import json
import struct
import time
from pathlib import Path

import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from musicbench.train import train
from musicbench.utils.config import CONFIG_DIR

pytestmark = pytest.mark.slow

AUDIO = "val_examples/0/mixture"
IMAGE = "val_examples/0/spectrograms"


def _cfg(out_dir: Path, chorales_root: Path, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                "debug=tiny",
                f"paths.output_dir={out_dir}",
                f"paths.output_root={out_dir.parent}",  # the MLflow store goes here
                f"paths.chorales_root={chorales_root}",
                "callbacks.progress_bar=null",
                *overrides,
            ],
        )


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_chorales_root):
    """One tiny training (2 epochs) and test with CSV, TensorBoard, MLflow and W&B: its run folder."""
    out = tmp_path_factory.mktemp("tracking") / "run1"
    # The global-SDR evaluator: the test stage in a second (BSSEval takes most of a tiny run).
    train(_cfg(out, tiny_chorales_root, "logger=many", "evaluator=global_sdr"))
    return out


# --- W&B ---------------------------------------------------------------------------------------------
def wandb_records(path: Path, block: int = 32768):
    """The records of a ``.wandb`` file: W&B's protobuf ``Record`` messages in LevelDB's log format (a
    7-byte file header, then 32 KiB blocks of chunks: crc32, length, type (1 full, 2 first, 3 middle,
    4 last), payload)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, parts = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):
            parts = chunk
        elif kind in (3, 4):
            parts += chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(parts)
            yield record


def complete_wandb_records(path: Path, timeout: float = 60.0) -> list:
    """The records of a finished run's ``.wandb`` file. W&B's service process writes the file on its own
    and may still be flushing it just after the run has finished: read it again until it ends with the
    run's ``exit`` record."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = list(wandb_records(path))
        except Exception:  # a record being written: read again
            records = []
        if (records and records[-1].WhichOneof("record_type") == "exit") or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def test_wandb_offline_run_holds_config_metrics_audio_and_the_evaluation(run):
    (run_file,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    records = complete_wandb_records(run_file)
    kinds = [r.WhichOneof("record_type") for r in records]
    (info,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert info.project == "musicbench" and info.run_group == ""  # a single run: no sweep group
    config = {
        u.key: json.loads(u.value_json) for r in records if r.HasField("config") for u in r.config.update
    }
    assert config["run.signature"] == run.name and config["model._target_"].endswith("MaskSeparator")
    assert config["run.data_digest"] == json.loads((run / "data.json").read_text())["digest"]
    history: dict[tuple[str, ...], list] = {}
    for r in records:
        if r.HasField("history"):
            for item in r.history.item:
                history.setdefault(tuple(item.nested_key) or (item.key,), []).append(
                    json.loads(item.value_json)
                )
    assert len(history[("val/sdr",)]) == 2  # one per epoch
    assert history[(AUDIO, "_type")] == ["audio-file"] and history[(IMAGE, "_type")] == ["image-file"]
    wav = run_file.parent / "files" / history[(AUDIO, "path")][0]
    audio, sr = sf.read(wav)
    assert sr == 44100 and audio.shape == (2 * 44100, 2)  # the 2-s validation item, stereo
    (artifact,) = [r.artifact for r in records if r.HasField("artifact")]
    assert artifact.type == "evaluation"
    assert {"summary.json", "scores.csv"} <= {c.path for c in artifact.manifest.contents}
    assert kinds[-1] == "exit" and records[-1].exit.exit_code == 0


# --- MLflow ------------------------------------------------------------------------------------------
def _artifacts(client, run_id, path=None):
    for a in client.list_artifacts(run_id, path):
        yield from (_artifacts(client, run_id, a.path) if a.is_dir else [a.path])


def test_mlflow_run_holds_params_metrics_audio_spectrogram_and_summary(run):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run.parent}/mlflow.db")
    (found,) = client.search_runs([client.get_experiment_by_name("default").experiment_id])
    assert found.info.status == "FINISHED" and found.info.run_name == run.name
    assert found.data.params["run.signature"] == run.name and found.data.params["seed"] == "42"
    assert [m.step for m in client.get_metric_history(found.info.run_id, "val/sdr")] == [1, 3]
    files = set(_artifacts(client, found.info.run_id))
    example = "validation/epoch0000/val_examples/0"
    assert {f"{example}/mixture.wav", f"{example}/soprano_model.wav", f"{example}/spectrograms.png"} <= files
    assert {"test/summary.json", "test/scores.csv"} <= files and any(
        f.startswith("test/results/") for f in files
    )
    local = client.download_artifacts(found.info.run_id, "test/summary.json", str(run.parent / "dl"))
    assert json.loads(Path(local).read_text()) == json.loads((run / "summary.json").read_text())


# --- TensorBoard -------------------------------------------------------------------------------------
def test_tensorboard_events_hold_audio_and_spectrogram_images(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"audio": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert {AUDIO, "val_examples/0/bass/reference", "val_examples/0/bass/model"} <= set(tags["audio"])
    assert tags["images"] == [IMAGE] and "val/sdr" in tags["scalars"]
    (clip,) = events.Audio(AUDIO)
    assert clip.sample_rate == 44100 and clip.encoded_audio_string[:4] == b"RIFF"
    assert "test/summary/text_summary" in tags["tensors"]


def test_a_failed_training_closes_its_tracker_runs_as_failed(tmp_path, tiny_chorales_root, monkeypatch):
    from mlflow.tracking import MlflowClient

    from musicbench.models.separation import MaskSeparator

    def broken(self, batch, batch_idx):
        raise RuntimeError("broken step")

    monkeypatch.setattr(MaskSeparator, "training_step", broken)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="broken step"):
        train(_cfg(out, tiny_chorales_root, "logger=many", "test=false"))
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (found,) = client.search_runs([client.get_experiment_by_name("default").experiment_id])
    assert found.info.status == "FAILED"
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    assert [r.exit.exit_code for r in complete_wandb_records(run_file) if r.HasField("exit")] == [1]
