"""tf.data pipelines from clips in memory to normalised log-mel batches."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kws.config import FeatureConfig, FrontEnd, Normalization
from kws.data.augment import (
    AugmentConfig,
    BackgroundNoise,
    augment_waveforms,
    shift_frames,
    spec_augment,
)
from kws.data.dataset import ClipSet
from kws.features import LogMelSpectrogram, normalization_from_features, normalize

# Features are computed in batches of this many clips: one STFT call per batch is much
# faster than one per clip, and the batch is small enough to stay in the CPU cache.
FEATURE_BATCH = 128


def _log_mel_batches(clips: ClipSet, config: FeatureConfig) -> tf.data.Dataset:
    """(log-mel batch, label batch) pairs, computed in parallel."""
    front_end = LogMelSpectrogram(config)
    return (
        tf.data.Dataset.from_tensor_slices((clips.clips, clips.labels.astype(np.int32)))
        .batch(FEATURE_BATCH)
        .map(lambda waves, labels: (front_end(waves), labels),
             num_parallel_calls=tf.data.AUTOTUNE)
    )


def fit_normalization(training: ClipSet, config: FeatureConfig) -> Normalization:
    """Per-mel-bin statistics of the training split's features."""
    features = np.concatenate([batch.numpy() for batch, _ in _log_mel_batches(training, config)])
    return normalization_from_features(features)


def make_dataset(clips: ClipSet, front_end: FrontEnd, batch_size: int,
                 shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of ``(features (batch, frames, mel bins), labels)`` for Keras ``fit``.

    Features are computed once and cached in memory; with ``shuffle_seed`` the clips are
    reshuffled every epoch, in an order fixed by the seed.
    """
    dataset = (
        _log_mel_batches(clips, front_end.features)
        .map(lambda features, labels: (normalize(features, front_end.normalization), labels),
             num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
        # Known size: Keras shows real progress bars and expects no more batches than exist.
        .apply(tf.data.experimental.assert_cardinality(len(clips)))
        .cache()
    )
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(clips), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_augmented_dataset(clips: ClipSet, front_end: FrontEnd, batch_size: int, seed: int,
                           augment: AugmentConfig,
                           background: tuple[np.ndarray, ...] = ()) -> tf.data.Dataset:
    """Training batches like ``make_dataset``'s, each clip augmented anew every epoch.

    Waveforms stay in memory; per batch: gain and noise on the waveforms, log-mel
    features, the time shift on their frames, then SpecAugment on the normalised
    features. Shuffle order and augmentation follow ``seed``: two runs with the same seed
    see the same batches.
    """
    config = front_end.features
    log_mel = LogMelSpectrogram(config)
    noise = BackgroundNoise(background, config.clip_samples) if background else None

    def augmented(batch, seed):
        waves, labels = batch
        log_mel_features = shift_frames(log_mel(augment_waveforms(waves, augment, noise, seed)),
                                        augment, config, seed)
        features = normalize(log_mel_features, front_end.normalization)
        return spec_augment(features, augment, seed), labels

    batches = (
        tf.data.Dataset.from_tensor_slices((clips.clips, clips.labels.astype(np.int32)))
        .shuffle(len(clips), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
    )
    # One random seed per batch, a new sequence every epoch, fixed by ``seed``.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return (tf.data.Dataset.zip(batches, seeds)
            .map(augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def features_array(clips: ClipSet, front_end: FrontEnd) -> np.ndarray:
    """Normalised features of every clip, in order, as one array (clips, frames, mel bins)."""
    dataset = make_dataset(clips, front_end, batch_size=FEATURE_BATCH)
    return np.concatenate([features.numpy() for features, _ in dataset])
