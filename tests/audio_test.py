import numpy as np
import scipy.io.wavfile
import tensorflow as tf
from absl.testing import parameterized

from kws.audio import AudioError, fit_to_clip, load_clip, read_wav, resample
from kws.config import FeatureConfig
from tests import fixtures


class ReadWavTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("uint8", np.array([128, 192, 64], np.uint8), [0.0, 0.5, -0.5]),
        ("int16", np.array([0, 16384, -32768], np.int16), [0.0, 0.5, -1.0]),
        ("int32", np.array([0, 2**30, -(2**31)], np.int32), [0.0, 0.5, -1.0]),
        ("float32", np.array([0.0, 0.25, -0.75], np.float32), [0.0, 0.25, -0.75]),
    )
    def test_sample_formats(self, data, expected):
        path = self.create_tempfile("clip.wav").full_path
        scipy.io.wavfile.write(path, 8000, data)
        samples, rate = read_wav(path)
        self.assertEqual(rate, 8000)
        self.assertAllClose(samples, expected, atol=1e-6)

    def test_stereo_is_mixed_down(self):
        path = self.create_tempfile("clip.wav").full_path
        scipy.io.wavfile.write(path, 16000, np.array([[0.5, -0.5], [1.0, 0.0]], np.float32))
        samples, _ = read_wav(path)
        self.assertAllClose(samples, [0.0, 0.5])

    @parameterized.named_parameters(
        ("text", b"this is not audio", "not a readable WAV file"),
        ("truncated_header", b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a readable WAV file"),
        ("empty", b"", "not a readable WAV file"),
    )
    def test_bad_files_name_the_file(self, content, message):
        path = self.create_tempfile("clip.wav", content=content, mode="wb").full_path
        with self.assertRaisesRegex(AudioError, f"{path}: {message}"):
            read_wav(path)

    def test_header_that_promises_more_than_the_file_holds(self):
        path = self.create_tempfile("clip.wav", mode="wb", content=fixtures.wav_bytes(
            b"\x00\x01" * 100, 16000, data_size=32000)).full_path
        with self.assertRaisesRegex(AudioError, f"{path}: truncated WAV file"):
            read_wav(path)

    @parameterized.named_parameters(("zero", 0), ("one", 1), ("ten_megahertz", 10_000_000))
    def test_header_with_an_impossible_rate(self, rate):
        path = self.create_tempfile("clip.wav", mode="wb",
                                    content=fixtures.wav_bytes(b"\x00\x01" * 100, rate)).full_path
        with self.assertRaisesRegex(AudioError, f"{path}: WAV header gives a sample rate of "
                                                f"{rate} Hz"):
            read_wav(path)

    def test_24_bit(self):
        path = self.create_tempfile("clip.wav", mode="wb", content=fixtures.wav_bytes(
            fixtures.int24_bytes(np.array([0.0, 0.5, -0.5])), 16000, bits=24)).full_path
        samples, _ = read_wav(path)
        self.assertAllClose(samples, [0.0, 0.5, -0.5], atol=1e-6)

    def test_no_samples(self):
        path = self.create_tempfile("clip.wav").full_path
        scipy.io.wavfile.write(path, 16000, np.zeros(0, np.int16))
        with self.assertRaisesRegex(AudioError, "holds no samples"):
            read_wav(path)


class ClipTest(tf.test.TestCase):
    def test_resample_8k_to_16k_keeps_a_tone(self):
        t = np.arange(8000) / 8000
        resampled = resample(np.sin(2 * np.pi * 500 * t), 8000, 16000)
        self.assertLen(resampled, 16000)
        expected = np.sin(2 * np.pi * 500 * np.arange(16000) / 16000)
        self.assertAllClose(resampled[100:-100], expected[100:-100], atol=0.02)

    def test_short_clip_is_centred(self):
        clip = fit_to_clip(np.ones(4, np.float32), 10)
        self.assertAllEqual(clip, [0, 0, 0, 1, 1, 1, 1, 0, 0, 0])

    def test_long_clip_keeps_its_loudest_window(self):
        samples = np.zeros(100, np.float32)
        samples[70:80] = 1.0
        clip = fit_to_clip(samples, 20)
        self.assertLen(clip, 20)
        self.assertEqual(clip.sum(), 10.0)

    def test_a_ten_minute_recording_is_no_keyword_clip(self):
        path = self.create_tempfile("clip.wav", mode="wb", content=fixtures.wav_bytes(
            np.zeros(600 * 8000, "<i2").tobytes(), 8000)).full_path
        with self.assertRaisesRegex(AudioError, f"{path}: 600 s long; .*_background_noise_"):
            load_clip(path, FeatureConfig())

    def test_load_clip_at_8k_gives_one_second_at_16k(self):
        path = self.create_tempfile("clip.wav").full_path
        scipy.io.wavfile.write(path, 8000, (np.ones(2000) * 1000).astype(np.int16))
        self.assertEqual(load_clip(path, FeatureConfig()).shape, (16000,))


if __name__ == "__main__":
    tf.test.main()
