"""The base LightningModule of every model: optimizers, full-track inference and the evaluation interface.

A model family (separation, restoration, adversarial restoration) subclasses :class:`System` and defines
its one-pass :meth:`System.estimate` and its training/validation steps. The evaluation runner only calls
:meth:`System.estimate_systems`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn

from musicbench.audio.chunking import chunked_apply
from musicbench.errors import UserError
from musicbench.evaluation.systems import MODEL

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., object]


class NonFiniteTrainingError(UserError, RuntimeError):
    """A training loss or the monitored validation metric is NaN/±inf; training stops before any checkpoint
    of that state is written."""


class FiniteGuard(pl.Callback):
    """Stops training on a non-finite loss or monitored metric, before a checkpoint can record it.

    - Every loss is checked just before its backward pass (``on_before_backward``: automatic and manual
      optimisation alike), so no optimizer step applies a NaN gradient.
    - After validation, the metric of every ``ModelCheckpoint`` (``monitor``, e.g. ``val/sdr``) is checked in
      ``on_validation_end``. Lightning runs checkpoint callbacks after all others, so this runs first: a NaN
      metric never becomes a "best" checkpoint (Lightning would save it as the first best, ``sdrnan``).

    :class:`System` adds it to every training through ``configure_callbacks``.
    """

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        finite = torch.isfinite(loss.detach())
        if not bool(finite.all()):
            value = float(loss.detach()[~finite].flatten()[0])
            raise NonFiniteTrainingError(
                f"training loss is {value} at step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}): no checkpoint of this state is written. Check the data "
                "(mb-data verify) and lower the learning rate (model.optimizer.lr) or enable gradient clipping "
                "(trainer.gradient_clip_val)"
            )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return  # as ModelCheckpoint: only validations during fit can save checkpoints
        for cb in trainer.checkpoint_callbacks:
            monitor = getattr(cb, "monitor", None)
            value = trainer.callback_metrics.get(monitor) if monitor else None
            if value is not None and not bool(torch.isfinite(torch.as_tensor(value)).all()):
                raise NonFiniteTrainingError(
                    f"validation metric {monitor} is {float(value)} after epoch {trainer.current_epoch} "
                    f"(step {trainer.global_step}): training stops before a checkpoint ranks it as best. "
                    "The model's estimates are not finite: lower the learning rate (model.optimizer.lr) or "
                    "enable gradient clipping (trainer.gradient_clip_val)"
                )


def track_seed(name: str, base: int = 0) -> int:
    """A stable 31-bit seed for a track name (CRC32; Python's ``hash`` is salted per process).

    Stochastic models seed their per-track noise with it, so a rerun draws the same samples.
    """
    return (zlib.crc32(name.encode("utf-8")) + int(base)) % (2**31 - 1)


def build_optimizer(
    optimizer: OptimizerFactory, scheduler: SchedulerFactory | None, params: Iterable[torch.nn.Parameter]
) -> tuple[torch.optim.Optimizer, object | None]:
    """``(optimizer(params=params), scheduler(optimizer=...) or None)`` from partial factories
    (``_partial_: true`` configs)."""
    opt = optimizer(params=params)
    return opt, (scheduler(optimizer=opt) if scheduler is not None else None)


class System(pl.LightningModule):
    """Owns what every model shares: the optimizer and scheduler factories, full-track inference by
    overlap-add of chunks, and the systems it gives the evaluation runner.

    Args:
        optimizer: partial optimizer, called with the trainable parameters (``None``: nothing to train).
        scheduler: optional partial LR scheduler, called with the optimizer.
        sample_rate: Hz; converts the inference settings from seconds to samples.
        chunk_seconds, context_seconds, crossfade_seconds: full-track inference: chunks of
            ``chunk_seconds``, each seeing ``context_seconds`` of audio on either side, joined with
            cross-fades of ``crossfade_seconds`` (no clicks at the seams).

    Subclasses define :meth:`estimate` (one pass over a chunk) and, where the STFT needs it, :attr:`align`.
    """

    def __init__(
        self,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        sample_rate: int = 44100,
        chunk_seconds: float = 30.0,
        context_seconds: float = 3.0,
        crossfade_seconds: float = 1.0,
    ) -> None:
        super().__init__()
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.sample_rate = int(sample_rate)
        self.chunk_seconds, self.context_seconds, self.crossfade_seconds = (
            chunk_seconds,
            context_seconds,
            crossfade_seconds,
        )

    # --- inference -----------------------------------------------------------------------------------
    def estimate(self, audio: torch.Tensor) -> torch.Tensor:
        """One pass: input ``(B, C, T)`` -> source estimates ``(B, S, C, T)``."""
        raise NotImplementedError(f"{type(self).__name__} must define estimate()")

    @property
    def align(self) -> int:
        """Chunk starts of full-track inference are multiples of this many samples (e.g. the STFT hop)."""
        return 1

    def chunked(self, fn: Callable[[torch.Tensor], torch.Tensor], audio: torch.Tensor) -> torch.Tensor:
        """Apply ``fn`` to a full track ``(B, C, T)`` chunk by chunk with context and cross-fades."""
        sr = self.sample_rate
        return chunked_apply(
            fn,
            audio,
            chunk=int(self.chunk_seconds * sr),
            context=int(self.context_seconds * sr),
            crossfade=int(self.crossfade_seconds * sr),
            align=self.align,
        )

    @torch.no_grad()
    def separate(self, audio: torch.Tensor) -> torch.Tensor:
        """Full tracks ``(B, C, T)`` -> source estimates ``(B, S, C, T)`` by overlap-add of :meth:`estimate`."""
        return self.chunked(self.estimate, audio)

    @torch.no_grad()
    def estimate_systems(self, audio: torch.Tensor, name: str) -> dict[str, torch.Tensor]:
        """The systems the evaluation scores for one track ``(C, T)`` named ``name``: ``{system: (S, C, T)}``.

        One estimate, ``model``, by default; a stochastic model returns its seeded samples and their mean
        (see :mod:`musicbench.evaluation.systems`).
        """
        return {MODEL: self.separate(audio.unsqueeze(0))[0]}

    # --- optimisation --------------------------------------------------------------------------------
    def configure_callbacks(self) -> list[pl.Callback]:
        """Callbacks every training of a System needs: the :class:`FiniteGuard`."""
        return [FiniteGuard()]

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        if self.optimizer_factory is None or not params:
            return None  # Lightning then runs the loop without optimisation (parameter-free baselines)
        optimizer, scheduler = build_optimizer(self.optimizer_factory, self.scheduler_factory, params)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}
