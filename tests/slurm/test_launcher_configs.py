"""The launcher configs take their resources from the trainer config; the shard merge command (no cluster
needed)."""

from __future__ import annotations

import shutil

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from musicbench.evaluation.sharding import merge_command
from musicbench.utils.config import CONFIG_DIR, device_count, gpu_count


def _launcher(name: str, *overrides: str) -> dict:
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # ${hydra.sweep.dir} etc. resolve
    try:
        return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.parametrize(
    "devices,count", [(1, 1), (4, 4), (-1, 1), ("auto", 1), ("2", 2), ("0,1", 2), ([0, 1, 3], 3)]
)
def test_device_count(devices, count):
    assert device_count(devices) == count


def test_gpu_count_follows_the_accelerator():
    assert gpu_count("gpu", 2) == 2 and gpu_count("cuda", [0]) == 1
    assert gpu_count("cpu", 2) == 0 and gpu_count("auto", 2) == 0 and gpu_count("auto", 2, True) == 2


def test_slurm_launcher_takes_its_resources_from_the_trainer():
    plain = _launcher("train", "hydra/launcher=slurm")
    assert plain["_target_"].endswith("SlurmLauncher")
    assert (plain["nodes"], plain["tasks_per_node"], plain["gpus_per_node"], plain["cpus_per_task"]) == (
        1,
        1,
        None,
        1,
    )
    assert plain["submitit_folder"].endswith("/outputs/train/default/.submitit/%j")
    ddp = _launcher(
        "train",
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "data.num_workers=3",
    )
    assert (ddp["nodes"], ddp["tasks_per_node"], ddp["gpus_per_node"], ddp["cpus_per_task"]) == (2, 4, 4, 4)
    # mb-eval has no trainer: one task, no GPU request.
    ev = _launcher("eval", "hydra/launcher=slurm", "ckpt_path=x.ckpt")
    assert (ev["nodes"], ev["tasks_per_node"], ev["gpus_per_node"]) == (1, 1, None)


def test_cluster_settings_come_from_local_slurm_yaml(tmp_path):
    # The committed example, as a user installs it in the local/ folder of their own config dir.
    (tmp_path / "local").mkdir()
    shutil.copy(CONFIG_DIR / "local" / "slurm.yaml.example", tmp_path / "local" / "slurm.yaml")
    searchpath = f"hydra.searchpath=[file://{tmp_path}]"
    launcher = _launcher("train", "hydra/launcher=slurm", searchpath, "hydra.launcher.qos=high")
    assert (launcher["partition"], launcher["account"], launcher["qos"]) == ("gpu", "my_project", "high")
    assert launcher["additional_parameters"] == {"mail-type": "FAIL"}
    # Only the SLURM launcher reads it; an example in conf/local/ itself is never read (not .yaml).
    assert "partition" not in _launcher("train", searchpath)
    assert _launcher("train", "hydra/launcher=slurm")["partition"] is None


def test_local_launcher_runs_one_process_per_job():
    local = _launcher("train", "hydra/launcher=local", "trainer=cpu", "trainer.devices=2")
    assert local["_target_"].endswith("LocalLauncher")
    assert (local["tasks_per_node"], local["gpus_per_node"]) == (1, 0)


def test_merge_command_replaces_a_complete_shard_sweep():
    argv = ["-m", "hydra/launcher=slurm", "ckpt_path=run", "shard=0/3,1/3,2/3", "threads=1"]
    assert merge_command(argv) == ["-m", "hydra/launcher=slurm", "ckpt_path=run", "merge=true", "threads=1"]
    assert merge_command(["-m", "ckpt_path=run", "+shard=1/2,0/2"]) == ["-m", "ckpt_path=run", "merge=true"]
    # Not every shard of N, or no shards: nothing to merge here.
    assert merge_command(["-m", "ckpt_path=run", "shard=0/3,1/3"]) is None
    assert merge_command(["-m", "ckpt_path=run", "shard=0/2,1/3"]) is None
    assert merge_command(["-m", "ckpt_path=run", "split=test,valid"]) is None
