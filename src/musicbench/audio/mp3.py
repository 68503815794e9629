"""The MP3 codec round trip: LAME encoding (``lameenc``), libsndfile decoding, resampling and alignment.

``Mp3Codec(bitrate=32)(audio, sample_rate)`` returns what a listener of a 32 kbit/s MP3 of ``audio`` hears,
sample-aligned with ``audio`` and of the same length and rate, so that ``(degraded, clean)`` is a
training pair for restoration.

Alignment. An MP3 decoder outputs ``ENCODER_DELAY + DECODER_DELAY = 576 + 529 = 1105`` samples (at the
encoder's output rate) before the first input sample, and pads the end to a whole frame. Players remove
both with the LAME/Xing tag of the first frame; ``lameenc`` writes no such tag (checked: no ``Xing``/``Info``
frame in its output), so libsndfile (mpg123) cannot know the delay and returns it. We therefore drop the
1105 samples ourselves, at the encoder's output rate (known exactly from the decoded header), and cut
the padding by length. ``tests/audio/test_mp3.py`` verifies by cross-correlation that the result is at lag 0
for many bitrates and rates.

Resampling. At low bitrates LAME resamples before encoding (32 kbit/s stereo from 44.1 kHz encodes at
16 kHz); the decoded audio is brought back to the clean rate with ``soxr`` (a linear-phase resampler, so
it adds no delay).
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr
import torch

from musicbench.errors import UserError

# LAME's fixed encoder delay (ENCDELAY) and the MP3 decoder's synthesis delay (528 + 1), in samples at the
# encoder output rate: the offset of the first input sample in a decoded stream without a LAME tag.
ENCODER_DELAY = 576
DECODER_DELAY = 529
CODEC_DELAY = ENCODER_DELAY + DECODER_DELAY

# Layer III sample rates (Hz) and bit rates (kbit/s) per MPEG version (ISO 11172-3, 13818-3 and MPEG 2.5).
MPEG_SAMPLE_RATES = {
    "MPEG-1": (32000, 44100, 48000),
    "MPEG-2": (16000, 22050, 24000),
    "MPEG-2.5": (8000, 11025, 12000),
}
MPEG_BITRATES = {
    "MPEG-1": (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    "MPEG-2": (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    "MPEG-2.5": (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
SUPPORTED_SAMPLE_RATES = tuple(sorted(r for rates in MPEG_SAMPLE_RATES.values() for r in rates))
MIN_LIBSNDFILE = (1, 1)  # the first libsndfile release that reads MP3


class CodecError(UserError, ValueError):
    """Unsupported codec settings or a failed encode/decode; the message names the value and what to do."""


def valid_bitrates(sample_rate: int) -> tuple[int, ...]:
    """The CBR bit rates (kbit/s) LAME honours for input at ``sample_rate`` Hz.

    LAME never upsamples, so the MPEG versions available are those with a rate at or below the input
    rate; the bit rate must be in one of their tables (LAME silently clamps any other value, which would
    make the configured bit rate a lie, so we reject it instead).
    """
    check_sample_rate(sample_rate)
    versions = [v for v, rates in MPEG_SAMPLE_RATES.items() if min(rates) <= sample_rate]
    return tuple(sorted({b for v in versions for b in MPEG_BITRATES[v]}))


def check_sample_rate(sample_rate: int) -> None:
    """Raise CodecError unless ``sample_rate`` (Hz) is an MPEG layer III rate."""
    if int(sample_rate) not in SUPPORTED_SAMPLE_RATES:
        raise CodecError(
            f"sample rate {sample_rate} Hz is not an MPEG layer III rate; supported: "
            f"{list(SUPPORTED_SAMPLE_RATES)} Hz. Resample the clean audio to one of them (data.sample_rate)."
        )


def check_libsndfile() -> None:
    """Raise CodecError if the libsndfile behind ``soundfile`` cannot decode MP3 (needs >= 1.1)."""
    version = tuple(int(p) for p in sf.__libsndfile_version__.split(".")[:2] if p.isdigit())
    if version < MIN_LIBSNDFILE:
        raise CodecError(
            f"libsndfile {sf.__libsndfile_version__} cannot read MP3 (needs >= 1.1); upgrade soundfile "
            "(`pip install -U soundfile` ships a recent libsndfile)."
        )


@dataclass(frozen=True)
class Mp3Codec:
    """An MP3 encode -> decode round trip with LAME.

    Args:
        bitrate: constant bit rate in kbit/s (CBR); must be in :func:`valid_bitrates` for the input rate.
            ``None`` when ``vbr_quality`` is set.
        vbr_quality: LAME's VBR quality ``-V`` (0 best ... 9 smallest) instead of a constant bit rate.
        quality: LAME's algorithm quality ``-q`` (0 best/slowest ... 9 fastest; 2 is LAME's "high").
        channels: 1 (mono: the clean audio is downmixed first, so both sides of the pair are mono) or 2
            (stereo; mono input is duplicated).
    """

    bitrate: int | None = 32
    vbr_quality: int | None = None
    quality: int = 2
    channels: int = 2

    def __post_init__(self) -> None:
        if (self.bitrate is None) == (self.vbr_quality is None):
            raise CodecError(
                f"set exactly one of bitrate (CBR, kbit/s) and vbr_quality (VBR 0-9); got bitrate="
                f"{self.bitrate}, vbr_quality={self.vbr_quality}"
            )
        if self.vbr_quality is not None and not 0 <= int(self.vbr_quality) <= 9:
            raise CodecError(f"vbr_quality must be an integer in 0..9 (LAME -V), got {self.vbr_quality}")
        if not 0 <= int(self.quality) <= 9:
            raise CodecError(f"quality must be an integer in 0..9 (LAME -q), got {self.quality}")
        if self.channels not in (1, 2):
            raise CodecError(f"channels must be 1 (mono) or 2 (stereo), got {self.channels}")

    @property
    def name(self) -> str:
        """A short label, e.g. ``"cbr32k-q2-stereo"`` or ``"vbr4-q2-mono"``."""
        rate = f"cbr{self.bitrate}k" if self.bitrate is not None else f"vbr{self.vbr_quality}"
        return f"{rate}-q{self.quality}-{'mono' if self.channels == 1 else 'stereo'}"

    def params(self) -> dict[str, int | None]:
        """All settings that change the encoded stream (the cache key of prepared pairs)."""
        return dataclasses.asdict(self)

    def with_bitrate(self, bitrate: int) -> Mp3Codec:
        """The same codec at another CBR bit rate (kbit/s)."""
        return dataclasses.replace(self, bitrate=int(bitrate), vbr_quality=None)

    def check(self, sample_rate: int) -> None:
        """Raise CodecError if these settings cannot encode audio at ``sample_rate`` Hz as configured."""
        check_libsndfile()
        if self.bitrate is not None and int(self.bitrate) not in valid_bitrates(sample_rate):
            raise CodecError(
                f"bitrate {self.bitrate} kbit/s is not a layer III bit rate for input at {sample_rate} Hz; "
                f"valid: {list(valid_bitrates(sample_rate))} kbit/s"
            )
        check_sample_rate(sample_rate)

    def encode(self, audio: torch.Tensor | np.ndarray, sample_rate: int) -> bytes:
        """Encode ``(C, T)`` float audio (full scale 1.0) at ``sample_rate`` Hz to MP3 bytes.

        LAME takes 16-bit PCM: audio beyond full scale raises ``CodecError`` rather than being clipped.
        """
        import lameenc

        self.check(sample_rate)
        x = to_channels(_as_numpy(audio), self.channels)
        peak = float(np.abs(x).max()) if x.size else 0.0
        if not np.isfinite(peak) or peak > 1.0:
            raise CodecError(
                f"audio peaks at {peak:.4g} (> 1.0, full scale): 16-bit input to LAME would clip it. "
                "Lower the gain (e.g. normalise the source) before encoding."
            )
        pcm = np.round(x * 32767.0).astype("<i2")
        encoder = lameenc.Encoder()
        encoder.set_in_sample_rate(int(sample_rate))
        encoder.set_channels(self.channels)
        encoder.set_quality(int(self.quality))
        if self.vbr_quality is not None:
            encoder.set_vbr(4)  # vbr_mtrh, LAME's default VBR mode
            encoder.set_vbr_quality(int(self.vbr_quality))
        elif self.bitrate is not None:  # exactly one of the two is set (__post_init__)
            encoder.set_bit_rate(int(self.bitrate))
        data = bytes(encoder.encode(np.ascontiguousarray(pcm.T).tobytes())) + bytes(encoder.flush())
        if _has_gapless_tag(data):
            # A decoder honouring the tag would remove the delay itself; dropping it again would misalign.
            raise CodecError("the encoder wrote a Xing/Info tag: the delay compensation assumes none")
        return data

    def __call__(self, audio: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """Round trip ``(C, T)`` audio at ``sample_rate`` Hz -> decoded ``(channels, T)`` float32, aligned."""
        x = _as_numpy(audio)
        length = x.shape[-1]
        decoded, rate = decode_mp3(self.encode(x, sample_rate))
        return torch.from_numpy(align_decoded(decoded, rate, sample_rate, length))


def decode_mp3(data: bytes) -> tuple[np.ndarray, int]:
    """Decode MP3 bytes with libsndfile -> ``((C, T) float32, rate in Hz)``, codec delay included.

    libsndfile takes the stream length from the file size and the first frame's bit rate, which is too
    short for VBR streams without a Xing tag, and stops there. Reporting an unknown file size makes the
    decoder go to the real end of the stream; we read blocks until it is exhausted.
    """
    check_libsndfile()
    blocks = []
    try:
        with sf.SoundFile(_UnsizedBytes(data)) as f:
            rate = int(f.samplerate)
            while len(block := f.read(1 << 16, dtype="float32", always_2d=True)):
                blocks.append(block)
    except sf.LibsndfileError as exc:
        raise CodecError(f"libsndfile cannot decode the MP3 stream ({len(data)} bytes): {exc}") from exc
    if not blocks:
        raise CodecError(f"the MP3 stream ({len(data)} bytes) decoded to no samples")
    return np.ascontiguousarray(np.concatenate(blocks).T), rate


def align_decoded(decoded: np.ndarray, decoded_rate: int, sample_rate: int, length: int) -> np.ndarray:
    """Remove the codec delay and padding of a decoded stream and return it at ``sample_rate``.

    Args:
        decoded: ``(C, T')`` decoder output at ``decoded_rate`` Hz, delay included.
        decoded_rate: the encoder's output rate in Hz.
        sample_rate: the clean audio's rate in Hz.
        length: the clean audio's length in samples.

    Returns:
        ``(C, length)`` float32, sample-aligned with the clean audio.
    """
    x = decoded[:, CODEC_DELAY:]
    needed = math.ceil(length * decoded_rate / sample_rate)
    if x.shape[-1] < needed:
        raise CodecError(
            f"the decoded stream has {x.shape[-1]} samples after the {CODEC_DELAY}-sample delay at "
            f"{decoded_rate} Hz, fewer than the {needed} the input needs: truncated decode"
        )
    if decoded_rate != sample_rate:
        # Keep the padding after `needed` while resampling: it is real (decoded) signal that gives the
        # resampler's filter its right-hand context at the end of the track.
        x = soxr.resample(np.ascontiguousarray(x.T), decoded_rate, sample_rate, quality="HQ").T
    out = np.zeros((x.shape[0], length), dtype=np.float32)
    n = min(length, x.shape[-1])
    out[:, :n] = x[:, :n]
    return out


def to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """``(C, T)`` -> ``(channels, T)``: mean downmix to mono, or mono duplicated to stereo."""
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        mono: np.ndarray = audio.mean(axis=0, keepdims=True)  # numpy types a keepdims mean as Any
        return mono
    if audio.shape[0] == 1:
        return np.repeat(audio, channels, axis=0)
    raise CodecError(f"cannot convert {audio.shape[0]}-channel audio to {channels} channels")


def _as_numpy(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise CodecError(f"expected audio of shape (channels, samples), got {audio.shape}")
    return audio


def _has_gapless_tag(data: bytes) -> bool:
    """Whether the first frame is a Xing/Info (LAME) tag frame, which carries the delay for decoders."""
    head = data[:200]
    return b"Xing" in head or b"Info" in head


class _UnsizedBytes(io.BytesIO):
    """In-memory file whose size is unknown to libsndfile (a seek to the end stays where it is)."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            return self.tell()
        return super().seek(offset, whence)
