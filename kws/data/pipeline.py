"""tf.data pipelines from clips (in memory or in prepared records) to normalised log-mel
batches."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from kws.config import FeatureConfig, FrontEnd, Normalization
from kws.data.augment import (
    AugmentConfig,
    BackgroundNoise,
    augment_waveforms,
    coloured_noise_bank,
    room_spectra,
    shift_frames,
    spec_augment,
    through_microphones,
)
from kws.errors import InputError
from kws.features import FeatureMoments, LogMelSpectrogram, adapt, model_input

if TYPE_CHECKING:
    from kws.data.dataset import ClipSet  # which builds its sources here

# Features are computed in batches of this many clips, whatever the training batch: one
# STFT call per batch is much faster than one per clip, and the frames of 32 clips (6.6 MB)
# stay in the CPU cache, where those of 64 took a third longer per clip.
FEATURE_BATCH = 32


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
        epoch_size: Clips in one shuffled epoch, when that is not ``size`` (a pool of
            clips redrawn every epoch, ``ClipSet.redrawn_label``).
    """

    size: int
    batches: Callable[[int, int | None], tf.data.Dataset]
    in_memory: bool
    epoch_size: int | None = None

    @property
    def shuffled_size(self) -> int:
        return self.size if self.epoch_size is None else self.epoch_size

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
    with tf.device("/cpu:0"):  # tf.data reads them there
        waveforms = tf.constant(clips.clips)
        labels = tf.constant(clips.labels.astype(np.int32))

    pool = clips.pool
    kept = np.setdiff1d(np.arange(len(clips)), pool)

    def batches(batch_size: int, shuffle_seed: int | None) -> tf.data.Dataset:
        # Clip numbers are shuffled, not clips: a shuffle buffer of whole clips copied the
        # split into it before the first batch of every epoch.
        order = tf.data.Dataset.range(len(clips))
        if shuffle_seed is not None and len(pool):
            drawn = (tf.data.Dataset.from_tensor_slices(pool)
                     .shuffle(len(pool), seed=shuffle_seed + 1, reshuffle_each_iteration=True)
                     .take(clips.epoch_size - len(kept)))
            order = tf.data.Dataset.from_tensor_slices(kept).concatenate(drawn)
        if shuffle_seed is not None:
            order = order.shuffle(len(clips), seed=shuffle_seed, reshuffle_each_iteration=True)
        return order.batch(batch_size).map(
            lambda chosen: (tf.gather(waveforms, chosen), tf.gather(labels, chosen)))

    return ClipSource(len(clips), batches, in_memory=True,
                      epoch_size=clips.epoch_size if len(pool) else None)


# XLA takes seconds to compile the front end (about 7 s for the augmented one, 2 s for the
# plain one, on a 2-core machine) and then computes its clips faster; a function that
# computes fewer clips than this in a run does not win that time back.
XLA_MIN_CLIPS = 50_000


def worth_compiling(clips: int) -> bool:
    """Whether a front end that will compute ``clips`` clips should be compiled by XLA."""
    return clips >= XLA_MIN_CLIPS


def compiled(fn: Callable, xla: bool) -> Callable:
    """``fn`` as a traced function, compiled by XLA when ``xla``. XLA fuses the front end's
    many element-wise passes over frames that do not fit the CPU cache: the augmented
    training pipeline delivered 38 % more clips per second on a 2-core machine. Traced
    without AutoGraph: the front end branches only on Python values, and converting the
    augmentation's code cost about 10 s of every run."""
    return tf.function(fn, jit_compile=xla, autograph=False)


def fit_normalization(training: ClipSource, config: FeatureConfig) -> Normalization:
    """Per-mel-bin statistics of the training split's features, batch by batch."""
    log_mel = LogMelSpectrogram(config)
    moments = FeatureMoments(config.num_mel_bins)
    for features in (training.batches(FEATURE_BATCH, None)
                     .map(compiled(lambda waves, _: adapt(log_mel(waves), config),
                                   worth_compiling(training.size)),
                          num_parallel_calls=tf.data.AUTOTUNE)
                     .prefetch(tf.data.AUTOTUNE)):
        moments.add(features.numpy())
    return moments.normalization()


def _batch_count(source: ClipSource, batch_size: int):
    """The number of shuffled batches: Keras shows real progress bars and expects no more
    batches than exist."""
    return tf.data.experimental.assert_cardinality(-(-source.shuffled_size // batch_size))


def make_dataset(source: ClipSource, front_end: FrontEnd, batch_size: int,
                 shuffle_seed: int | None = None, epochs: int = 1) -> tf.data.Dataset:
    """Batches of ``(features (batch, frames, mel bins), labels)`` for Keras ``fit``.

    Features of clips in memory are computed once and cached (but for a pool redrawn every
    epoch: computing them costs a tenth of a train step); with ``shuffle_seed`` the clips
    are reshuffled every epoch, in an order fixed by the seed. ``epochs``: how many times
    the dataset will be read (it decides whether XLA compiles an uncached front end).
    """
    log_mel = LogMelSpectrogram(front_end.features)
    cached = source.in_memory and (shuffle_seed is None or source.epoch_size is None)

    def features(waves, labels):
        return model_input(log_mel(waves), front_end), labels

    features = compiled(features, worth_compiling(
        source.size if cached else source.shuffled_size * epochs))
    if not cached:
        return (source.batches(FEATURE_BATCH, shuffle_seed)
                .map(features, num_parallel_calls=tf.data.AUTOTUNE)
                .rebatch(batch_size)
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


class TrainingFeatures(keras.layers.Layer):
    """Training clips to features, each clip augmented anew every time: ``(waveforms
    (batch, clip_samples), seeds (batch,))`` to normalised features ``(batch, frames, mel
    bins)``.

    ``augment_waveforms`` on the waveforms, log-mel features, the time shift on their frames,
    the running mean subtracted (where the front end has one), then SpecAugment on the
    normalised features, every draw from the batch's seed (the first of ``seeds``). The
    input pipeline computes it (``make_augmented_dataset``), or the accelerator as the first
    layer of the model being trained (``waveform_batches``),
    compiled the same way in both places (by XLA for ``xla``), so both draw the same
    numbers.

    Args:
        front_end: Feature configuration and training normalisation.
        augment: What happens to the clips.
        background: Noise recordings at the model's rate.
        rooms: Room impulse responses ``(rooms, samples)`` at the model's rate
            (``kws.data.rooms.room_bank``), or None for no rooms.
        xla: Whether XLA compiles it (``worth_compiling``: for runs long enough to win
            the compile time back).
    """

    def __init__(self, front_end: FrontEnd, augment: AugmentConfig,
                 background: tuple[np.ndarray, ...] = (), rooms: np.ndarray | None = None,
                 xla: bool = True, **kwargs):
        super().__init__(**{"dtype": "float32", "trainable": False, **kwargs})
        self.front_end = front_end
        self.augment = augment
        self.log_mel = LogMelSpectrogram(front_end.features)
        self.noise = BackgroundNoise(background, front_end.features.clip_samples) \
            if background else None
        self.rooms = room_spectra(rooms, front_end.features.clip_samples) \
            if rooms is not None else None
        self.coloured = BackgroundNoise(coloured_noise_bank(front_end.features.sample_rate),
                                        front_end.features.clip_samples) \
            if augment.noise_frequency else None
        self.compute = compiled(self.augmented_features, xla)

    def augmented_features(self, waves: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
        seed, config = seeds[0], self.front_end.features
        log_mel = self.log_mel(augment_waveforms(waves, self.augment, self.noise, seed,
                                                 self.rooms, self.coloured))
        if self.augment.microphone_frequency:
            log_mel = through_microphones(log_mel, self.log_mel.mel_weights,
                                          self.augment.microphone_frequency, config, seed)
        features = model_input(shift_frames(log_mel, self.augment, config, seed),
                               self.front_end)
        return spec_augment(features, self.augment, seed)

    def call(self, inputs):
        waves, seeds = inputs
        return self.compute(waves, seeds)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], *self.front_end.features.feature_shape)


def _seeded_batches(source: ClipSource, batch_size: int, seed: int) -> tf.data.Dataset:
    """``((waveforms, seeds), labels)`` batches: the clips in an order that changes every
    epoch, and seeds counting up from one random number per batch (a new sequence every
    epoch, fixed by ``seed``), so each replica's share of a batch starts at its own seed."""
    def with_seeds(batch, first_seed):
        waves, labels = batch
        return (waves, first_seed + tf.range(tf.size(labels, out_type=tf.int64))), labels

    random = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(source.batches(batch_size, seed), random).map(with_seeds)


def waveform_batches(source: ClipSource, batch_size: int, seed: int) -> tf.data.Dataset:
    """Training batches for a model that computes its features itself (``TrainingFeatures``
    as its first layer): ``((waveforms, seeds), labels)``."""
    return (_seeded_batches(source, batch_size, seed)
            .apply(_batch_count(source, batch_size))
            .prefetch(tf.data.AUTOTUNE))


def labels_twice(batches: tf.data.Dataset) -> tf.data.Dataset:
    """``batches`` with each label twice, ``(batch, 2)``: for a model that scores every clip
    two ways (``kws.training.with_carried_state``)."""
    return batches.map(lambda inputs, labels: (inputs, tf.stack([labels, labels], axis=1)))


def make_augmented_dataset(source: ClipSource, features: TrainingFeatures, batch_size: int,
                           seed: int, keep_seeds: bool = False) -> tf.data.Dataset:
    """Training batches like ``make_dataset``'s, each clip augmented anew every epoch by
    ``features``, ``FEATURE_BATCH`` clips at a time; with ``keep_seeds``, ``((features,
    seeds), labels)`` batches, the clips' seeds beside them. Shuffle order and augmentation
    follow ``seed``: two runs with the same seed see the same batches."""
    def augmented(inputs, labels):
        return ((features(inputs), inputs[1]) if keep_seeds else features(inputs)), labels

    return (_seeded_batches(source, FEATURE_BATCH, seed)
            .map(augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .rebatch(batch_size)
            .apply(_batch_count(source, batch_size))
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
