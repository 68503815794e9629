"""``mb-train``: compose the config, train, then evaluate the best checkpoint on the test split."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from musicbench.checkpoint_io import AtomicCheckpointIO
from musicbench.checkpoints import (
    ConfigInCheckpoint,
    RNGStateInCheckpoint,
    best_checkpoint,
    load_checkpoint,
    resume_checkpoint,
    resume_step,
)
from musicbench.evaluation.model import run_test
from musicbench.utils.config import CONFIG_DIR, set_threads, to_container
from musicbench.utils.files import write_text_atomic
from musicbench.utils.instantiate import instantiate_dict
from musicbench.utils.loggers import resume_loggers
from musicbench.utils.provenance import digest_of

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train ``cfg.model`` on ``cfg.data``; if ``cfg.test``, evaluate the best checkpoint.

    Returns ``(metrics, objects)``: the logged metrics (plus the test summary) and the built objects.
    """
    pl.seed_everything(cfg.seed, workers=True)
    set_threads(cfg.get("threads"))
    out_dir = Path(cfg.paths.output_dir)
    resolved = to_container(cfg)
    write_text_atomic(out_dir / "config.yaml", OmegaConf.to_yaml(resolved))

    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    # Not config options: mb-eval rebuilds the model from the config inside the checkpoint, and a resumed
    # run continues with the RNG states of the uninterrupted one.
    callbacks = [
        *instantiate_dict(cfg.get("callbacks"), "callbacks"),
        ConfigInCheckpoint(resolved),
        RNGStateInCheckpoint(),
    ]
    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))
    # fast_dev_run saves nothing, so it does not pick up a run folder's last.ckpt either (unless told to).
    ckpt = None if fast_dev_run and cfg.ckpt_path is None else resume_checkpoint(cfg.ckpt_path, out_dir)
    loggers = instantiate_dict(cfg.get("logger"), "logger")
    if not fast_dev_run:  # (Lightning replaces the loggers under fast_dev_run)
        resume_loggers(loggers, resume_step(ckpt) if ckpt else 0)
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    objects = {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
        _warn_if_time_capped(trainer)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if cfg.get("test") and not trainer.fast_dev_run:
            summary = test_best(cfg, model, datamodule, trainer, out_dir)
            metrics["test/summary"] = summary
            objects["summary"] = summary
    finally:
        for lg in loggers:  # close trackers even when training fails
            lg.finalize("success")
    return metrics, objects


def _warn_if_time_capped(trainer: pl.Trainer) -> None:
    """Say so when ``trainer.max_time`` ended training: then the result depends on the machine's speed."""
    from pytorch_lightning.callbacks import Timer

    for cb in trainer.callbacks:
        if isinstance(cb, Timer) and cb.time_remaining() is not None and cb.time_remaining() <= 0:
            log.warning(
                "training stopped at trainer.max_time after %d steps, before its step/epoch budget: "
                "results depend on this machine's speed and load (raise trainer.max_time for a fixed budget)",
                trainer.global_step,
            )


def test_best(cfg: DictConfig, model: pl.LightningModule, datamodule, trainer: pl.Trainer, out_dir: Path):
    """The test stage: reload the best checkpoint (else keep the in-memory weights) and run the evaluator."""
    ckpt = best_checkpoint(trainer)
    if ckpt is not None:
        model.load_state_dict(load_checkpoint(ckpt)[0]["state_dict"])
        log.info("testing best checkpoint %s", ckpt)
    else:
        log.warning("no best checkpoint found: testing the in-memory weights")
    datamodule.setup("test")
    return run_test(
        model,
        datamodule,
        hydra.utils.instantiate(cfg.evaluator),
        out_dir,
        checkpoint=ckpt,
        model_target=cfg.model._target_,
        run_name=cfg.name,
        in_memory_id=f"in-memory-{trainer.global_step}",
        config_digest=_config_digest(cfg),
    )


def _config_digest(cfg: DictConfig) -> str:
    """Digest of the experiment's config: everything but where files are (``paths``) and Hydra's own."""
    return digest_of({k: v for k, v in to_container(cfg).items() if k not in ("paths", "hydra")})


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Entry point of ``mb-train``; returns ``cfg.optimized_metric`` for sweepers."""
    metrics, _ = train(cfg)
    value = metrics.get(cfg.get("optimized_metric") or "")
    return float(value) if value is not None else None


if __name__ == "__main__":
    main()
