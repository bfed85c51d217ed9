"""Training-split augmentation on TensorFlow ops: gain, time shift, noise, SpecAugment.

Every random draw is a stateless op seeded from the data (one seed per batch, from
``tf.data.Dataset.random``), never a number drawn once when ``map`` traces the function:
each clip gets its own shift, noise and masks, different every epoch and the same for
the same ``--seed``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from kws.config import FeatureConfig
from kws.errors import InputError


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """What happens to training clips; validation and test clips are never augmented.

    Args:
        gain_db: Each clip's level changes by a random gain of up to this many decibels
            either way, as speakers and microphones differ; 0 turns it off.
        time_shift_ms: Clips move earlier or later by up to this many milliseconds, in
            whole 10 ms frames (the gap is silence); 0 turns it off.
        background_frequency: Share of clips that get background noise mixed in, 0 to 1.
        background_volume: Noise is scaled by a volume drawn up to this (1 = as recorded).
        time_masks: SpecAugment masks across time per clip.
        time_mask_frames: Each time mask covers up to this many frames (10 ms each).
        frequency_masks: SpecAugment masks across frequency per clip.
        frequency_mask_bins: Each frequency mask covers up to this many mel bins.
    """

    gain_db: float = 10.0
    time_shift_ms: float = 100.0
    background_frequency: float = 0.8
    background_volume: float = 0.1
    time_masks: int = 2
    time_mask_frames: int = 10
    frequency_masks: int = 2
    frequency_mask_bins: int = 5

    def __post_init__(self) -> None:
        for name in ("gain_db", "time_shift_ms", "background_volume", "time_masks",
                     "time_mask_frames", "frequency_masks", "frequency_mask_bins"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name} must not be negative, got {getattr(self, name)!r}")
        if not 0 <= self.background_frequency <= 1:
            raise InputError("--background_frequency must be between 0 and 1, got "
                             f"{self.background_frequency!r}")

    @property
    def active(self) -> bool:
        return self != NO_AUGMENTATION


NO_AUGMENTATION = AugmentConfig(0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0)


def _uniform(seed: tf.Tensor, salt: int, shape) -> tf.Tensor:
    """Uniform [0, 1) values for ``shape``, independent for each ``salt``."""
    return tf.random.stateless_uniform(shape, seed=tf.stack([seed, tf.constant(salt, tf.int64)]))


def shift_in_time(values: tf.Tensor, max_shift: int, seed: tf.Tensor,
                  fill: float = 0.0) -> tf.Tensor:
    """Moves each clip along axis 1 (samples or frames) by its own whole number of steps
    in [-max, max]; the gap takes the value ``fill``."""
    batch, length = tf.shape(values)[0], tf.shape(values)[1]
    shifts = tf.cast(tf.floor(_uniform(seed, 1, [batch]) * (2 * max_shift + 1)),
                     tf.int32) - max_shift
    source = tf.range(length)[tf.newaxis, :] - shifts[:, tf.newaxis]
    inside = (source >= 0) & (source < length)
    moved = tf.gather(values, tf.clip_by_value(source, 0, length - 1), batch_dims=1)
    inside = tf.reshape(inside, tf.concat(
        [tf.shape(inside), tf.ones([tf.rank(values) - 2], tf.int32)], axis=0))
    return tf.where(inside, moved, tf.cast(fill, values.dtype))


def shift_frames(log_mel: tf.Tensor, config: AugmentConfig, features: FeatureConfig,
                 seed: tf.Tensor) -> tf.Tensor:
    """The time shift, on log-mel frames (batch, frames, bins) before normalisation.

    Moving whole 10 ms frames costs a hundredth of moving 16,000 samples and gives the
    same spectrogram up to the edge frames; the gap is silence, ``log(log_floor)``.
    """
    hop_ms = 1000 * features.hop_samples / features.sample_rate
    max_frames = round(config.time_shift_ms / hop_ms)
    if not max_frames:
        return log_mel
    return shift_in_time(log_mel, max_frames, seed, fill=math.log(features.log_floor))


class BackgroundNoise:
    """Background recordings, and the mixing of random windows of them into clips.

    Args:
        recordings: Noise recordings at the model's rate, each at least one clip long.
        clip_samples: Length of a clip in samples.
    """

    def __init__(self, recordings: tuple[np.ndarray, ...], clip_samples: int):
        self.clip_samples = clip_samples
        self.noise = tf.constant(np.concatenate(recordings).astype(np.float32))
        lengths = np.array([len(r) for r in recordings])
        self.starts = tf.constant(np.concatenate([[0], np.cumsum(lengths)[:-1]]), tf.int64)
        # Last possible window start in each recording, so a window never spans two.
        self.spans = tf.constant(lengths - clip_samples + 1, tf.int64)

    def mix(self, clips: tf.Tensor, frequency: float, max_volume: float,
            seed: tf.Tensor) -> tf.Tensor:
        """Adds a random window of noise to a ``frequency`` share of clips, each at its own
        volume up to ``max_volume``; the sum is clipped to [-1, 1] like a recording."""
        batch = tf.shape(clips)[0]
        count = tf.shape(self.spans, out_type=tf.int64)[0]
        which = tf.minimum(tf.cast(_uniform(seed, 2, [batch]) * tf.cast(count, tf.float32),
                                   tf.int64), count - 1)
        offsets = tf.cast(_uniform(seed, 3, [batch]) * tf.cast(tf.gather(self.spans, which),
                                                               tf.float32), tf.int64)
        first = tf.gather(self.starts, which) + offsets
        windows = tf.gather(self.noise, first[:, tf.newaxis] + tf.range(self.clip_samples,
                                                                         dtype=tf.int64))
        volumes = _uniform(seed, 4, [batch]) * max_volume
        volumes = tf.where(_uniform(seed, 5, [batch]) < frequency, volumes, 0.0)
        return tf.clip_by_value(clips + windows * volumes[:, tf.newaxis], -1.0, 1.0)


def _band_masks(batch, size: int, masks: int, max_width: int, seed: tf.Tensor,
                salt: int) -> tf.Tensor:
    """(batch, size) ones, with ``masks`` random bands of up to ``max_width`` set to zero."""
    widths = tf.floor(_uniform(seed, salt, [batch, masks]) * (max_width + 1))
    starts = tf.floor(_uniform(seed, salt + 1, [batch, masks]) * (size - widths + 1))
    position = tf.range(size, dtype=tf.float32)[tf.newaxis, tf.newaxis, :]
    inside = (position >= starts[..., tf.newaxis]) & \
        (position < (starts + widths)[..., tf.newaxis])
    return 1.0 - tf.cast(tf.reduce_any(inside, axis=1), tf.float32)


def spec_augment(features: tf.Tensor, config: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
    """Zeroes random bands of frames and of mel bins in normalised features (batch, frames,
    bins); zero is the training mean, so a mask carries no information."""
    batch, frames, bins = features.shape[0], features.shape[1], features.shape[2]
    batch = tf.shape(features)[0] if batch is None else batch
    keep_time = _band_masks(batch, frames, config.time_masks, config.time_mask_frames, seed, 6)
    keep_bins = _band_masks(batch, bins, config.frequency_masks, config.frequency_mask_bins,
                            seed, 8)
    return features * keep_time[:, :, tf.newaxis] * keep_bins[:, tf.newaxis, :]


def change_gain(clips: tf.Tensor, max_gain_db: float, seed: tf.Tensor) -> tf.Tensor:
    """Scales each clip by its own gain, uniform in [-max, max] dB, clipped to [-1, 1]."""
    gain_db = (2 * _uniform(seed, 0, [tf.shape(clips)[0]]) - 1) * max_gain_db
    return tf.clip_by_value(clips * 10 ** (gain_db[:, tf.newaxis] / 20), -1.0, 1.0)


def augment_waveforms(clips: tf.Tensor, config: AugmentConfig,
                      background: BackgroundNoise | None, seed: tf.Tensor) -> tf.Tensor:
    """Gain, then background noise (when there is any), on waveforms."""
    if config.gain_db:
        clips = change_gain(clips, config.gain_db, seed)
    if background is not None and config.background_frequency > 0:
        clips = background.mix(clips, config.background_frequency, config.background_volume,
                               seed)
    return clips
