"""The cochlear model for one pair of signals (pyclarity's ``ear_model``), with two back ends.

``ear_model`` resamples both signals to 24 kHz, aligns them, adds NAL-R to the reference where asked, and
runs the stages of ``ear.py`` from the middle ear to the group-delay compensation with one of two back
ends that compute the same model:

- ``"torch"``: whole-array torch ops (FFT filtering), any device;
- ``"numba"``: the same stages fused into per-band recursions (``kernels.py``), CPU tensors only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from musicbench.metrics._checks import check_audio, check_finite_number
from musicbench.metrics.haaqi.batch import align_batch
from musicbench.metrics.haaqi.dsp import rms, shift_rows
from musicbench.metrics.haaqi.ear import (
    SAMPLE_RATE,
    LossParameters,
    bandwidth_adjust,
    center_frequency,
    convert_rms_to_sl,
    env_compress_basilar_membrane,
    envelope_align,
    envelope_sl,
    gammatone,
    gammatone_fft_size,
    group_delay_correction,
    inner_hair_cell_adaptation,
    loss_parameters,
    middle_ear,
    threshold_noise_gain,
)
from musicbench.metrics.haaqi.noise import threshold_noise

BACKENDS = ("numba", "torch")

NoiseFn = Callable[[int], torch.Tensor]


class CochleaInput(NamedTuple):
    """What both back ends take: the aligned signals at 24 kHz and the model's parameters."""

    reference: torch.Tensor  # (T,) aligned, NAL-R equalised where asked
    processed: torch.Tensor  # (T,) aligned to the reference
    center_freq: torch.Tensor  # (nchan,) Hz
    loss_reference: LossParameters  # the reference's "listener" (normal hearing for intelligibility)
    loss_processed: LossParameters
    bandwidth_max: torch.Tensor  # (nchan,) the widest bandwidths: those of the control path
    level1: float  # dB SPL of RMS 1
    draws: torch.Tensor | None  # (2, nchan, T) threshold-noise draws, or None: counter-based, of seed
    seed: int
    delay_compensate: bool  # group-delay compensation of the outputs


# Per signal, ``(envelope RMS, control RMS)``: the ``(nchan,)`` long-term levels ``convert_rms_to_sl`` takes.
LevelPair = tuple[torch.Tensor, torch.Tensor]
# The back ends' output: ``(ref_db, ref_bm, proc_db, proc_bm, ref levels, proc levels)``.
CochleaOutput = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, LevelPair, LevelPair]


def available_backends() -> tuple[str, ...]:
    """``("numba", "torch")`` where numba imports, else ``("torch",)``."""
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a dependency; keep torch usable without it
        return ("torch",)
    return BACKENDS


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"auto"``: the numba kernels on CPU, torch elsewhere. Explicit names are checked."""
    if backend == "auto":
        return "numba" if device.type == "cpu" and "numba" in available_backends() else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"HAAQI backend must be 'auto', 'numba' or 'torch', got {backend!r}")
    if backend == "numba" and device.type != "cpu":
        raise ValueError(
            f"the numba backend runs on CPU tensors; got {device} (use backend='torch' or 'auto')"
        )
    if backend not in available_backends():
        raise ValueError("backend='numba' needs the numba package (pip install numba)")
    return backend


def ear_model(
    reference: torch.Tensor,
    reference_sr: float,
    processed: torch.Tensor,
    processed_sr: float,
    hearing_loss: torch.Tensor,
    itype: int,
    level1: float,
    nchan: int = 32,
    m_delay: int = 1,
    noise: NoiseFn | None = None,
    seed: int = 0,
    backend: str = "auto",
    resampling: str = "exact",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The cochlear model for one pair of signals (pyclarity's ``ear_model``).

    Args:
        reference: ``(T_r,)`` reference at ``reference_sr`` Hz (RMS 1 = ``level1`` dB SPL).
        processed: ``(T_p,)`` processed signal at ``processed_sr`` Hz.
        hearing_loss: ``(6,)`` thresholds in dB HL at 250 ... 6000 Hz.
        itype: 0 intelligibility (normal-hearing reference), 1 quality with NAL-R added to the reference,
            2 quality with the reference already equalised.
        level1: dB SPL of a signal with RMS 1.
        noise: optional ``noise(n) -> (2, nchan, n)`` standard-normal draws for the reference and processed
            BM threshold noise (for parity with a seeded NumPy run); by default the counter-based streams
            of ``seed`` (``noise.threshold_noise``), identical on every device and backend.
        seed: the threshold-noise seed.
        backend: ``"numba"`` (fused per-band CPU kernels), ``"torch"`` (FFT filtering, any device) or
            ``"auto"`` (numba on CPU, torch elsewhere). Both compute the same model.
        resampling: ``"exact"`` (default) or ``"pyclarity"`` (whole-kHz rounding of the input rates, for
            bit-level parity at 44.1 / 22.05 kHz); see ``ear.resampling_ratio``.

    Returns:
        ``(reference_db, reference_bm, processed_db, processed_bm, reference_sl, processed_sl, 24000)``:
        ``(nchan, T)`` envelopes in dB SL and BM motion, ``(nchan,)`` long-term levels in dB SL.
    """
    if isinstance(itype, bool) or itype not in (0, 1, 2):
        raise ValueError(f"itype must be 0 (intelligibility), 1 or 2 (quality), got {itype!r}")
    check_finite_number(level1, "level1")
    check_audio(reference, "reference", axes=("sample",))
    check_audio(processed, "processed", axes=("sample",))
    device = reference.device
    backend = resolve_backend(backend, device)
    dt = torch.float64
    reference = reference.to(dt)
    processed = processed.to(dt)
    hearing_loss = torch.as_tensor(hearing_loss, dtype=dt, device=device)
    cf_np = center_frequency(nchan)
    cf = torch.as_tensor(cf_np, dtype=dt, device=device)
    loss_y = loss_parameters(hearing_loss, cf_np)
    loss_x = loss_parameters(torch.zeros_like(hearing_loss) if itype == 0 else hearing_loss, cf_np)
    bandwidth_1 = loss_parameters(torch.full_like(hearing_loss, 100.0), cf_np).bandwidth

    aligned = align_batch(
        reference[None], processed[None], reference_sr, processed_sr, hearing_loss[None], itype, resampling
    )
    ref24, proc24 = aligned.reference[0], aligned.processed[0]
    nsamp = ref24.shape[-1]
    draws = None if noise is None else torch.as_tensor(noise(nsamp), dtype=dt).to(device)
    if backend == "numba":
        return _cochlea_numba(ref24, proc24, hearing_loss, itype, level1, draws, seed, m_delay > 0, nchan)
    ref_db, ref_bm, proc_db, proc_bm, ref_avg, proc_avg = _cochlea_torch(
        CochleaInput(
            reference=ref24,
            processed=proc24,
            center_freq=cf,
            loss_reference=loss_x,
            loss_processed=loss_y,
            bandwidth_max=bandwidth_1,
            level1=level1,
            draws=draws,
            seed=seed,
            delay_compensate=m_delay > 0,
        )
    )
    ref_sl = _rms_to_sl(ref_avg, loss_x, level1)
    proc_sl = _rms_to_sl(proc_avg, loss_y, level1)
    return ref_db, ref_bm, proc_db, proc_bm, ref_sl, proc_sl, SAMPLE_RATE


def _rms_to_sl(levels: LevelPair, loss: LossParameters, level1: float) -> torch.Tensor:
    envelope, control = levels
    return convert_rms_to_sl(
        envelope, control, loss.attn_ohc, loss.low_knee, loss.compression_ratio, loss.attn_ihc, level1
    )


def _first_nonzero(x: torch.Tensor) -> int:
    nz = torch.nonzero(x != 0)
    return int(nz[0, 0]) if nz.numel() else x.shape[-1]


def _zero_before(x: torch.Tensor, start: int) -> torch.Tensor:
    if start > 0:
        x = x.clone()
        x[..., :start] = 0.0
    return x


def _cochlea_torch(inputs: CochleaInput) -> CochleaOutput:
    """Middle ear to group-delay compensation with whole-array torch ops (FFT filtering); any device.

    Returns ``(ref_db, ref_bm, proc_db, proc_bm, (ref_env_rms, ref_control_rms), (proc_...))``.
    """
    ref24, proc24, cf, level1 = inputs.reference, inputs.processed, inputs.center_freq, inputs.level1
    loss_x, loss_y, bandwidth_1 = inputs.loss_reference, inputs.loss_processed, inputs.bandwidth_max
    nchan, nsamp, device = len(cf), ref24.shape[-1], ref24.device
    # pyclarity's recursive filters output exact zeros until the first non-zero input sample (e.g. the
    # zeros input_align prepends); FFT filtering leaves ~1e-17 there, which envelope_sl's 1e-30 guards
    # would treat differently. Restore the exact zeros.
    ref_start, proc_start = _first_nonzero(ref24), _first_nonzero(proc24)
    ref_mid = _zero_before(middle_ear(ref24), ref_start)
    proc_mid = _zero_before(middle_ear(proc24), proc_start)
    n_fft = gammatone_fft_size(nsamp)
    ref_spec = torch.fft.fft(ref_mid, n=n_fft)
    proc_spec = torch.fft.fft(proc_mid, n=n_fft)

    # The control filters are the same for both signals: one response, two spectra.
    controls, _ = gammatone(
        torch.stack((ref_mid, proc_mid)), bandwidth_1, cf, spectrum=torch.stack((ref_spec, proc_spec))
    )
    ref_control = _zero_before(controls[0], ref_start)
    proc_control = _zero_before(controls[1], proc_start)
    del controls
    ref_bw = bandwidth_adjust(ref_control, loss_x.bandwidth, bandwidth_1, level1)
    proc_bw = bandwidth_adjust(proc_control, loss_y.bandwidth, bandwidth_1, level1)
    xenv, xbm = (_zero_before(v, ref_start) for v in gammatone(ref_mid, ref_bw, cf, spectrum=ref_spec))
    yenv, ybm = (_zero_before(v, proc_start) for v in gammatone(proc_mid, proc_bw, cf, spectrum=proc_spec))
    del ref_spec, proc_spec

    ref_avg = (rms(xenv)[..., 0], rms(ref_control)[..., 0])
    proc_avg = (rms(yenv)[..., 0], rms(proc_control)[..., 0])

    x_cc, x_b = env_compress_basilar_membrane(
        xenv,
        xbm,
        ref_control,
        loss_x.attn_ohc,
        loss_x.low_knee,
        loss_x.compression_ratio,
        SAMPLE_RATE,
        level1,
    )
    y_cc, y_b = env_compress_basilar_membrane(
        yenv,
        ybm,
        proc_control,
        loss_y.attn_ohc,
        loss_y.low_knee,
        loss_y.compression_ratio,
        SAMPLE_RATE,
        level1,
    )
    del xenv, xbm, yenv, ybm, ref_control, proc_control
    aligned = envelope_align(torch.stack((x_cc, x_b)), torch.stack((y_cc, y_b)))
    y_cc, y_b = aligned[0], aligned[1]
    del aligned

    x_cc, x_b = envelope_sl(x_cc, x_b, loss_x.attn_ihc, level1)
    y_cc, y_b = envelope_sl(y_cc, y_b, loss_y.attn_ihc, level1)
    ref_db, ref_b = inner_hair_cell_adaptation(x_cc, x_b, 2.0, SAMPLE_RATE)
    proc_db, proc_b = inner_hair_cell_adaptation(y_cc, y_b, 2.0, SAMPLE_RATE)
    del x_cc, x_b, y_cc, y_b

    draws = inputs.draws
    if draws is None:
        draws = threshold_noise(inputs.seed, 2 * nchan, nsamp, device=device).view(2, nchan, nsamp)
    gain = float(threshold_noise_gain(level1))
    ref_bm = ref_b + gain * draws[0]
    proc_bm = proc_b + gain * draws[1]
    if inputs.delay_compensate:
        correct = torch.as_tensor(group_delay_correction(ref_bw, cf), device=device)
        ref_db, proc_db, ref_bm, proc_bm = (
            shift_rows(v, -correct) for v in (ref_db, proc_db, ref_bm, proc_bm)
        )
    return ref_db, ref_bm, proc_db, proc_bm, ref_avg, proc_avg


def _cochlea_numba(
    ref24: torch.Tensor,
    proc24: torch.Tensor,
    hearing_loss: torch.Tensor,
    itype: int,
    level1: float,
    draws: torch.Tensor | None,
    seed: int,
    delay_compensate: bool,
    nchan: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``ear_model``'s outputs from the aligned signals with the batched CPU kernels (``batch.py``)."""
    from musicbench.metrics.haaqi.batch import Aligned, cochlea_batch

    nsamp = ref24.shape[-1]
    cb = cochlea_batch(
        Aligned(ref24[None], proc24[None], torch.tensor([nsamp])),
        hearing_loss[None],
        np.array([level1], np.float64),
        itype,
        None if draws is not None else [seed],
        None if draws is None else [draws],
        keep_outputs=True,
        delay_compensate=delay_compensate,
        nchan=nchan,
    )
    assert cb.outputs is not None
    db, bm = (torch.from_numpy(v[:, :, :nsamp]) for v in cb.outputs)
    return db[0], bm[0], db[1], bm[1], cb.reference_sl[0], cb.processed_sl[0], SAMPLE_RATE


__all__ = ["BACKENDS", "NoiseFn", "available_backends", "ear_model", "resolve_backend"]
