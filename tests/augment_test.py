"""Augmentation: exact outputs where the draw is forced, bounds, per-clip and per-seed."""

import dataclasses

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws.config import FeatureConfig, FrontEnd, Normalization
from kws.data import augment
from kws.data.augment import AugmentConfig, BackgroundNoise
from kws.data.dataset import ClipSet
from kws.data.pipeline import (
    TrainingFeatures,
    features_array,
    make_augmented_dataset,
    memory_source,
)
from kws.errors import InputError
from kws.features import LogMelSpectrogram

SEED = tf.constant(7, tf.int64)


def ramp(batch: int, length: int = 100) -> tf.Tensor:
    return tf.tile(tf.range(1, length + 1, dtype=tf.float32)[tf.newaxis] / length, [batch, 1])


class ShiftInTimeTest(tf.test.TestCase):
    def test_each_clip_is_a_zero_filled_shift_of_itself(self):
        clips = ramp(32)
        shifted = augment.shift_in_time(clips, 10, SEED).numpy()
        shifts = set()
        for row in shifted:
            nonzero = np.flatnonzero(row)
            # A ramp shifted by s starts with value (1 - s) / 100 at sample 0, or is zero there.
            shift = nonzero[0] if nonzero[0] > 0 else 1 - round(row[0] * 100)
            self.assertBetween(shift, -10, 10)
            expected = np.roll(clips.numpy()[0], shift)
            expected[:max(shift, 0)] = 0
            expected[len(expected) + min(shift, 0):] = 0
            self.assertAllClose(row, expected)
            shifts.add(shift)
        self.assertGreater(len(shifts), 5)  # every clip draws its own shift

    def test_no_shift_leaves_clips_alone(self):
        self.assertAllEqual(augment.shift_in_time(ramp(4), 0, SEED), ramp(4))

    def test_frames_move_whole_and_the_gap_is_silence(self):
        log_mel = tf.tile(ramp(16, 101)[:, :, tf.newaxis], [1, 1, 40])
        shifted = augment.shift_frames(log_mel, AugmentConfig(time_shift_ms=50.0),
                                       FeatureConfig(), SEED).numpy()
        silence = np.log(FeatureConfig().log_floor)
        for clip in shifted:
            self.assertAllEqual(clip.min(axis=1), clip.max(axis=1))  # every bin moved alike
            gap = np.isclose(clip[:, 0], silence)
            self.assertLessEqual(gap.sum(), 5)  # 50 ms = 5 frames at most
            kept = clip[~gap, 0]
            self.assertAllClose(np.diff(kept), np.full(len(kept) - 1, 1 / 101), atol=1e-6)

    def test_frame_shift_off(self):
        log_mel = tf.ones([2, 101, 40])
        self.assertAllEqual(augment.shift_frames(log_mel, AugmentConfig(time_shift_ms=0.0),
                                                 FeatureConfig(), SEED), log_mel)


class GainTest(tf.test.TestCase):
    def test_gain_stays_within_the_bound(self):
        clips = tf.fill([64, 10], 0.01)
        ratio = (augment.change_gain(clips, 6.0, SEED) / clips).numpy()
        self.assertAllClose(ratio.min(axis=1), ratio.max(axis=1))  # one gain per clip
        gains_db = 20 * np.log10(ratio[:, 0])
        self.assertBetween(gains_db.min(), -6.0, -3.0)
        self.assertBetween(gains_db.max(), 3.0, 6.0)


class BackgroundNoiseTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        # Two recordings of constant levels: a window of either has only that value.
        self.noise = BackgroundNoise((np.full(150, 0.5, np.float32),
                                      np.full(300, -0.25, np.float32)), clip_samples=100)

    def test_frequency_one_mixes_a_window_into_every_clip(self):
        mixed = self.noise.mix(tf.zeros([200, 100]), 1.0, 1.0, SEED).numpy()
        self.assertAllClose(mixed.min(axis=1), mixed.max(axis=1))  # one recording, one volume
        levels = mixed[:, 0]
        self.assertTrue(np.all((levels >= -0.25) & (levels <= 0.5)))
        self.assertTrue(np.any(levels > 0.1) and np.any(levels < -0.1))  # both recordings

    def test_frequency_zero_changes_nothing(self):
        clips = ramp(8)
        self.assertAllEqual(self.noise.mix(clips, 0.0, 1.0, SEED), clips)

    def test_frequency_is_the_share_of_clips(self):
        mixed = self.noise.mix(tf.zeros([2000, 100]), 0.3, 1.0, SEED).numpy()
        self.assertBetween(np.mean(mixed[:, 0] != 0), 0.25, 0.35)


class SpecAugmentTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(("one", 1, 10, 1, 5), ("two", 2, 10, 2, 5),
                                    ("wide", 2, 30, 2, 12))
    def test_masks_stay_within_their_bounds(self, time_masks, frames, frequency_masks, bins):
        config = AugmentConfig(time_masks=time_masks, time_mask_frames=frames,
                               frequency_masks=frequency_masks, frequency_mask_bins=bins)
        masked = augment.spec_augment(tf.ones([64, 101, 40]), config, SEED).numpy()
        frame_masked = np.all(masked == 0, axis=2)
        bin_masked = np.all(masked == 0, axis=1)
        self.assertLessEqual(frame_masked.sum(axis=1).max(), time_masks * frames)
        self.assertLessEqual(bin_masked.sum(axis=1).max(), frequency_masks * bins)
        self.assertGreater(frame_masked.sum(), 0)
        self.assertGreater(len(set(frame_masked.sum(axis=1))), 3)  # each clip its own masks
        # Only whole frames and whole bins are zeroed.
        self.assertAllEqual(masked == 0, frame_masked[:, :, None] | bin_masked[:, None, :])

    def test_no_masks_leave_features_alone(self):
        config = AugmentConfig(time_masks=0, frequency_masks=0)
        self.assertAllEqual(augment.spec_augment(tf.ones([2, 101, 40]), config, SEED),
                            tf.ones([2, 101, 40]))


class AugmentConfigTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("frequency", {"background_frequency": 1.5}, "--background_frequency must be between"),
        ("shift", {"time_shift_ms": -1.0}, "--time_shift_ms must not be negative, got -1.0"),
        ("masks", {"time_masks": -2}, "--time_masks must not be negative, got -2"),
        ("mixup", {"mixup_alpha": -0.4}, "--mixup_alpha must not be negative, got -0.4"),
        ("rooms", {"room_frequency": -0.1}, "--room_frequency must be between 0 and 1, got -0.1"),
        ("speed", {"speed_change": 1.0}, r"--speed_change must be in \[0, 1\), got 1.0"),
        ("snr", {"noise_snr_min_db": 20.0, "noise_snr_max_db": 10.0},
         "--noise_snr_min_db=20.0 is above --noise_snr_max_db=10.0"),
    )
    def test_rejects_bad_values(self, overrides, message):
        with self.assertRaisesRegex(InputError, message):
            AugmentConfig(**overrides)

    def test_active(self):
        self.assertTrue(AugmentConfig().active)
        self.assertFalse(augment.NO_AUGMENTATION.active)


class AugmentedDatasetTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        # The same clip 64 times: any difference between them is augmentation.
        wave = (np.sin(np.arange(16000) / 7.0) * 0.3).astype(np.float32)
        self.clips = ClipSet(np.tile(wave, (64, 1)), np.zeros(64, int), ("s",) * 64)
        self.front_end = FrontEnd(FeatureConfig(), Normalization((0.0,) * 40, (1.0,) * 40),
                                  ("a", "b"))
        self.background = (rng.standard_normal(48000).astype(np.float32) * 0.2,)

    def epochs(self, seed: int, count: int = 2) -> list[np.ndarray]:
        features = TrainingFeatures(self.front_end, AugmentConfig(), self.background)
        dataset = make_augmented_dataset(memory_source(self.clips), features, 16, seed)
        return [np.concatenate([features.numpy() for features, _ in dataset])
                for _ in range(count)]

    def test_every_clip_and_every_epoch_differ(self):
        first, second = self.epochs(seed=1)
        self.assertEqual(first.shape, (64, 101, 40))
        self.assertGreater(np.abs(first[0] - first[1]).max(), 0.1)
        self.assertGreater(np.abs(first - second).max(), 0.1)

    def test_same_seed_same_batches(self):
        self.assertAllEqual(np.stack(self.epochs(seed=3)), np.stack(self.epochs(seed=3)))
        self.assertNotAllClose(self.epochs(seed=3, count=1)[0], self.epochs(seed=4, count=1)[0])

    def test_unaugmented_features_are_the_clean_ones(self):
        clean = features_array(self.clips, self.front_end)
        # The front end alone on the clip (the normalisation here changes nothing).
        direct = np.asarray(LogMelSpectrogram(self.front_end.features)(self.clips.clips[:1]))
        self.assertAllClose(clean, np.repeat(direct, 64, axis=0), atol=1e-4)
        self.assertNotAllClose(self.epochs(seed=1, count=1)[0], clean)


if __name__ == "__main__":
    tf.test.main()


def tone(hz: float, batch: int = 1, samples: int = 16000) -> tf.Tensor:
    wave = np.sin(2 * np.pi * hz * np.arange(samples) / 16000).astype(np.float32) * 0.5
    return tf.constant(np.tile(wave, (batch, 1)))


def peak_hz(wave: np.ndarray) -> float:
    middle = wave[4000:12000] * np.hanning(8000)  # away from the silent edges
    return float(np.argmax(np.abs(np.fft.rfft(middle, 160000))) / 10)


class SpeedTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(0.9, 1.0, 1.07)
    def test_a_tone_moves_by_the_factor(self, factor):
        played = augment.play_at_speed(tone(500.0), tf.constant([factor])).numpy()[0]
        self.assertAllClose(peak_hz(played), 500.0 * factor, atol=0.5)

    def test_faster_leaves_silence_at_both_ends(self):
        played = augment.play_at_speed(tf.ones([1, 1000]), tf.constant([1.1])).numpy()[0]
        self.assertEqual(played[0], 0.0)
        self.assertEqual(played[-1], 0.0)
        self.assertAllClose(played[100:900], np.ones(800))

    def test_each_clip_draws_its_own_factor_within_bounds(self):
        played = augment.change_speed(tone(1000.0, batch=16), 0.1, SEED).numpy()
        peaks = [peak_hz(wave) for wave in played]
        self.assertBetween(min(peaks), 899.0, 1101.0)
        self.assertBetween(max(peaks), 899.0, 1101.0)
        self.assertGreater(len({round(p) for p in peaks}), 10)


class ReverberateTest(tf.test.TestCase):
    def test_a_room_that_only_delays_delays_the_clip(self):
        room = np.zeros((1, 50), np.float32)
        room[0, 7] = 0.5
        clips = tf.random.stateless_normal([4, 300], seed=[1, 2])
        heard = augment.reverberate(clips, augment.room_spectra(room, 300), 1.0, SEED)
        expected = np.pad(clips.numpy(), ((0, 0), (7, 0)))[:, :300]
        # The level is kept: the clip's RMS, not the room's 0.5.
        expected *= np.sqrt(np.mean(clips.numpy() ** 2, 1, keepdims=True)
                            / np.mean(expected ** 2, 1, keepdims=True))
        self.assertAllClose(heard, expected, atol=1e-5)

    def test_the_share_of_clips_in_a_room(self):
        room = np.zeros((1, 10), np.float32)
        room[0, 3] = 1.0
        clips = tf.random.stateless_normal([400, 100], seed=[1, 2])
        heard = augment.reverberate(clips, augment.room_spectra(room, 100), 0.25, SEED)
        changed = np.mean(np.abs(heard.numpy() - clips.numpy()).max(axis=1) > 1e-4)
        self.assertBetween(changed, 0.18, 0.32)


class MicrophoneTest(tf.test.TestCase):
    def test_on_log_mel_as_on_the_waveform(self):
        features = FeatureConfig()
        log_mel = LogMelSpectrogram(features)
        noise = tf.random.stateless_normal([8, 16000], seed=[3, 4]) * 0.1
        heard = augment.through_microphones(log_mel(noise), log_mel.mel_weights, 1.0, features,
                                            SEED)
        # The same responses applied to the waveform's spectrum, then the front end.
        fft_length = 2 ** 15
        hz = np.fft.rfftfreq(fft_length, 1 / 16000)
        gains = augment.microphone_gains(hz, 8, SEED)
        filtered = tf.signal.irfft(tf.signal.rfft(noise, [fft_length]) *
                                   tf.complex(gains, 0.0 * gains), [fft_length])[:, :16000]
        difference = np.abs(heard - log_mel(filtered))[:, 5:-5]  # edges: filter tails
        self.assertLess(np.median(difference), 0.05)  # in nepers of power: 0.2 dB
        self.assertLess(np.percentile(difference, 95), 0.3)
        self.assertGreater(np.abs(heard - log_mel(noise)).mean(), 0.3)  # it did colour

    def test_cuts_and_peaks_within_bounds(self):
        hz = np.array([20.0, 1000.0, 7990.0])
        gains = 20 * np.log10(augment.microphone_gains(hz, 200, SEED).numpy())
        self.assertLess(gains[:, 0].max(), -3.0)  # every low cut is at 50 Hz or above
        self.assertBetween(gains[:, 1].min(), -18.0, 0.0)  # three dips at most at 1 kHz
        self.assertLess(gains[:, 1].max(), 18.0)


def power_spectrum(recording: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz, at 16 kHz) and power of ``recording``."""
    return np.fft.rfftfreq(len(recording), 1 / 16000), np.abs(np.fft.rfft(recording)) ** 2


class ColouredNoiseTest(tf.test.TestCase, parameterized.TestCase):
    def test_the_bank_runs_from_white_to_brown_then_rumble_and_hum(self):
        bank = augment.coloured_noise_bank(16000, seconds=4.0)
        self.assertLen(bank, 5 + len(augment.RUMBLE_CUTOFFS_HZ) + len(augment.MAINS_HZ))
        slopes = []
        for recording in bank[:5]:
            hz, power = power_spectrum(recording)
            band = (hz > 100) & (hz < 4000)
            slopes.append(np.polyfit(np.log(hz[band]), np.log(power[band]), 1)[0])
        self.assertAllClose(slopes, [0.0, -0.5, -1.0, -1.5, -2.0], atol=0.1)
        self.assertAllClose([recording.std() for recording in bank], [1.0] * len(bank),
                            atol=1e-3)

    @parameterized.parameters(150.0, 400.0)
    def test_rumble_has_nothing_above_its_cutoff(self, cutoff_hz):
        recording = augment.rumble(32000, 16000, cutoff_hz, np.random.default_rng(1))
        hz, power = power_spectrum(recording)
        self.assertLess(power[hz > cutoff_hz * 1.05].sum() / power.sum(), 1e-6)
        self.assertGreater(power[hz < cutoff_hz / 2].sum() / power.sum(), 0.3)
        self.assertAllClose(recording.std(), 1.0, atol=1e-3)

    @parameterized.parameters(50.0, 60.0)
    def test_hum_is_the_mains_frequency_and_its_harmonics(self, mains_hz):
        recording = augment.mains_hum(16000, 16000, mains_hz, np.random.default_rng(1))
        hz, power = power_spectrum(recording)  # 1 Hz bins
        harmonics = mains_hz * np.arange(1, 9)
        self.assertGreater(power[np.isin(hz, harmonics)].sum() / power.sum(), 0.999)
        self.assertAllClose(power[np.isin(hz, harmonics[:2])] / power[hz == mains_hz],
                            [1.0, 0.36], rtol=1e-3)  # each harmonic 0.6 of the one below

    def test_mixed_at_the_signal_to_noise_ratio_asked_for(self):
        config = AugmentConfig(noise_frequency=1.0, noise_snr_min_db=12.0,
                               noise_snr_max_db=12.0)
        bank = BackgroundNoise(augment.coloured_noise_bank(16000, seconds=2.0), 4000)
        clips = tone(300.0, batch=6, samples=4000)
        noise = augment.add_coloured_noise(clips, bank, config, SEED) - clips
        rms = lambda waves: np.sqrt(np.mean(np.square(waves), axis=1))  # noqa: E731
        snr_db = 20 * np.log10(rms(clips) / rms(noise))
        self.assertAllClose(snr_db, [12.0] * 6, atol=0.01)

    def test_in_the_whole_chain_only_when_asked(self):
        clean = AugmentConfig(gain_db=0.0, background_frequency=0.0)
        bank = BackgroundNoise(augment.coloured_noise_bank(16000, seconds=2.0), 4000)
        clips = tone(300.0, batch=2, samples=4000)
        self.assertAllEqual(augment.augment_waveforms(clips, clean, None, SEED, None, bank),
                            clips)
        noisy = dataclasses.replace(clean, noise_frequency=1.0)
        self.assertNotAllClose(augment.augment_waveforms(clips, noisy, None, SEED, None, bank),
                               clips)
