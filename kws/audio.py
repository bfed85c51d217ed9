"""Reading WAV files and fitting them to the model's clip: mono, resampled, one clip long."""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path

import numpy as np
import scipy.io.wavfile
import scipy.signal

from kws.benchmark_tflite import fit_to_clip  # the device's own, so both crop alike
from kws.config import FeatureConfig
from kws.errors import InputError

# Longest recording accepted as one keyword clip, in seconds.
MAX_CLIP_SECONDS = 60
# Sample rates outside these are a broken or lying header, not audio.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384000


class AudioError(InputError):
    """A file that cannot be used as audio; the message says which and why."""


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Reads a WAV file as float32 mono in [-1, 1] and its sample rate in Hz.

    Integer PCM of 8, 16, 24 or 32 bits and float WAVs are accepted; channels are averaged.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.io.wavfile.WavFileWarning)
            rate, data = scipy.io.wavfile.read(path, mmap=False)
    except (ValueError, OSError, EOFError, IndexError, struct.error) as error:
        raise AudioError(f"{path}: not a readable WAV file ({error})") from None
    promised, present = _data_chunk_bytes(path)
    if promised > present:
        raise AudioError(f"{path}: truncated WAV file (its header promises {promised:,} bytes "
                         f"of samples, the file holds {present:,})")
    if data.size == 0:
        raise AudioError(f"{path}: WAV file holds no samples")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{path}: WAV header gives a sample rate of {rate} Hz (expected "
                         f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE})")
    if data.dtype.kind == "f":
        samples = data.astype(np.float32)
    elif data.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        samples = (data.astype(np.float32) - 128.0) / 128.0
    else:
        samples = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{path}: WAV file holds NaN or infinite samples")
    return samples, int(rate)


def _data_chunk_bytes(path: str | Path) -> tuple[int, int]:
    """Size of the ``data`` chunk as the header declares it, and the bytes actually there.

    scipy quietly returns what a truncated file holds; a torn copy should not train.
    """
    with open(path, "rb") as file:
        file.seek(12)  # past "RIFF", the RIFF size and "WAVE"
        while len(header := file.read(8)) == 8:
            chunk_id, size = struct.unpack("<4sI", header)
            if chunk_id == b"data":
                if size == 0xFFFFFFFF:  # streamed WAV: length unknown when it was written
                    return 0, 0
                start = file.tell()
                return size, file.seek(0, 2) - start
            file.seek(size + (size & 1), 1)
    return 0, 0


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy), exact for any pair of integer rates."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    divisor = math.gcd(from_rate, to_rate)
    resampled = scipy.signal.resample_poly(samples, to_rate // divisor, from_rate // divisor)
    return resampled.astype(np.float32)


def load_recording(path: str | Path, sample_rate: int) -> np.ndarray:
    """Reads a whole WAV file as float32 mono at ``sample_rate`` Hz."""
    samples, rate = read_wav(path)
    return resample(samples, rate, sample_rate)


def load_clip(path: str | Path, config: FeatureConfig) -> np.ndarray:
    """Reads one WAV file as a float32 clip at ``config.sample_rate`` of ``config.clip_samples``.

    A recording longer than ``MAX_CLIP_SECONDS`` is refused: in a word folder it is a
    mistake (long noise recordings belong in ``_background_noise_/``).
    """
    samples, rate = read_wav(path)
    if len(samples) > MAX_CLIP_SECONDS * rate:
        raise AudioError(f"{path}: {len(samples) / rate:.0f} s long; a keyword clip lasts about "
                         f"a second (at most {MAX_CLIP_SECONDS} s are read; long noise "
                         "recordings belong in _background_noise_/)")
    return fit_to_clip(resample(samples, rate, config.sample_rate), config.clip_samples)


def to_int16(clip: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to 16-bit PCM, clipping what is out of range."""
    return np.clip(np.round(clip * 32768.0), -32768, 32767).astype(np.int16)


def write_wav(path: str | Path, clip: np.ndarray, sample_rate: int) -> None:
    """Writes float samples in [-1, 1] as a 16-bit mono WAV file."""
    scipy.io.wavfile.write(path, sample_rate, to_int16(clip))
