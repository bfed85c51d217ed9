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
    if data.size == 0:
        raise AudioError(f"{path}: WAV file holds no samples")
    if rate <= 0:
        raise AudioError(f"{path}: WAV header gives a sample rate of {rate} Hz")
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


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy), exact for any pair of integer rates."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    divisor = math.gcd(from_rate, to_rate)
    resampled = scipy.signal.resample_poly(samples, to_rate // divisor, from_rate // divisor)
    return resampled.astype(np.float32)


def load_clip(path: str | Path, config: FeatureConfig) -> np.ndarray:
    """Reads one WAV file as a float32 clip at ``config.sample_rate`` of ``config.clip_samples``."""
    samples, rate = read_wav(path)
    return fit_to_clip(resample(samples, rate, config.sample_rate), config.clip_samples)


def to_int16(clip: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to 16-bit PCM, clipping what is out of range."""
    return np.clip(np.round(clip * 32768.0), -32768, 32767).astype(np.int16)


def write_wav(path: str | Path, clip: np.ndarray, sample_rate: int) -> None:
    """Writes float samples in [-1, 1] as a 16-bit mono WAV file."""
    scipy.io.wavfile.write(path, sample_rate, to_int16(clip))
