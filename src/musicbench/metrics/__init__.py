"""Metrics: pure functions on tensors, batched over leading dimensions, device-agnostic.

BSSEval lives in ``musicbench.metrics.bsseval`` (``bsseval``, ``bsseval_metric``); the function is not
re-exported here because its name would shadow the module that configs point ``_target_`` at.
"""

from musicbench.metrics.bsseval import bsseval_metric
from musicbench.metrics.sdr import global_sdr, si_sdr, snr

__all__ = ["bsseval_metric", "global_sdr", "si_sdr", "snr"]
