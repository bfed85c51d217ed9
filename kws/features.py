"""The log-mel front end as a Keras layer, so it batches and runs on any backend and device."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from kws.benchmark_tflite import pcen
from kws.config import FeatureConfig, FrontEnd, Normalization
from kws.errors import InputError


@keras.saving.register_keras_serializable(package="kws")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveforms ``(batch, clip_samples)`` to log-mel features ``(batch, frames, mel bins)``.

    Power spectrum of centred, Hann-windowed frames (``keras.ops.stft``), the HTK mel
    filter bank of ``keras.layers.MelSpectrogram``, then ``log(mel power + log_floor)``.
    Unlike the decibel scaling of ``MelSpectrogram``, nothing here depends on the loudest
    value in the batch, so a clip's features do not change with the clips batched beside
    it. Always computed in float32, as on the device, whatever the dtype policy.

    Args:
        config: The feature configuration; see ``kws.config.FeatureConfig``.
    """

    def __init__(self, config: FeatureConfig | None = None, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        self.config = config or FeatureConfig()
        self.mel_weights = keras.ops.convert_to_numpy(
            keras.layers.MelSpectrogram().linear_to_mel_weight_matrix(
                num_mel_bins=self.config.num_mel_bins,
                num_spectrogram_bins=self.config.fft_length // 2 + 1,
                sampling_rate=self.config.sample_rate,
                lower_edge_hertz=self.config.lower_edge_hz,
                upper_edge_hertz=self.config.upper_edge_hz,
            ))  # (spectrogram bins, mel bins)

    def call(self, waveforms):
        real, imag = keras.ops.stft(
            waveforms,
            sequence_length=self.config.window_samples,
            sequence_stride=self.config.hop_samples,
            fft_length=self.config.fft_length,
            window="hann",
            center=True,
        )  # (batch, frames, spectrogram bins) each
        # Straight from its parts: MelSpectrogram takes the magnitude (a square root),
        # squares it again and transposes twice, a quarter more time for the same values.
        power = real * real + imag * imag
        return keras.ops.log(keras.ops.matmul(power, self.mel_weights) + self.config.log_floor)

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


def smoother_weights(num_frames: int, time_constant: float) -> np.ndarray:
    """``(frames, frames)``: row ``t`` holds the weight of every frame in a causal smoother at
    frame ``t``, ``m[0] = x[0]``, ``m[t] = m[t - 1] + (x[t] - m[t - 1]) / time_constant``,
    the recurrence the device front end runs (``benchmark_tflite.Adaptation``)."""
    rate = 1.0 / time_constant
    frame = np.arange(num_frames)
    lag = frame[:, None] - frame[None, :]
    weights = np.where(lag >= 0, rate * (1.0 - rate) ** np.maximum(lag, 0), 0.0)
    weights[:, 0] = (1.0 - rate) ** frame  # the smoother starts at the first frame
    return weights


def adapt(log_mel, config: FeatureConfig):
    """Log-mel features ``(batch, frames, mel bins)`` after the front end's causal per-bin
    adaptation, on any Keras backend: less each bin's running mean
    (``FeatureConfig.running_mean_frames``), or PCEN of the mel energies
    (``FeatureConfig.pcen_frames``); unchanged when both are 0. One product with a fixed
    matrix each: no loop over the frames."""
    time_constant = config.pcen_frames or config.running_mean_frames
    if not time_constant:
        return log_mel
    weights = smoother_weights(config.num_frames, time_constant).astype("float32")
    if config.pcen_frames:
        energy = keras.ops.exp(log_mel)
        return pcen(energy, keras.ops.einsum("tk,bkf->btf", weights, energy))
    return log_mel - keras.ops.einsum("tk,bkf->btf", weights, log_mel)


def model_input(log_mel, front_end: FrontEnd):
    """Log-mel features to what the model reads: adapted (where the front end says so),
    then normalised with the training statistics."""
    return normalize(adapt(log_mel, front_end.features), front_end.normalization)


def normalize(features, normalization: Normalization):
    """Applies ``(features - mean) / std`` per mel bin, on any Keras backend."""
    mean = np.asarray(normalization.mean, dtype="float32")
    std = np.asarray(normalization.std, dtype="float32")
    return (features - mean) / std
