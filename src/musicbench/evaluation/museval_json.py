"""Read and write museval's per-track JSON format, to compare with SiSEC / museval result files.

museval writes ``{"targets": [{"name": <source>, "frames": [{"time": s, "duration": s,
"metrics": {"SDR": dB, "SIR": dB, "SAR": dB, "ISR": dB}}, ...]}, ...]}`` per track and aggregates with
``EvalStore`` (median over frames, then median over tracks; NaN frames skipped).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from musicbench.evaluation.results import track_value
from musicbench.utils.files import write_json_atomic

# Our metric names -> museval's.
MUSEVAL_METRICS = {"sdr": "SDR", "sir": "SIR", "sar": "SAR", "isr": "ISR"}


def to_museval(
    result: Mapping[str, Any], system: str = "model", win_s: float = 1.0, hop_s: float = 1.0
) -> dict:
    """One of our ``results/<track>.json`` (BSSEval frames of ``system``) -> museval's track JSON dict.

    Frame ``i`` starts at ``i * hop_s`` seconds and lasts ``win_s`` seconds (museval's defaults: 1 s).
    """
    frames = result.get("frames", {}).get(system)
    if not frames:
        raise ValueError(
            f"track {result.get('track')}: no framewise values for system '{system}' "
            "(evaluate with the bsseval metric)"
        )
    targets = []
    for source, per_metric in frames.items():
        missing = [m for m in MUSEVAL_METRICS if m not in per_metric]
        if missing:
            raise ValueError(f"track {result.get('track')}/{source}: framewise {missing} missing")
        n = len(per_metric["sdr"])
        targets.append(
            {
                "name": source,
                "frames": [
                    {
                        "time": i * hop_s,
                        "duration": win_s,
                        "metrics": {theirs: per_metric[ours][i] for ours, theirs in MUSEVAL_METRICS.items()},
                    }
                    for i in range(n)
                ],
            }
        )
    return {"targets": targets}


def from_museval(data: Mapping[str, Any], track: str, system: str = "model") -> dict[str, Any]:
    """museval's track JSON dict -> a result in our schema (framewise values and their track medians)."""
    scores: dict[str, dict[str, float]] = {}
    frames: dict[str, dict[str, list[float]]] = {}
    for target in data["targets"]:
        source = target["name"]
        frames[source] = {
            ours: [_as_float(f["metrics"][theirs]) for f in target["frames"]]
            for ours, theirs in MUSEVAL_METRICS.items()
        }
        scores[source] = {m: track_value(v) for m, v in frames[source].items()}
    return {
        "track": track,
        "sources": list(scores),
        "scores": {system: scores},
        "frames": {system: frames},
        "notes": [],
    }


def write_museval_dir(
    results: Iterable[Mapping[str, Any]], out_dir: str | Path, subset: str = "test", system: str = "model"
) -> list[Path]:
    """Write ``<out_dir>/<subset>/<track>.json`` in museval's format (the layout ``EvalStore.add_eval_dir`` reads)."""
    paths = []
    for res in results:
        path = Path(out_dir) / subset / f"{res['track']}.json"
        write_json_atomic(path, to_museval(res, system))
        paths.append(path)
    return paths


def read_museval_dir(path: str | Path, subset: str = "test", system: str = "model") -> list[dict[str, Any]]:
    """Read a folder of museval track JSON files (``<path>/<subset>/**/*.json``) into our result dicts."""
    files = sorted(Path(path).glob(f"{subset}/**/*.json"))
    if not files:
        raise FileNotFoundError(f"no museval JSON files under {Path(path) / subset}")
    return [from_museval(json.loads(p.read_text()), p.stem, system) for p in files]


def _as_float(v: Any) -> float:
    return float("nan") if v is None else float(v)
