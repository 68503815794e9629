"""Hearing-aid processing: audiograms and listener files, NAL-R prescription filters, the baseline compressor."""

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
from musicbench.hearing.nalr import NALR, NALR_FREQUENCIES, apply_nalr, nalr_delay, nalr_fir
from musicbench.hearing.standard_audiograms import (
    BISGAARD_FREQUENCIES,
    BISGAARD_LEVELS,
    generate_listeners,
    severity_group,
    standard_audiogram,
)

__all__ = [
    "BISGAARD_FREQUENCIES",
    "BISGAARD_LEVELS",
    "DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES",
    "FULL_STANDARD_AUDIOGRAM_FREQUENCIES",
    "NALR",
    "NALR_FREQUENCIES",
    "Audiogram",
    "Compressor",
    "Listener",
    "apply_nalr",
    "compress",
    "generate_listeners",
    "interpolate_levels",
    "linear_recurrence",
    "load_listeners",
    "moving_rms",
    "nalr_delay",
    "nalr_fir",
    "save_listeners",
    "severity_group",
    "standard_audiogram",
]
