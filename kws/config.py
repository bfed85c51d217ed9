"""The feature configuration: the one description of the front end.

It is saved beside every trained model (``features.json``) and read back by the export
and the on-device benchmark, so the spectrogram a model sees on the device is computed
exactly as the one it was trained on.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

from kws import fileio
from kws.errors import InputError

FEATURES_FILENAME = "features.json"
# Synthetic speech and downloaded datasets are kept here between runs.
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "kws"


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Log-mel spectrogram front end.

    Args:
        sample_rate: Audio sample rate in Hz; every clip is resampled to it.
        clip_samples: Length of one clip in samples (16000 = 1 s at 16 kHz).
        window_samples: Analysis window length in samples (400 = 25 ms).
        hop_samples: Hop between frames in samples (160 = 10 ms).
        fft_length: FFT size in samples; at least ``window_samples``.
        num_mel_bins: Number of mel bands.
        lower_edge_hz: Lowest frequency of the mel filter bank, in Hz.
        upper_edge_hz: Highest frequency of the mel filter bank, in Hz.
        log_floor: Added to the mel power before the natural log, so silence stays finite.
        running_mean_frames: Time constant, in frames, of a causal running mean of each mel
            bin's log power that is subtracted from it before the normalisation (online
            mean normalisation: a microphone's or a room's colouring and the level come
            out); 0 subtracts nothing. It starts at a clip's first frame, and a stream's.
        pcen_frames: Time constant, in frames, of the smoother of per-channel energy
            normalisation (PCEN, Wang et al. 2017, with its fixed gain 0.98, bias 2 and
            power 0.5), which then replaces the log of the mel energies: an automatic gain
            per mel bin that keeps onsets and forgets steady levels; 0 is the log. It starts
            at a clip's first frame, and a stream's. Not with ``running_mean_frames``.
    """

    sample_rate: int = 16000
    clip_samples: int = 16000
    window_samples: int = 400
    hop_samples: int = 160
    fft_length: int = 512
    num_mel_bins: int = 40
    lower_edge_hz: float = 20.0
    upper_edge_hz: float = 7600.0
    log_floor: float = 1e-6
    running_mean_frames: float = 0.0
    pcen_frames: float = 0.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "clip_samples", "window_samples", "hop_samples",
                     "fft_length", "num_mel_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise InputError(f"FeatureConfig.{name} must be a positive integer, got {value!r}")
        if self.fft_length < self.window_samples:
            raise InputError(
                f"FeatureConfig.fft_length ({self.fft_length}) must be at least "
                f"window_samples ({self.window_samples})"
            )
        if not 0 <= self.lower_edge_hz < self.upper_edge_hz <= self.sample_rate / 2:
            raise InputError(
                "FeatureConfig needs 0 <= lower_edge_hz < upper_edge_hz <= sample_rate / 2, got "
                f"{self.lower_edge_hz!r}, {self.upper_edge_hz!r} at {self.sample_rate} Hz"
            )
        if not self.log_floor > 0:
            raise InputError(f"FeatureConfig.log_floor must be positive, got {self.log_floor!r}")
        if not (self.running_mean_frames == 0 or self.running_mean_frames > 1):
            raise InputError("--running_mean_frames must be 0 (off) or more than 1 frame, got "
                             f"{self.running_mean_frames!r}")
        if not (self.pcen_frames == 0 or self.pcen_frames > 1):
            raise InputError("--pcen_frames must be 0 (off) or more than 1 frame, got "
                             f"{self.pcen_frames!r}")
        if self.pcen_frames and self.running_mean_frames:
            raise InputError("--pcen_frames and --running_mean_frames given; PCEN adapts "
                             "each bin itself, pass one of them")

    @property
    def hop_ms(self) -> float:
        """Milliseconds between frames."""
        return 1000 * self.hop_samples / self.sample_rate

    @property
    def num_frames(self) -> int:
        """Frames per clip: frames are centred, so one every hop from sample 0 to the end."""
        return 1 + self.clip_samples // self.hop_samples

    @property
    def feature_shape(self) -> tuple[int, int]:
        """Shape of one clip's features: (frames, mel bins), e.g. (101, 40)."""
        return (self.num_frames, self.num_mel_bins)


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Per-mel-bin mean and standard deviation, computed on the training split only."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise InputError(
                f"Normalization has {len(self.mean)} means but {len(self.std)} deviations"
            )
        if not all(math.isfinite(s) and s > 0 for s in self.std):
            raise InputError("Normalization.std must be finite and positive in every bin")


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """Everything needed to turn audio into a model's input and its output into a label."""

    features: FeatureConfig
    normalization: Normalization
    labels: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "features": dataclasses.asdict(self.features),
            "normalization": dataclasses.asdict(self.normalization),
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, data: dict) -> FrontEnd:
        normalization = data["normalization"]
        return cls(
            features=FeatureConfig(**data["features"]),
            normalization=Normalization(
                mean=tuple(normalization["mean"]), std=tuple(normalization["std"])
            ),
            labels=tuple(data["labels"]),
        )

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / FEATURES_FILENAME
        fileio.write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, run_dir_or_file: str | Path) -> FrontEnd:
        """Reads ``features.json`` from a run folder (or the file itself)."""
        path = Path(run_dir_or_file)
        if path.is_dir():
            path = path / FEATURES_FILENAME
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise InputError(
                f"{path}: no feature configuration; it is written by `python -m kws.train`"
            ) from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InputError(f"{path}: not a valid feature configuration ({error})") from None


# The choices of kws.train's flags, here without TensorFlow: the flag definitions and the
# checks of TrainConfig and kws.distribute share them, and a wrong --models is refused
# before TensorFlow loads. The study's models in its order (kws.models builds them).
MODEL_NAMES = ("fc", "cnn", "gru")
DISTRIBUTIONS = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
FEATURE_PLACEMENTS = ("auto", "pipeline", "accelerator")
LR_SCHEDULES = ("constant", "cosine")
BEST_OF_TIES = ("first", "last")
KEPT_EPOCHS = ("best", "last")


def check_choice(flag: str, value: str, choices: Sequence[str]) -> None:
    """Raises ``InputError`` quoting ``--flag=value`` when ``value`` is not in ``choices``."""
    if value not in choices:
        raise InputError(f"--{flag}={value}: unknown; choose from " + ", ".join(choices))


def check_model_names(names: Sequence[str]) -> None:
    """Raises ``InputError`` for no names, or for a name that is not in ``MODEL_NAMES``."""
    if not names:
        raise InputError("--models is empty; choose from " + ", ".join(MODEL_NAMES))
    unknown = [name for name in names if name not in MODEL_NAMES]
    if unknown:
        raise InputError(
            f"unknown model {', '.join(map(repr, unknown))}; choose from {', '.join(MODEL_NAMES)}"
        )


def parse_word_list(text: str | Sequence[str], what: str) -> tuple[str, ...]:
    """Splits ``"yes,no,up"`` into words, rejecting empty entries and duplicates."""
    words = [w.strip() for w in text.split(",")] if isinstance(text, str) else list(text)
    if any(not w for w in words):
        raise InputError(f"{what} has an empty entry: {text!r}")
    duplicates = sorted({w for w in words if words.count(w) > 1})
    if duplicates:
        raise InputError(f"{what} lists {', '.join(duplicates)} more than once: {text!r}")
    return tuple(words)


def parse_word_weights(text: str, what: str) -> tuple[tuple[str, int], ...]:
    """Splits ``"left:3,go:2"`` into (word, whole number) pairs."""
    pairs = []
    for entry in parse_word_list(text, what):
        word, _, times = entry.partition(":")
        if not word or not times.strip().isdigit():
            raise InputError(f"{what}: {entry!r} is not word:times (a whole number), e.g. "
                             "left:3")
        pairs.append((word.strip(), int(times)))
    parse_word_list(",".join(word for word, _ in pairs), what)  # a word given twice
    return tuple(pairs)
