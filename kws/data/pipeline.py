"""tf.data pipelines from clips (in memory or in prepared records) to normalised log-mel
batches."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable

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
from kws.errors import InputError
from kws.features import FeatureMoments, LogMelSpectrogram, normalize

# Features are computed in batches of this many clips: one STFT call per batch is much
# faster than one per clip, and the batch is small enough to stay in the CPU cache.
FEATURE_BATCH = 128


@dataclasses.dataclass(frozen=True)
class ClipSource:
    """One split's clips as ``tf.data`` batches: (waveforms float32 ``(batch,
    clip_samples)``, label indices int32 ``(batch,)``).

    Args:
        size: Number of clips.
        batches: Makes the dataset of batches, given the batch size and a seed; with a seed
            the clips come in an order that changes every epoch and is fixed by the seed,
            else always in the same order. Batches, not single clips: splitting and joining
            batches clip by clip costs more than reading them.
        in_memory: The clips are in memory, so their features fit there too: computed once
            and cached rather than every epoch.
    """

    size: int
    batches: Callable[[int, int | None], tf.data.Dataset]
    in_memory: bool

    def sample(self, count: int, seed: int) -> ClipSource:
        """``count`` clips drawn with ``seed`` from the whole split, in split order (all of
        them when there are fewer)."""
        chosen = np.zeros(self.size, bool)
        chosen[np.random.default_rng(seed).permutation(self.size)[:count]] = True

        def batches(batch_size: int, _: int | None) -> tf.data.Dataset:
            kept = tf.data.Dataset.zip(
                tf.data.Dataset.from_tensor_slices(chosen).batch(FEATURE_BATCH),
                self.batches(FEATURE_BATCH, None),
            ).map(lambda keep, clips: (tf.boolean_mask(clips[0], keep),
                                       tf.boolean_mask(clips[1], keep)))
            return kept.unbatch().batch(batch_size)

        return ClipSource(int(chosen.sum()), batches, in_memory=False)


def memory_source(clips: ClipSet) -> ClipSource:
    def batches(batch_size: int, shuffle_seed: int | None) -> tf.data.Dataset:
        dataset = tf.data.Dataset.from_tensor_slices((clips.clips,
                                                      clips.labels.astype(np.int32)))
        if shuffle_seed is not None:
            dataset = dataset.shuffle(len(clips), seed=shuffle_seed,
                                      reshuffle_each_iteration=True)
        return dataset.batch(batch_size)

    return ClipSource(len(clips), batches, in_memory=True)


def fit_normalization(training: ClipSource, config: FeatureConfig) -> Normalization:
    """Per-mel-bin statistics of the training split's features, batch by batch."""
    log_mel = LogMelSpectrogram(config)
    moments = FeatureMoments(config.num_mel_bins)
    for features in (training.batches(FEATURE_BATCH, None)
                     .map(lambda waves, _: log_mel(waves), num_parallel_calls=tf.data.AUTOTUNE)
                     .prefetch(tf.data.AUTOTUNE)):
        moments.add(features.numpy())
    return moments.normalization()


def _batch_count(source: ClipSource, batch_size: int):
    # Known size: Keras shows real progress bars and expects no more batches than exist.
    return tf.data.experimental.assert_cardinality(-(-source.size // batch_size))


def make_dataset(source: ClipSource, front_end: FrontEnd, batch_size: int,
                 shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of ``(features (batch, frames, mel bins), labels)`` for Keras ``fit``.

    Features of clips in memory are computed once and cached; with ``shuffle_seed`` the
    clips are reshuffled every epoch, in an order fixed by the seed.
    """
    log_mel = LogMelSpectrogram(front_end.features)

    def features(waves, labels):
        return normalize(log_mel(waves), front_end.normalization), labels

    if not source.in_memory:
        return (source.batches(batch_size, shuffle_seed)
                .map(features, num_parallel_calls=tf.data.AUTOTUNE)
                .apply(_batch_count(source, batch_size))
                .prefetch(tf.data.AUTOTUNE))
    dataset = (
        source.batches(FEATURE_BATCH, None)
        .map(features, num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
        .apply(tf.data.experimental.assert_cardinality(source.size))
        .cache()
    )
    if shuffle_seed is not None:
        dataset = dataset.shuffle(source.size, seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_augmented_dataset(source: ClipSource, front_end: FrontEnd, batch_size: int, seed: int,
                           augment: AugmentConfig,
                           background: tuple[np.ndarray, ...] = ()) -> tf.data.Dataset:
    """Training batches like ``make_dataset``'s, each clip augmented anew every epoch.

    Per batch: gain and noise on the waveforms, log-mel features, the time shift on their
    frames, then SpecAugment on the normalised features. Shuffle order and augmentation
    follow ``seed``: two runs with the same seed see the same batches.
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

    batches = source.batches(batch_size, seed).apply(_batch_count(source, batch_size))
    # One random seed per batch, a new sequence every epoch, fixed by ``seed``.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return (tf.data.Dataset.zip(batches, seeds)
            .map(augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def on_data_service(dataset: tf.data.Dataset, address: str) -> tf.data.Dataset:
    """``dataset`` computed by the workers of the tf.data service whose dispatcher is at
    ``address`` (``[grpc://]host:port``), each batch by one of them once per epoch.

    The workers run the dataset's graph themselves (augmentation and features included):
    every file it reads must be readable there. Batches arrive in the order the workers
    finish them, so runs are not reproducible batch for batch.
    """
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode="distributed_epoch", service=address))


def check_data_service(address: str) -> None:
    """Raises ``InputError`` unless a dispatcher answers at ``[grpc://]host:port``: the
    service's client would wait for one without end."""
    host, _, port = address.removeprefix("grpc://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as error:
        raise InputError(
            f"--data_service={address}: no dispatcher answers there ({error}); start one "
            "with python -m kws.data_service --port=PORT, and workers with "
            "python -m kws.data_service --dispatcher=HOST:PORT") from None


def features_and_labels(source: ClipSource, front_end: FrontEnd) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """Normalised features of every clip, in order, as one array (clips, frames, mel bins),
    and their label indices."""
    batches = list(make_dataset(source, front_end, batch_size=FEATURE_BATCH))
    return (np.concatenate([features.numpy() for features, _ in batches]),
            np.concatenate([labels.numpy() for _, labels in batches]))


def features_array(clips: ClipSet, front_end: FrontEnd) -> np.ndarray:
    """Normalised features of every clip in memory, in order (clips, frames, mel bins)."""
    return features_and_labels(memory_source(clips), front_end)[0]
