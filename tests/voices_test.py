"""The synthetic source's voices: every English accent and variant, and designed ones."""

from pathlib import Path

import espeakng_loader
import numpy as np
import tensorflow as tf

from kws.data import voices
from kws.data.synthetic import ESpeak

INSTALLED = espeakng_loader.get_data_path()


def spectral_centroid_hz(samples: np.ndarray, sample_rate: int) -> float:
    power = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    return float(np.sum(np.fft.rfftfreq(len(samples), 1 / sample_rate) * power) / power.sum())


class InstalledVoicesTest(tf.test.TestCase):
    def test_every_english_accent(self):
        found = voices.accents(INSTALLED)
        self.assertContainsSubset({"en-us", "en-gb-scotland", "en-gb-x-rp", "en-029"}, found)
        self.assertNotIn("en-shaw", found)

    def test_every_variant_file(self):
        found = voices.installed_variants(INSTALLED)
        self.assertContainsSubset({"m1", "m7", "f5", "klatt6", "croak", "whisper"}, found)
        self.assertGreater(len(found), 90)
        self.assertFalse(any(" " in name for name in found))


class DesignedVoicesTest(tf.test.TestCase):
    def test_seeded_and_within_bounds(self):
        designs = voices.design_voices(50, seed=1)
        self.assertEqual(designs, voices.design_voices(50, seed=1))
        self.assertNotEqual(designs, voices.design_voices(50, seed=2))
        for design in designs:
            self.assertBetween(min(design.formants), 80, 137)
            self.assertLess(design.low_pitch_hz, design.high_pitch_hz)

    def test_espeak_speaks_them_and_the_formant_scale_is_heard(self):
        low = voices.VoiceDesign((85,) * 9, 100, 140, 0, 0, (), 100, (100,) * 4)
        high = voices.VoiceDesign((130,) * 9, 100, 140, 0, 0, (), 100, (100,) * 4)
        data = voices.write_data_with_designs(
            INSTALLED, (low, high), Path(self.create_tempdir().full_path) / "data")
        self.assertEqual(voices.accents(data), voices.accents(INSTALLED))
        espeak = ESpeak(data)
        centroids = [spectral_centroid_hz(espeak.say("see the sea", f"en-us+{name}", 150, 50,
                                                     50, seed=1), espeak.sample_rate)
                     for name in (voices.designed_name(0), voices.designed_name(1))]
        # The same pitch: only the vocal tract is shorter, so the spectrum moves up.
        self.assertGreater(centroids[1], 1.25 * centroids[0])
