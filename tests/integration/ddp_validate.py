"""Validate one set of weights with the real configs on ``trainer.devices`` processes (a helper script of
``test_ddp.py``, not a test module).

    python ddp_validate.py OUT_DIR [overrides of train.yaml...] [ckpt_path=<checkpoint>]

Every process writes ``OUT_DIR/rank<k>.json`` (its count of validation batches); rank 0 also writes
``OUT_DIR/metrics.json`` (the logged metrics, the world size and the validation set's size). The weights
are those of ``seed`` (the same in every process), or those of the checkpoint ``ckpt_path``.
It is a script because Lightning starts the other processes by running the same command again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir

from musicbench.checkpoints import load_checkpoint
from musicbench.utils.config import CONFIG_DIR


def main(out_dir: Path, overrides: list[str]) -> None:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={out_dir}", *overrides])
    pl.seed_everything(cfg.seed)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    if cfg.ckpt_path:
        model.load_state_dict(load_checkpoint(cfg.ckpt_path)[0]["state_dict"])
    trainer = hydra.utils.instantiate(
        cfg.trainer, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.validate(model, datamodule=datamodule)
    rank = trainer.global_rank
    (out_dir / f"rank{rank}.json").write_text(json.dumps({"batches": trainer.num_val_batches[0]}))
    if trainer.is_global_zero:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        info = {"world_size": trainer.world_size, "items": len(datamodule.valid_set)}
        (out_dir / "metrics.json").write_text(json.dumps({"metrics": metrics, **info}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
