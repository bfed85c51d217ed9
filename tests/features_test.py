"""The Keras front end against the independent numpy one that runs on the device."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws import benchmark_tflite
from kws.config import FeatureConfig, Normalization
from kws.errors import InputError
from kws.features import (
    FeatureMoments,
    LogMelSpectrogram,
    adapt,
    normalization_from_features,
    normalize,
    smoother_weights,
)


def numpy_log_mel(clip: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The device front end of tools/benchmark_tflite.py: numpy only, float64."""
    return benchmark_tflite.log_mel(clip, dataclasses.asdict(config))


def clip_of(kind: str, config: FeatureConfig) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(config.clip_samples) / config.sample_rate
    return {
        "tone": 0.5 * np.sin(2 * np.pi * 440 * t),
        "chirp": 0.3 * np.sin(2 * np.pi * (100 + 3000 * t) * t),
        "noise": 0.1 * rng.standard_normal(config.clip_samples),
        "silence": np.zeros(config.clip_samples),
        "click": np.eye(1, config.clip_samples, 8000)[0],
    }[kind].astype(np.float32)


class LogMelSpectrogramTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("tone", "chirp", "noise", "silence", "click")
    def test_matches_numpy(self, kind):
        config = FeatureConfig()
        clip = clip_of(kind, config)
        keras_features = LogMelSpectrogram(config)(clip[None])[0]
        expected = numpy_log_mel(clip, config)
        self.assertEqual(keras_features.shape, (101, 40))
        self.assertAllClose(keras_features, expected, atol=2e-3, rtol=1e-4)

    def test_other_configuration_matches_numpy(self):
        config = FeatureConfig(sample_rate=8000, clip_samples=4000, window_samples=200,
                               hop_samples=80, fft_length=256, num_mel_bins=20,
                               upper_edge_hz=4000.0)
        clip = clip_of("chirp", FeatureConfig())[: config.clip_samples]
        keras_features = LogMelSpectrogram(config)(clip[None])[0]
        self.assertEqual(keras_features.shape, (51, 20))
        self.assertAllClose(keras_features, numpy_log_mel(clip, config), atol=2e-3, rtol=1e-4)

    def test_clip_features_do_not_depend_on_the_batch(self):
        config = FeatureConfig()
        quiet, loud = clip_of("tone", config) * 0.01, clip_of("noise", config) * 5
        alone = LogMelSpectrogram(config)(quiet[None])[0]
        batched = LogMelSpectrogram(config)(np.stack([quiet, loud]))[0]
        self.assertAllClose(alone, batched, atol=1e-5)

    def test_float32_whatever_the_dtype_policy(self):
        clip = clip_of("chirp", FeatureConfig())[None]
        expected = LogMelSpectrogram()(clip)
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            features = LogMelSpectrogram()(clip)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        self.assertEqual(features.dtype, "float32")  # as the device computes them
        self.assertAllEqual(features, expected)

    def test_serialization_round_trip(self):
        layer = LogMelSpectrogram(FeatureConfig(num_mel_bins=32))
        restored = LogMelSpectrogram.from_config(layer.get_config())
        self.assertEqual(restored.config, layer.config)


class NormalizationTest(tf.test.TestCase):
    def test_statistics_and_normalize(self):
        features = np.stack([np.full((3, 2), 1.0), np.full((3, 2), 3.0)]).astype(np.float32)
        features[..., 1] = 5.0  # a constant bin
        normalization = normalization_from_features(features)
        self.assertAllClose(normalization.mean, (2.0, 5.0))
        self.assertAllClose(normalization.std, (1.0, 1e-3))
        normalized = normalize(features, Normalization((2.0, 5.0), (1.0, 1.0)))
        self.assertAllClose(normalized[0, 0], (-1.0, 0.0))

    def test_batch_by_batch_equals_all_at_once(self):
        features = np.random.default_rng(0).normal(-5.0, 3.0, (50, 101, 40))
        moments = FeatureMoments(40)
        for batch in np.array_split(features, 7):
            moments.add(batch)
        whole = normalization_from_features(features)
        self.assertAllClose(moments.normalization().mean, whole.mean, rtol=0, atol=1e-12)
        self.assertAllClose(moments.normalization().std, features.reshape(-1, 40).std(axis=0),
                            rtol=1e-9)

    def test_no_features_is_an_error(self):
        with self.assertRaisesRegex(InputError, "no features to compute the normalization"):
            FeatureMoments(40).normalization()


class AdaptationTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(
        {"running_mean_frames": 1.5}, {"running_mean_frames": 30.0},
        {"running_mean_frames": 1000.0}, {"pcen_frames": 1.5}, {"pcen_frames": 40.0},
        {"pcen_frames": 1000.0})
    def test_matches_the_device_recurrence(self, **adaptation):
        config = FeatureConfig(**adaptation)
        log_mel = LogMelSpectrogram(config)(clip_of("chirp", config)[None])
        expected = benchmark_tflite.Adaptation(dataclasses.asdict(config))(
            np.asarray(log_mel[0], np.float64))
        self.assertAllClose(adapt(log_mel, config)[0], expected, atol=1e-4)

    def test_a_running_mean_takes_out_a_fixed_colouring_and_level(self):
        # A microphone's response and the loudness add a constant per bin to log power.
        config = FeatureConfig(running_mean_frames=50.0)
        log_mel = numpy_log_mel(clip_of("chirp", config), config)
        colouring = np.linspace(-6.0, 4.0, config.num_mel_bins)
        self.assertAllClose(adapt(log_mel[None] + colouring, config),
                            adapt(log_mel[None], config), atol=1e-4)
        self.assertAllClose(adapt(log_mel[None], config)[0, 0],
                            np.zeros(config.num_mel_bins))  # the mean starts at frame 0

    def test_pcen_by_hand(self):
        # Energies 1, 3, 3 in one bin with a time constant of 2: smoothed 1, 2, 2.5.
        config = FeatureConfig(pcen_frames=2.0, clip_samples=320)
        energy = np.array([1.0, 3.0, 3.0])
        smooth = np.array([1.0, 2.0, 2.5])
        expected = np.sqrt(energy / (1e-6 + smooth) ** 0.98 + 2.0) - np.sqrt(2.0)
        log_mel = np.log(energy).astype(np.float32)[None, :, None]
        self.assertAllClose(adapt(log_mel, config)[0, :, 0], expected, atol=1e-6)

    def test_pcen_hardly_moves_with_the_level(self):
        # A gain g scales energy / smooth ** 0.98 by g ** 0.02: 20 dB moves it 9.6 %, and
        # PCEN's square root less than that (where the energy is far above the epsilon).
        config = FeatureConfig(pcen_frames=40.0)
        log_mel = numpy_log_mel(clip_of("chirp", config), config)[None]
        audible = log_mel > np.log(1e-3)
        self.assertGreater(audible.sum(), 500)
        louder = np.asarray(adapt(log_mel + np.log(100.0), config))[audible]
        self.assertAllClose(louder, np.asarray(adapt(log_mel, config))[audible], rtol=0.0965)
        self.assertGreater(np.ptp(adapt(log_mel, config)), 0.5)  # and it is not flat

    def test_weights_of_each_frame_sum_to_one_and_never_look_ahead(self):
        weights = smoother_weights(101, 20.0)
        self.assertAllClose(weights.sum(axis=1), np.ones(101))
        self.assertAllEqual(np.triu(weights, 1), np.zeros((101, 101)))

    def test_off_changes_nothing(self):
        log_mel = np.random.default_rng(0).normal(size=(2, 101, 40)).astype(np.float32)
        self.assertIs(adapt(log_mel, FeatureConfig()), log_mel)
        frames = log_mel[0]
        self.assertIs(benchmark_tflite.Adaptation({})(frames), frames)

    @parameterized.product(flag=("running_mean_frames", "pcen_frames"),
                           time_constant=(0.5, 1.0, -3.0))
    def test_a_time_constant_of_a_frame_or_less_is_refused(self, flag, time_constant):
        with self.assertRaisesRegex(InputError, f"--{flag} must be 0 .off. or "
                                    f"more than 1 frame, got {time_constant}"):
            FeatureConfig(**{flag: time_constant})

    def test_pcen_and_a_running_mean_are_refused_together(self):
        with self.assertRaisesRegex(InputError, "--pcen_frames and --running_mean_frames "
                                                "given; PCEN adapts each bin itself"):
            FeatureConfig(pcen_frames=40.0, running_mean_frames=50.0)


if __name__ == "__main__":
    tf.test.main()
