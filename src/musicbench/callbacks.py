"""Lightning callbacks of the framework (configured in conf/callbacks/)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

CONFIG_KEY = "musicbench_config"


class ConfigInCheckpoint(pl.Callback):
    """Stores the resolved run config inside every checkpoint (``checkpoint["musicbench_config"]``).

    ``mb-eval`` rebuilds the model from it, so a checkpoint is usable without the run folder.
    The config is attached by the train task (``callback.config = ...``) after instantiation.
    """

    def __init__(self) -> None:
        self.config: dict[str, Any] | None = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        if self.config is not None:
            checkpoint[CONFIG_KEY] = self.config
