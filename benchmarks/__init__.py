"""Side-by-side speed/parity benchmarks against reference implementations (``python -m benchmarks``)."""
