"""HAAQI v1 (Kates & Arehart 2016): pyclarity's ``haaqi_v1`` / ``compute_haaqi`` in torch.

``haaqi`` scores one pair or a batch; the internal auditory-threshold noise comes from a torch generator
(or a seed), so a score is reproducible and the same on any device for the same seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, SupportsInt, cast

import numpy as np
import torch

from musicbench.hearing.audiogram import Audiogram, check_levels
from musicbench.metrics._checks import check_audio, check_finite_number, check_real_float
from musicbench.metrics.haaqi.batch import ENV_SEGMENT_MS, align_batch, cochlea_batch
from musicbench.metrics.haaqi.batch_torch import cochlea_batch_torch
from musicbench.metrics.haaqi.cochlea import NoiseFn, ear_model, resolve_backend
from musicbench.metrics.haaqi.ear import HAAQI_AUDIOGRAM_FREQUENCIES
from musicbench.metrics.haaqi.features import (
    _above_threshold,
    ave_covary2,
    ave_covary2_batch,
    bm_covary,
    env_smooth,
    melcor9,
    melcor9_batch,
    spectrum_diff,
)
from musicbench.metrics.haaqi.noise import seed_from

AudiogramLike = Audiogram | torch.Tensor | np.ndarray | Sequence[float]
AudioLike = torch.Tensor | np.ndarray
# pyclarity's HAAQI: 1 = the model adds NAL-R to the reference, 2 = the reference already has it. (Its ear
# model's itype 0, intelligibility, belongs to HASPI and is not a HAAQI setting.)
EQUALISATIONS = (1, 2)


def _levels(audiogram: AudiogramLike) -> torch.Tensor:
    """``(6,)`` float64 thresholds at the HAAQI frequencies (Audiograms are resampled as pyclarity does)."""
    if isinstance(audiogram, Audiogram):
        return torch.as_tensor(
            audiogram.resample(HAAQI_AUDIOGRAM_FREQUENCIES).levels.copy(), dtype=torch.float64
        )
    levels = torch.as_tensor(audiogram, dtype=torch.float64)
    if levels.shape != (6,):
        raise ValueError(
            f"audiogram levels must be (6,) thresholds at {HAAQI_AUDIOGRAM_FREQUENCIES} Hz, got {tuple(levels.shape)}"
        )
    check_levels(levels.cpu().numpy(), HAAQI_AUDIOGRAM_FREQUENCIES, "audiogram")
    return levels


def _audio(x: AudioLike, name: str) -> torch.Tensor:
    """``x`` as a float tensor (numpy arrays are converted), refused if integer, empty or non-finite."""
    tensor = torch.as_tensor(x)
    check_real_float(tensor, name)
    check_audio(tensor, name, axes=("sample",))
    return tensor


def _check_settings(
    reference_sr: float, processed_sr: float, equalisation: int, level1: float
) -> tuple[float, float, int, float]:
    """The validated scalar settings of a HAAQI call: ``ValueError`` naming the one at fault."""
    for name, rate in (("reference_sr", reference_sr), ("processed_sr", processed_sr)):
        if check_finite_number(rate, name) <= 0:
            raise ValueError(f"{name} must be a positive sample rate in Hz, got {rate!r}")
    if isinstance(equalisation, bool) or equalisation not in EQUALISATIONS:
        raise ValueError(
            f"equalisation must be 1 (HAAQI adds NAL-R to the reference) or 2 (the reference already "
            f"has NAL-R), got {equalisation!r}"
        )
    level = check_finite_number(level1, "level1")
    return float(reference_sr), float(processed_sr), int(equalisation), level


def haaqi_v1(
    reference: AudioLike,
    reference_sr: float,
    processed: AudioLike,
    processed_sr: float,
    audiogram: AudiogramLike,
    equalisation: int = 1,
    level1: float = 65.0,
    silence_threshold: float = 2.5,
    segment_covariance: int = 16,
    seed: int = 0,
    noise: NoiseFn | None = None,
    backend: str = "auto",
    resampling: str = "exact",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """HAAQI of one ``(T_r,)`` reference and ``(T_p,)`` processed signal (pyclarity's ``haaqi_v1``).

    Returns:
        ``(combined, nonlinear, linear, raw)``: 0-dim tensors and ``raw = (4,)`` =
        [cepstral high, BM sync 5, d_loud, d_norm].

    Raises:
        ValueError: as :func:`haaqi` (invalid settings, integer, empty or non-finite audio).
    """
    reference, processed = _audio(reference, "reference"), _audio(processed, "processed")
    reference_sr, processed_sr, equalisation, level1 = _check_settings(
        reference_sr, processed_sr, equalisation, level1
    )
    hearing_loss = _levels(audiogram).to(reference.device)
    backend = resolve_backend(backend, reference.device)
    if backend == "numba":
        combined_b, nonlinear_b, linear_b, raw_b = haaqi_batch(
            reference[None], processed[None], reference_sr, processed_sr, hearing_loss[None], equalisation,
            [level1], [seed], [noise], resampling, silence_threshold, segment_covariance, backend,
        )  # fmt: skip
        return combined_b[0], nonlinear_b[0], linear_b[0], raw_b[0]
    ref_db, ref_bm, proc_db, proc_bm, ref_sl, proc_sl, sample_rate = ear_model(
        reference,
        reference_sr,
        processed,
        processed_sr,
        hearing_loss,
        equalisation,
        level1,
        noise=noise,
        seed=seed,
        backend=backend,
        resampling=resampling,
    )
    segment_size = 8  # ms
    ref_smooth = env_smooth(ref_db, segment_size, sample_rate, backend=backend)
    proc_smooth = env_smooth(proc_db, segment_size, sample_rate, backend=backend)
    _, _, mel_cepstral_high, _ = melcor9(ref_smooth, proc_smooth, silence_threshold, segment_size)
    discard = getattr(noise, "discard", None)
    if discard is not None:
        # pyclarity's melcor9 draws (and scales by add_noise = 0) one normal per envelope value above
        # threshold, for each signal: a NumPy stream shared by successive calls must skip them too.
        above = int(_above_threshold(ref_smooth, silence_threshold).numel())
        if above > 1:
            discard((ref_smooth.shape[0], above))
            discard((proc_smooth.shape[0], above))
    dloud, dnorm, _ = spectrum_diff(ref_sl, proc_sl)
    cov, ref_ms, _ = bm_covary(ref_bm, proc_bm, segment_covariance, sample_rate, backend=backend)
    _, sync = ave_covary2(cov, ref_ms, silence_threshold)
    return _combine(mel_cepstral_high, sync[4], dloud[..., 1], dnorm[..., 1])


def _combine(
    mel_cepstral_high: torch.Tensor, bm_sync5: torch.Tensor, dloud: torch.Tensor, dnorm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """HAAQI's ``(combined, nonlinear, linear, raw (..., 4))`` from its features (any batch shape)."""
    d_loud = (1.0 - dloud / 2.5).clamp(0, 1)
    d_norm = (1.0 - dnorm / 25).clamp(0, 1)
    nonlinear = 0.754 * (mel_cepstral_high**3) + 0.246 * bm_sync5
    linear = 0.329 * d_loud + 0.671 * d_norm
    combined = 0.336 * nonlinear + 0.001 * linear + 0.501 * (nonlinear**2) + 0.161 * (linear**2)
    raw = torch.stack((mel_cepstral_high, bm_sync5, d_loud, d_norm), dim=-1)
    return combined, nonlinear, linear, raw


Components = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def haaqi_batch(
    reference: torch.Tensor,
    processed: torch.Tensor,
    reference_sr: float,
    processed_sr: float,
    levels: torch.Tensor,
    equalisation: int,
    level1: Sequence[float],
    seeds: Sequence[int],
    noises: Sequence[NoiseFn | None],
    resampling: str = "exact",
    silence_threshold: float = 2.5,
    segment_covariance: int = 16,
    backend: str = "numba",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """HAAQI of ``(B, T_r)`` references and ``(B, T_p)`` processed signals, every stage for all items at once.

    ``levels``: ``(B, 6)`` thresholds in dB HL; ``level1``, ``seeds``, ``noises``: one per item;
    ``backend``: ``"numba"`` (CPU kernels, ``batch.py``) or ``"torch"`` (any device, ``batch_torch.py``).
    Returns ``(combined, nonlinear, linear, raw (B, 4))`` on the input's device. With ``noises`` (NumPy
    draws for parity runs) the items run one after another, each drawing from its source when pyclarity
    would (a stream shared by several items then gives each item pyclarity's draws).
    """
    if any(n is not None for n in noises) and (reference.shape[0] > 1 or backend == "torch"):
        parts = [
            _haaqi_one(
                reference[i],
                processed[i],
                reference_sr,
                processed_sr,
                levels[i],
                equalisation,
                level1[i],
                seeds[i],
                noises[i],
                resampling,
                silence_threshold,
                segment_covariance,
                backend,
            )  # fmt: skip
            for i in range(reference.shape[0])
        ]
        return cast(Components, tuple(torch.stack([p[j] for p in parts]) for j in range(4)))
    device = reference.device
    on_cpu = backend == "numba"
    levels = levels.to(torch.float64)
    if on_cpu:
        reference, processed, levels = reference.cpu(), processed.cpu(), levels.cpu()
    aligned = align_batch(reference, processed, reference_sr, processed_sr, levels, equalisation, resampling)
    if on_cpu:
        draws = None
        if noises[0] is not None:
            draws = [torch.as_tensor(noises[0](int(aligned.lengths[0])), dtype=torch.float64)]
        cb = cochlea_batch(
            aligned, levels, np.asarray(level1, np.float64), equalisation, None if draws else list(seeds), draws,
            segment_covariance_ms=float(segment_covariance),
        )  # fmt: skip
    else:
        cb = cochlea_batch_torch(
            aligned, levels, torch.as_tensor(level1, dtype=torch.float64), equalisation, list(seeds),
            segment_covariance_ms=float(segment_covariance),
        )  # fmt: skip
    high, above = melcor9_batch(
        cb.reference_smooth, cb.processed_smooth, cb.smooth_segments, silence_threshold, ENV_SEGMENT_MS
    )
    discard = getattr(noises[0], "discard", None)
    if discard is not None and int(above[0]) > 1:
        # pyclarity's melcor9 draws (and scales by add_noise = 0) one normal per envelope value above
        # threshold, for each signal: a NumPy stream shared by successive calls must skip them too.
        discard((cb.reference_smooth.shape[1], int(above[0])))
        discard((cb.processed_smooth.shape[1], int(above[0])))
    dloud, dnorm, _ = spectrum_diff(cb.reference_sl, cb.processed_sl)
    sync = ave_covary2_batch(cb.covariance, cb.reference_ms, cb.covariance_segments, silence_threshold)
    out = _combine(high, sync[:, 4], dloud[:, 1], dnorm[:, 1])
    return cast(Components, tuple(v.to(device) for v in out))


def _haaqi_one(
    reference: torch.Tensor,
    processed: torch.Tensor,
    reference_sr: float,
    processed_sr: float,
    levels: torch.Tensor,
    equalisation: int,
    level1: float,
    seed: int,
    noise: NoiseFn | None,
    resampling: str,
    silence_threshold: float,
    segment_covariance: int,
    backend: str,
) -> Components:
    """One item of ``haaqi_batch`` (parity runs with a NumPy noise source): the numba batch of one, or the
    torch stages of ``haaqi_v1`` (the noise source's draws on the item's own length)."""
    if backend == "numba":
        out = haaqi_batch(
            reference[None], processed[None], reference_sr, processed_sr, levels[None], equalisation, [level1],
            [seed], [noise], resampling, silence_threshold, segment_covariance, backend,
        )  # fmt: skip
        return cast(Components, tuple(v[0] for v in out))
    return haaqi_v1(
        reference, reference_sr, processed, processed_sr, levels, equalisation, level1, silence_threshold,
        segment_covariance, seed, noise, backend, resampling,
    )  # fmt: skip


def _audiogram_list(audiogram: AudiogramLike | Sequence[AudiogramLike], batch: int) -> list[AudiogramLike]:
    """One audiogram per item: a shared Audiogram / (6,) levels, or a sequence / (batch, 6) array."""
    if isinstance(audiogram, Audiogram):
        return [audiogram] * batch
    if isinstance(audiogram, torch.Tensor | np.ndarray):
        return [audiogram] * batch if audiogram.ndim == 1 else list(audiogram)
    # Numbers (one shared audiogram's levels) or one audiogram per item, told apart below.
    items: list[Any] = list(audiogram)
    if items and np.ndim(items[0]) == 0 and not isinstance(items[0], Audiogram):
        return [items] * batch
    return items


def _seeds(batch: int, generator: torch.Generator | None, seed: int | Sequence[int] | None) -> list[int]:
    """One noise seed per item: ``seed + i``, the given seeds, or draws from ``generator``."""
    if generator is not None and seed is not None:
        raise ValueError("give a generator or a seed, not both")
    if seed is None:
        return [seed_from(generator) for _ in range(batch)]
    # np.ndim tells one seed (an int, a NumPy or 0-d torch scalar) from one seed per item.
    if np.ndim(seed) == 0:
        seeds = [int(cast(SupportsInt, seed)) + i for i in range(batch)]
    else:
        seeds = [int(s) for s in cast(Iterable[SupportsInt], seed)]
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for a batch of {batch}")
    return seeds


def haaqi(
    reference: AudioLike,
    processed: AudioLike,
    reference_sr: float,
    processed_sr: float,
    audiogram: AudiogramLike | Sequence[AudiogramLike],
    equalisation: int = 1,
    level1: float | Sequence[float] = 65.0,
    generator: torch.Generator | None = None,
    seed: int | Sequence[int] | None = None,
    noise: NoiseFn | Sequence[NoiseFn] | None = None,
    backend: str = "auto",
    resampling: str = "exact",
) -> torch.Tensor:
    """HAAQI score(s) in [0, 1], as pyclarity's ``compute_haaqi(processed, reference, processed_sr,
    reference_sr, audiogram, equalisation, level1)`` (note: reference first here).

    Args:
        reference: ``(T_r,)`` or ``(batch, T_r)`` clean reference, float (torch or numpy); RMS 1 =
            ``level1`` dB SPL.
        processed: ``(T_p,)`` or ``(batch, T_p)`` processed signal (hearing-aid output, with its gain).
        reference_sr, processed_sr: sample rates in Hz (both are resampled to 24 kHz internally).
        audiogram: the listener's ``Audiogram`` (resampled to 250 ... 6000 Hz) or ``(6,)`` thresholds in
            dB HL at those frequencies; for a batch, one per item or one shared.
        equalisation: 1 = add NAL-R to the reference inside the model, 2 = the reference already has it
            (the only values pyclarity's HAAQI defines).
        level1: dB SPL of a signal with RMS 1 (finite); for a batch, one shared or one per item.
        generator: torch generator from which each item's noise seed is drawn.
        seed: instead of ``generator``: an int (item ``i`` uses ``seed + i``) or one seed per item.
        noise: optional noise source(s) ``noise(n) -> (2, 32, n)`` standard-normal draws (parity runs). A
            source with a ``discard(shape)`` method is also told the draws pyclarity makes and throws away
            later in each call, so one NumPy stream can feed several calls in pyclarity's order.
        backend: ``"auto"`` (numba kernels on CPU, torch on other devices), ``"numba"`` or ``"torch"``.
        resampling: ``"exact"`` (default) resamples at the exact rate ratio; ``"pyclarity"`` rounds
            the rates to whole kHz as pyclarity does (44.1 kHz is treated as 44 kHz), for parity runs.

    Returns:
        ``()`` score for 1-D inputs, ``(batch,)`` scores for 2-D inputs (float64, on the input's device).

    Raises:
        ValueError: naming the argument: ``equalisation`` not 1 or 2; ``level1`` or a sample rate not
            finite (or a rate not positive); audiogram thresholds outside [-20, 120] dB HL; integer audio
            (its scale is ambiguous: give float in [-1, 1], e.g. int16 / 32768); empty audio (pyclarity
            scores an empty reference 1 or 0, which is no measurement); NaN/±inf samples (the message names
            the item and sample).

    Items of a batch are scored in turn, each vectorised over its 32 bands and all samples (the numba
    kernels run the bands on all cores): after the input alignment every item has its own length,
    segment count and delays.

    The internal noise (auditory threshold, -10 dB re: threshold) changes scores by ~1e-4. It is
    counter-based (``noise.threshold_noise``): the same seed gives the same draws, hence the same score,
    on CPU and GPU and with either backend. Without ``seed`` / ``generator`` the seed comes from torch's
    global RNG.

    The sample-rate trap: pyclarity rounds input rates to whole kHz, so a 44.1 kHz reference compared
    with a processed signal at 24 or 32 kHz drifts out of time alignment and scores collapse (identical
    content: ~0.26). The default ``resampling="exact"`` has no such drift.
    """
    reference, processed = _audio(reference, "reference"), _audio(processed, "processed")
    levels = [float(v) for v in level1] if isinstance(level1, Sequence) else None
    for level in levels if levels is not None else [cast(float, level1)]:
        _check_settings(reference_sr, processed_sr, equalisation, level)
    single = reference.ndim == 1
    refs = reference[None] if single else reference
    procs = processed[None] if single else processed
    if refs.ndim != 2 or procs.ndim != 2 or refs.shape[0] != procs.shape[0]:
        raise ValueError(f"reference {tuple(reference.shape)} / processed {tuple(processed.shape)} mismatch")
    batch = refs.shape[0]
    audiograms = _audiogram_list(audiogram, batch)
    if len(audiograms) != batch:
        raise ValueError(f"{len(audiograms)} audiograms for a batch of {batch}")
    if levels is not None and len(levels) != batch:
        raise ValueError(f"{len(levels)} level1 values for a batch of {batch}")
    item_levels = levels if levels is not None else [cast(float, level1)] * batch
    seeds = _seeds(batch, generator, seed)
    noises = list(noise) if isinstance(noise, Sequence) else [noise] * batch
    levels_b = torch.stack([_levels(a) for a in audiograms]).to(reference.device)
    combined, _, _, _ = haaqi_batch(
        refs, procs, reference_sr, processed_sr, levels_b, equalisation, item_levels, seeds, noises, resampling,
        backend=resolve_backend(backend, reference.device),
    )  # fmt: skip
    return combined[0] if single else combined
