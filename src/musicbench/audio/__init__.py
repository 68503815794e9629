"""Audio I/O, STFT helpers and chunked (overlap-add) processing."""
