"""One-shot GPU benchmark: everything worth knowing from a few minutes on a GPU, as Markdown tables.

    make bench-gpu                       # = python -m benchmarks.gpu (also: python -m benchmarks --gpu)
    python -m benchmarks.gpu --size tiny # the smallest run (seconds of audio, one step): a smoke test

Sections (each prints one table):

1. HAAQI: a batch of 8 x 30 s (the four chorale voices, both channels) against their MP3 32 kbit/s
   versions in one ``haaqi(...)`` call; CUDA vs CPU scores on a shorter excerpt (same inputs on both).
2. BSSEval v4 on a 3-min 4-source stereo track: ``museval.evaluate`` (CPU) vs ``bsseval`` on CPU and CUDA in
   this process; the speed ratio, the largest difference to museval, CUDA vs CPU.
3. The SDR family and the restoration metrics: throughput and CUDA vs CPU.
4. U-Net separation of a 3-min stereo mixture by overlap-add of chunks (the model's ``chunked``), one chunk
   at a time and all chunks of one length in one batch, fp32 and bf16 autocast; real-time factor and the
   SDR between the estimates.
5. Training steps per second of the U-Net separator, the BLSTM restorer and the GAN restorer, built from the
   experiment presets (``conf/experiment/``) on random batches of the configured shape, fp32 and bf16-mixed.

Every row reports the peak memory of its item: GPU memory allocated by torch on CUDA, the rise of the
process's resident set on CPU. Without CUDA the same items run on the CPU in a reduced size (``--size cpu``:
seconds of audio, a few steps), after one line that says so. Nothing is downloaded: the chorale set is
read from ``$CHORALES_ROOT`` (``make data``) or, when it is absent, a small one is rendered into a
temporary folder. The exit status is 1 when an item failed (its row says why), else 0.
"""

from benchmarks.gpu.run import main

__all__ = ["main"]
