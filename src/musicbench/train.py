"""``mb-train``: compose the config, train, then evaluate the best checkpoint on the test split."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities.exceptions import SIGTERMException

from musicbench.checkpoint_io import AtomicCheckpointIO
from musicbench.checkpoints import (
    ConfigInCheckpoint,
    RNGStateInCheckpoint,
    best_checkpoint,
    check_resumed_config,
    load_checkpoint,
    resume_checkpoint,
    resume_step,
)
from musicbench.data.identity import check_run_data, dataset_identity, naming_root_key
from musicbench.errors import ConfigError, reported_errors
from musicbench.evaluation.model import run_test
from musicbench.preemption import PreemptionCheckpoint, cluster_plugins
from musicbench.utils.config import CONFIG_DIR, set_threads, stored_config
from musicbench.utils.files import write_text_atomic
from musicbench.utils.hashcache import set_cache_dir
from musicbench.utils.instantiate import instantiate_dict
from musicbench.utils.loggers import close_loggers, resume_loggers
from musicbench.utils.provenance import digest_of
from musicbench.utils.tracking import log_params, log_test_files, run_params

log = logging.getLogger(__name__)
# Lightning 2.6's own use of torch's pytree API warns on every fit; nothing a user can act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train ``cfg.model`` on ``cfg.data``; if ``cfg.test``, evaluate the best checkpoint.

    Returns ``(metrics, objects)``: the logged metrics (plus the test summary) and the built objects.
    """
    pl.seed_everything(cfg.seed, workers=True)
    set_threads(cfg.get("threads"))
    set_cache_dir(cfg.paths.get("cache_dir"))
    apply_step_budget(cfg.trainer)
    out_dir = Path(cfg.paths.output_dir)
    resolved = stored_config(cfg)

    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    with naming_root_key(cfg):
        identity = dataset_identity(datamodule, progress=_progress(cfg))
    # Not config options: mb-eval rebuilds the model from the config inside the checkpoint, and a resumed
    # run continues with the RNG states of the uninterrupted one.
    # A signal (SLURM preemption or requeue, a job's time limit) writes last.ckpt and exits; the same
    # command resumes from it as if never stopped.
    preemption = PreemptionCheckpoint(out_dir / "checkpoints")
    callbacks = [
        *instantiate_dict(cfg.get("callbacks"), "callbacks"),
        ConfigInCheckpoint(resolved),
        RNGStateInCheckpoint(),
        preemption,
    ]
    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))
    # fast_dev_run saves nothing, so it does not pick up a run folder's last.ckpt either (unless told to).
    ckpt = None if fast_dev_run and cfg.ckpt_path is None else resume_checkpoint(cfg.ckpt_path, out_dir)
    if ckpt and cfg.ckpt_path in (None, "last"):
        # The run folder's own checkpoint: continued only with the config it was trained with.
        check_resumed_config(ckpt, resolved, out_dir)
    loggers = instantiate_dict(cfg.get("logger"), "logger")
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO(), *cluster_plugins()],
    )
    check_launch(trainer)
    # With several processes (DDP) every one runs this function, with the same run folder: Lightning starts
    # the others inside trainer.fit (re-running the command with hydra.run.dir set), or SLURM starts them
    # all. The trainer knows the global rank from here on; only rank 0 writes the run folder's files.
    writer = trainer.is_global_zero
    # Before anything is written: a run folder computed on other data is refused, not resumed.
    with naming_root_key(cfg):
        check_run_data(out_dir, identity, record=writer)
    if writer:
        write_text_atomic(out_dir / "config.yaml", OmegaConf.to_yaml(resolved))
        if not fast_dev_run:  # (Lightning replaces the loggers under fast_dev_run)
            resume_loggers(loggers, resume_step(ckpt) if ckpt else 0)
            log_params(loggers, run_params(resolved, out_dir, identity.get("digest")))
    objects = {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}
    status = "failed"
    try:
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
        except SIGTERMException as exc:
            raise preemption.exit(exc) from None
        _warn_if_time_capped(trainer)
        monitored = cfg.get("optimized_metric")
        if ckpt and monitored and monitored not in trainer.callback_metrics and not trainer.fast_dev_run:
            # Resumed from a checkpoint written at the end of training (e.g. a sweep killed before the
            # trial was recorded): nothing was trained or validated, so validate once for the metric, without
            # logging it again (the run's metric history already ends with it).
            log.info("training had already ended in %s: validating once for %s", ckpt, monitored)
            loggers_of_fit, trainer.loggers = trainer.loggers, []
            trainer.validate(model, datamodule=datamodule, verbose=False)
            trainer.loggers = loggers_of_fit
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        # The test stage runs in rank 0 alone (its evaluation is not distributed); the others end here.
        if cfg.get("test") and not trainer.fast_dev_run and trainer.is_global_zero:
            summary = test_best(cfg, model, datamodule, trainer, out_dir)
            metrics["test/summary"] = summary
            objects["summary"] = summary
            log_test_files(loggers, out_dir)
        status = "success"
    finally:
        close_loggers(loggers, status)  # close trackers even when training fails
    return metrics, objects


def check_launch(trainer: pl.Trainer) -> None:
    """Refuse a multirun (``-m``) whose trainer would start its other processes itself.

    Lightning starts the processes of ``devices > 1`` by re-running the command line, which under ``-m``
    is the whole sweep again. One process per device has to come from outside then: a cluster launcher
    that starts ``trainer.devices`` tasks per node (SLURM's ``srun``), where Lightning only joins them.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    env = getattr(trainer.strategy, "cluster_environment", None)
    if trainer.world_size > 1 and env is not None and not env.creates_processes_externally:
        raise ConfigError(
            f"trainer.devices={trainer.num_devices} in a multirun (-m): Lightning would start the other "
            "processes by re-running the command line, the whole sweep included. Run each configuration as "
            "its own mb-train, or use a launcher that starts one task per device (SLURM: "
            "ntasks_per_node = trainer.devices)"
        )


def apply_step_budget(trainer_cfg: DictConfig) -> None:
    """A positive ``trainer.max_steps`` is the budget: set ``max_epochs`` to -1 (no epoch limit).

    Lightning stops at whichever limit comes first, so a preset's ``max_epochs`` (``debug=tiny``: 2)
    would otherwise end a run before the ``max_steps`` a user asked for. Changes ``trainer_cfg`` in
    place, before the config is saved, so the run folder and checkpoints record what ran.
    """
    max_steps = trainer_cfg.get("max_steps")
    if max_steps is None or max_steps == -1 or trainer_cfg.get("max_epochs") == -1:
        return
    log.info(
        "trainer.max_steps=%s is the budget: trainer.max_epochs=%s is replaced by -1 (no epoch limit)",
        max_steps,
        trainer_cfg.get("max_epochs"),
    )
    with open_dict(trainer_cfg):
        trainer_cfg.max_epochs = -1


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
    """Digest of the experiment's config: everything but where files are (``paths``, and data roots, which
    refer to them) and Hydra's own. What the data is, is recorded by its own digest (``data.json``)."""
    return digest_of({k: v for k, v in stored_config(cfg).items() if k not in ("paths", "hydra")})


def _progress(cfg: DictConfig) -> bool | None:
    """Progress bars while fingerprinting the data: off where the evaluator's are, else on a terminal."""
    return False if cfg.get("evaluator") is not None and cfg.evaluator.get("progress") is False else None


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Entry point of ``mb-train``; returns ``cfg.optimized_metric`` for sweepers."""
    with reported_errors():  # an expected failure: one `error:` line, exit status 1
        metrics, _ = train(cfg)
    value = metrics.get(cfg.get("optimized_metric") or "")
    return float(value) if value is not None else None


if __name__ == "__main__":
    main()
