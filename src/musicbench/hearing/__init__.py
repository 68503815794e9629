"""Hearing-aid processing: audiograms and listener files, NAL-R prescription filters, the baseline compressor,
the CAD2 multiband compressor and band-pass filters."""

from musicbench.hearing.audiogram import (
    DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES,
    FULL_STANDARD_AUDIOGRAM_FREQUENCIES,
    Audiogram,
    Listener,
    interpolate_levels,
    load_listeners,
    save_listeners,
)
from musicbench.hearing.compressor import Compressor, compress, linear_recurrence, moving_rms
from musicbench.hearing.filters import butter_bandpass_sos, sos_filter
from musicbench.hearing.multiband_compressor import (
    CAD2_CROSSOVER_FREQUENCIES,
    MultibandCompressor,
    crossover,
    multiband_compress,
)
from musicbench.hearing.nalr import NALR, NALR_FREQUENCIES, apply_nalr, nalr_delay, nalr_fir
from musicbench.hearing.standard_audiograms import (
    BISGAARD_FREQUENCIES,
    BISGAARD_LEVELS,
    generate_listeners,
    severity_group,
    standard_audiogram,
)

__all__ = [
    "CAD2_CROSSOVER_FREQUENCIES",
    "BISGAARD_FREQUENCIES",
    "BISGAARD_LEVELS",
    "DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES",
    "FULL_STANDARD_AUDIOGRAM_FREQUENCIES",
    "NALR",
    "NALR_FREQUENCIES",
    "Audiogram",
    "Compressor",
    "Listener",
    "MultibandCompressor",
    "apply_nalr",
    "butter_bandpass_sos",
    "compress",
    "crossover",
    "generate_listeners",
    "interpolate_levels",
    "linear_recurrence",
    "load_listeners",
    "moving_rms",
    "multiband_compress",
    "nalr_delay",
    "nalr_fir",
    "save_listeners",
    "sos_filter",
    "severity_group",
    "standard_audiogram",
]
