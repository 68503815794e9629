"""``mb-cadenza``: run a Cadenza recipe's stages (enhance, evaluate, merge, package) into one run folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, open_dict

from musicbench.errors import ConfigError, reported_errors
from musicbench.evaluation.runner import parse_shard
from musicbench.pipelines.cadenza.report import print_summary
from musicbench.utils.config import CONFIG_DIR, set_threads
from musicbench.utils.hashcache import set_cache_dir

log = logging.getLogger(__name__)
STAGES = ("enhance", "evaluate", "merge", "package")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run ``cfg.stages`` of ``cfg.pipeline`` in ``cfg.paths.output_dir``; returns what the last stage returned
    under its name (``{"summary": ...}`` after evaluate/merge, ``{"submission": path}`` after package)."""
    unknown = [s for s in cfg.stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"stages={list(cfg.stages)}: unknown {unknown}; stages are {', '.join(STAGES)}")
    set_threads(cfg.get("threads"))
    set_cache_dir(cfg.paths.get("cache_dir"))
    pipeline_cfg = cfg.pipeline
    if cfg.get("checkpoint"):
        with open_dict(pipeline_cfg):
            pipeline_cfg.demixers.model = {
                "_target_": "musicbench.pipelines.cadenza.demixers.CheckpointDemixer",
                "ckpt_path": str(cfg.checkpoint),
            }
    pipeline = hydra.utils.instantiate(pipeline_cfg, _convert_="partial")
    out_dir = Path(cfg.paths.output_dir)
    shard = parse_shard(cfg.get("shard"))
    out: dict[str, Any] = {}
    for stage in cfg.stages:
        log.info("%s: %s%s", stage, out_dir, f" (shard {shard[0]}/{shard[1]})" if shard else "")
        if stage == "enhance":
            pipeline.enhance(out_dir, shard)
        elif stage == "evaluate":
            pipeline.evaluate(out_dir, shard)
            if shard is None:
                out["summary"] = summary = pipeline.merge(out_dir)
                print_summary(summary)
        elif stage == "merge":
            out["summary"] = summary = pipeline.merge(out_dir)
            print_summary(summary)
        else:
            out["submission"] = pipeline.package(out_dir, cfg.submission.system, cfg.submission.team_id)
    log.info("results in %s", out_dir)
    return out


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="cadenza")
def main(cfg: DictConfig) -> None:
    """Entry point of ``mb-cadenza``."""
    with reported_errors():  # an expected failure: one `error:` line, exit status 1
        run(cfg)


if __name__ == "__main__":
    main()
