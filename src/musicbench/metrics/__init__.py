"""Metrics: pure functions on tensors, batched over leading dimensions, device-agnostic."""

from musicbench.metrics.sdr import global_sdr, si_sdr, snr

__all__ = ["global_sdr", "si_sdr", "snr"]
