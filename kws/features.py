"""The log-mel front end as a Keras layer, so it batches and runs on any backend and device."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from kws.config import FeatureConfig, Normalization
from kws.errors import InputError


@keras.saving.register_keras_serializable(package="kws")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveforms ``(batch, clip_samples)`` to log-mel features ``(batch, frames, mel bins)``.

    Power spectrum of centred, Hann-windowed frames (``keras.layers.MelSpectrogram``),
    HTK mel filter bank, then ``log(mel power + log_floor)``. Unlike the decibel scaling
    of ``MelSpectrogram``, nothing here depends on the loudest value in the batch, so a
    clip's features do not change with the clips batched beside it.

    Args:
        config: The feature configuration; see ``kws.config.FeatureConfig``.
    """

    def __init__(self, config: FeatureConfig | None = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config or FeatureConfig()
        self.mel_power = keras.layers.MelSpectrogram(
            fft_length=self.config.fft_length,
            sequence_stride=self.config.hop_samples,
            sequence_length=self.config.window_samples,
            window="hann",
            sampling_rate=self.config.sample_rate,
            num_mel_bins=self.config.num_mel_bins,
            min_freq=self.config.lower_edge_hz,
            max_freq=self.config.upper_edge_hz,
            power_to_db=False,
            mag_exp=2.0,
        )

    def call(self, waveforms):
        mel = self.mel_power(waveforms)  # (batch, mel bins, frames)
        log_mel = keras.ops.log(mel + self.config.log_floor)
        return keras.ops.swapaxes(log_mel, -1, -2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.config.feature_shape)

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(FeatureConfig(**config.pop("config")), **config)


class FeatureMoments:
    """Per-mel-bin mean and deviation of features seen batch by batch, so a training
    split of any size is summarised without holding its features.

    Args:
        num_mel_bins: Mel bins per frame.
    """

    def __init__(self, num_mel_bins: int):
        self.frames = 0
        self.sum = np.zeros(num_mel_bins)
        self.sum_of_squares = np.zeros(num_mel_bins)

    def add(self, features: np.ndarray) -> FeatureMoments:
        """Counts features shaped ``(..., mel bins)``."""
        flat = np.asarray(features, dtype=np.float64).reshape(-1, len(self.sum))
        self.frames += len(flat)
        self.sum += flat.sum(axis=0)
        self.sum_of_squares += np.square(flat).sum(axis=0)
        return self

    def normalization(self) -> Normalization:
        if not self.frames:
            raise InputError("no features to compute the normalization from")
        mean = self.sum / self.frames
        variance = np.maximum(self.sum_of_squares / self.frames - np.square(mean), 0.0)
        std = np.maximum(np.sqrt(variance), 1e-3)  # a constant bin must not divide by zero
        return Normalization(mean=tuple(mean.tolist()), std=tuple(std.tolist()))


def normalization_from_features(features: np.ndarray) -> Normalization:
    """Per-mel-bin mean and deviation of features shaped ``(clips, frames, mel bins)``."""
    return FeatureMoments(features.shape[-1]).add(features).normalization()


def normalize(features, normalization: Normalization):
    """Applies ``(features - mean) / std`` per mel bin, on any Keras backend."""
    mean = np.asarray(normalization.mean, dtype="float32")
    std = np.asarray(normalization.std, dtype="float32")
    return (features - mean) / std
