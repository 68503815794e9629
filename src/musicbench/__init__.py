"""musicbench: configurable experiment framework for music-audio benchmarks."""

__version__ = "0.1.0"
