"""musicbench: configurable experiment framework for music-audio benchmarks."""

from musicbench._compat import check_torch_pair

__version__ = "0.1.0"

# Fail with one sentence (versions, what to run) instead of a linker error inside torchaudio.
check_torch_pair()
