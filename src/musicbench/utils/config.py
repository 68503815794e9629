"""Hydra/OmegaConf plumbing: resolvers, the config directory, instantiation helpers."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from musicbench.conf.schemas import register_schemas
from musicbench.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"


def _signature(override_dirname: str, *first: str) -> str:
    """Short hash of Hydra's override string: the run folder name (``"base"`` when there is none).

    ``first``: ``key=value`` lines hashed before the overrides, for a key the exclusion list leaves out
    but a task's folder depends on (``mb-eval``'s ``ckpt_path``). Hydra sorts the override lines and
    every ``eval.yaml`` key sorts after ``ckpt_path``, so the string is the one Hydra would build.
    """
    lines = [*first, override_dirname] if override_dirname else list(first)
    if not lines:
        return "base"
    return hashlib.sha1(",".join(lines).encode()).hexdigest()[:10]


def device_count(devices: Any) -> int:
    """``trainer.devices`` as a number of processes per node: an int as it is, a list of device ids
    (``[0, 1]``, ``"0,1"``) its length; ``-1`` and ``"auto"`` (as many as the node has, known only there)
    count as 1. The SLURM launcher starts one task per device (``conf/hydra/launcher/slurm.yaml``)."""
    if isinstance(devices, str):
        devices = devices.strip()
        if "," in devices:
            return len([d for d in devices.split(",") if d.strip()])
        devices = int(devices) if devices.lstrip("-").isdigit() else 1
    if isinstance(devices, int):
        return devices if devices > 0 else 1
    return max(1, len(devices))


def gpu_count(accelerator: Any, devices: Any, auto_means_gpu: bool = False) -> int:
    """GPUs a job needs: one per device when ``trainer.accelerator`` is ``gpu``/``cuda`` (or ``auto`` and
    ``auto_means_gpu``), else 0."""
    gpu = str(accelerator) in ("gpu", "cuda") or (str(accelerator) == "auto" and auto_means_gpu)
    return device_count(devices) if gpu else 0


def _local_gpu_count(accelerator: Any, devices: Any) -> int:
    """:func:`gpu_count` for a job on this machine: ``auto`` means the GPUs if it has CUDA."""
    auto_gpu = False
    if str(accelerator) == "auto":
        import torch

        auto_gpu = torch.cuda.is_available()
    return gpu_count(accelerator, _plain(devices), auto_gpu)


def _plain(value: Any) -> Any:
    return OmegaConf.to_object(value) if OmegaConf.is_config(value) else value


def register_resolvers() -> None:
    """Register ``mb_sig``, ``mb_abspath``, ``mb_basename`` and the submitit launchers' ``mb_device_count``,
    ``mb_local_gpus``, ``mb_slurm_gpus``, ``mb_plus_one``, ``mb_sweep_name`` (idempotent; needed before Hydra composes our
    configs)."""
    resolvers = {
        # ${mb_rank_zero:x}: x in the process of global rank 0, else null (the other processes of a
        # multi-process run started by SLURM share the run folder and leave its files to rank 0).
        "mb_rank_zero": lambda value: value if launch_rank() == 0 else None,
        # ${mb_rank_suffix:}: "_rank<k>" in a process of rank k > 0 that a cluster started (RANK or
        # SLURM_PROCID), else "" (Lightning names the processes it starts itself: train_ddp_process_<k>).
        "mb_rank_suffix": lambda: f"_rank{launch_rank()}" if launch_rank(local=False) else "",
        "mb_sig": _signature,
        "mb_abspath": lambda p: str(Path(p).expanduser().resolve()),
        # "val/sdr" -> "sdr": a metric's name in checkpoint file names.
        "mb_basename": lambda p: str(p).rsplit("/", 1)[-1],
        "mb_device_count": lambda d: device_count(_plain(d)),
        "mb_local_gpus": _local_gpu_count,
        # sbatch gets no GPU option at all (null) rather than 0 GPUs, which a cluster without GPUs may refuse.
        "mb_slurm_gpus": lambda a, d: gpu_count(a, _plain(d)) or None,
        # Loader workers + the main process.
        "mb_plus_one": lambda n: int(n) + 1,
        # ${mb_sweep_name:}: in a multirun (-m) job, the name of its sweep folder; else null.
        "mb_sweep_name": _sweep_name,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def _sweep_name() -> str | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(HydraConfig.get().sweep.dir).name


def set_threads(threads: int | None) -> None:
    """Fix torch's intra-op CPU thread count (``None``: leave torch's default, one per core).

    Float reductions are split per thread, so bit-identical results need the same count on every machine.
    """
    if threads is None:
        return
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads={threads!r}: expected a positive integer or null (torch's default)")
    import torch

    torch.set_num_threads(threads)
    # Lightning's multi-process launcher divides the cores between its processes (torch.set_num_threads)
    # unless this variable is set; the processes it starts inherit it.
    os.environ["OMP_NUM_THREADS"] = str(threads)


def launch_rank(local: bool = True) -> int:
    """The global rank of this process as its launcher says (``RANK``, else ``SLURM_PROCID``, else, with
    ``local``, ``LOCAL_RANK``), before any process group exists; 0 for a process started alone."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK") if local else ("RANK", "SLURM_PROCID"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers (for checkpoints, JSON, digests)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


# A value that is exactly one reference to a ``paths`` key, e.g. ``${paths.chorales_root}``.
PATHS_REF = re.compile(r"^\$\{paths\.(\w+)\}$")
# Keys of ``paths`` that say where outputs go, not where data is: never linked to data values.
OUTPUT_PATHS = ("output_dir", "output_root")


def stored_config(cfg: DictConfig) -> dict[str, Any]:
    """The run config as ``mb-train`` stores it (``config.yaml``, every checkpoint): resolved, except that

    - ``paths`` values are absolute (a relative ``paths.chorales_root=data/chorales`` on the command line
      means the folder it named then, wherever the config is read later), and
    - ``data`` values that are exactly ``${paths.<key>}`` stay that reference, so that ``mb-eval`` resolves
      them against its own ``paths`` (command-line overrides, environment variables; by default the
      stored, absolute value: ``conf/paths/default.yaml``).
    """
    resolved = to_container(cfg)
    paths = resolved.get("paths")
    if isinstance(paths, dict):
        resolved["paths"] = {k: _absolute(v) for k, v in paths.items()}
    if isinstance(cfg.get("data"), DictConfig):
        raw = OmegaConf.to_container(cfg.data, resolve=False)
        resolved["data"] = _keep_paths_refs(raw, resolved["data"])
    return resolved


def link_data_paths(config: dict[str, Any]) -> dict[str, Any]:
    """A stored run config whose ``data`` values that equal a stored ``paths`` value are replaced by a
    ``${paths.<key>}`` reference (configs stored before :func:`stored_config` kept the references).

    A config that already holds references is returned as it is.
    """
    data, paths = config.get("data"), config.get("paths")
    if not isinstance(data, dict) or not isinstance(paths, dict) or _has_paths_refs(data):
        return config
    by_value: dict[str, str] = {}
    for key, value in paths.items():
        if key not in OUTPUT_PATHS and isinstance(value, str):
            by_value.setdefault(value, key)  # the first key with a value wins
    return {**config, "data": _link(data, by_value)}


def _absolute(value: Any) -> Any:
    return str(Path(value).expanduser().resolve()) if isinstance(value, str) and value else value


def _keep_paths_refs(raw: Any, resolved: Any) -> Any:
    if isinstance(raw, dict) and isinstance(resolved, dict):
        return {k: _keep_paths_refs(raw.get(k), v) for k, v in resolved.items()}
    if isinstance(raw, list) and isinstance(resolved, list) and len(raw) == len(resolved):
        return [_keep_paths_refs(r, v) for r, v in zip(raw, resolved, strict=True)]
    if isinstance(raw, str) and PATHS_REF.match(raw):
        return raw
    return resolved


def _has_paths_refs(node: Any) -> bool:
    if isinstance(node, dict):
        return any(_has_paths_refs(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_paths_refs(v) for v in node)
    return isinstance(node, str) and bool(PATHS_REF.match(node))


def _link(node: Any, by_value: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _link(v, by_value) for k, v in node.items()}
    if isinstance(node, list):
        return [_link(v, by_value) for v in node]
    if isinstance(node, str) and node in by_value:
        return f"${{paths.{by_value[node]}}}"
    return node


register_resolvers()
register_schemas()
