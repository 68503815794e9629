"""The base LightningModule of every model: optimizers, full-track inference and the evaluation interface.

A model family (separation, restoration, adversarial restoration) subclasses :class:`System` and defines
its one-pass :meth:`System.estimate` and its training/validation steps. The evaluation runner only calls
:meth:`System.estimate_systems`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence

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


class ItemMeans:
    """Means of per-item values over all the items of a validation epoch, exact under multi-process DDP.

    Lightning's own epoch means go wrong with several processes: ``sync_dist=True`` averages the
    processes' means (items weigh unequally when the processes saw unequal counts), and its
    distributed sampler pads the validation set with repeated items. Here every process adds up sums
    and counts (float64) and one sum over the processes adds those up, so the mean is the one a
    single process computes over the same items (to float64 rounding of the summation order).
    The validation loaders shard the set without padding (``SplitLoaders.val_dataloader``).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._totals: dict[str, torch.Tensor] = {}  # name -> float64 (sum, count)

    def update(self, name: str, values: torch.Tensor) -> None:
        """Add per-item values: ``(B,)`` (or any shape: every element is one item)."""
        values = values.detach().double().reshape(-1)
        total = torch.stack([values.sum(), values.new_tensor(values.numel())])
        self._totals[name] = self._totals[name] + total if name in self._totals else total

    def compute(self, sum_over_processes: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{name: mean}`` (float64 scalars) over the items of every process.

        ``sum_over_processes`` sums a tensor over the processes (an all-reduce; the identity for one
        process). Every process must call this with the same names (each sees at least one item).
        """
        names = sorted(self._totals)
        if not names:
            return {}
        totals = sum_over_processes(torch.stack([self._totals[n] for n in names]))  # (names, 2)
        return {n: totals[i, 0] / totals[i, 1] for i, n in enumerate(names)}


def per_item(fn: Callable[..., torch.Tensor], *batches: torch.Tensor) -> torch.Tensor:
    """``fn`` (a batch-mean such as a loss) applied to each item of the batches alone: ``(B,)``.

    An item's value then does not depend on which items share its batch (a multi-process validation
    batches the items differently from a single process).
    """
    return torch.stack([fn(*(b[i : i + 1] for b in batches)).reshape(()) for i in range(len(batches[0]))])


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

    # What the model's input is called and its source names, for the audio examples (:meth:`examples`).
    input_name = "mixture"
    sources: Sequence[str] = ()

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
        self._val_means = ItemMeans()
        self._val_prog_bar: set[str] = set()

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

    @torch.no_grad()
    def examples(self, audio: torch.Tensor, targets: torch.Tensor, name: str) -> dict[str, torch.Tensor]:
        """Audio to listen to for one item: input ``(C, T)`` and references ``(S, C, T)`` ->
        ``{label: (C, T)}``: the input (:attr:`input_name`), then per source ``<source>/<system>`` for each
        system of :meth:`estimate_systems` (every sample of a stochastic model) and ``<source>/reference``.
        The experiment trackers log these (:class:`musicbench.utils.tracking.ValidationExamples`)."""
        out = {self.input_name: audio}
        systems = self.estimate_systems(audio, name)
        for i, reference in enumerate(targets):
            source = self.sources[i] if i < len(self.sources) else f"source{i}"
            out.update({f"{source}/{system}": estimate[i] for system, estimate in systems.items()})
            out[f"{source}/reference"] = reference
        return out

    # --- validation metrics ---------------------------------------------------------------------------
    def log_items(self, values: Mapping[str, torch.Tensor], prog_bar: Iterable[str] = ()) -> None:
        """Log per-item validation values ``{name: (B,)}``: at the end of the epoch each name is logged
        as the mean over every item of every process (:class:`ItemMeans`), the same value on each
        process. Names in ``prog_bar`` also show in the progress bar."""
        for name, value in values.items():
            self._val_means.update(name, value)
        self._val_prog_bar.update(prog_bar)

    def on_validation_epoch_start(self) -> None:
        self._val_means.reset()

    def on_validation_epoch_end(self) -> None:
        strategy = self.trainer.strategy
        for name, mean in self._val_means.compute(lambda t: strategy.reduce(t, reduce_op="sum")).items():
            # Every process holds the same value: "max" over the processes returns it exactly (Lightning
            # warns about epoch values logged without sync_dist under DDP; a mean could round).
            self.log(name, mean.float(), prog_bar=name in self._val_prog_bar, sync_dist=True, reduce_fx="max")
        self._val_means.reset()

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
