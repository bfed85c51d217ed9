import hashlib

import tensorflow as tf
from absl.testing import parameterized

from kws.data.split import SplitSpec, speaker_of, which_set
from kws.errors import InputError


class SpeakerTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(
        ("yes/0a7c2a8d_nohash_0.wav", "yes", "0a7c2a8d"),
        ("yes/0a7c2a8d_nohash_12.wav", "yes", "0a7c2a8d"),
        ("7/7_jackson_32.wav", "7", "jackson"),
        ("up/take_three.wav", "up", "take_three"),
        ("up/clip.wav", "up", "clip"),
    )
    def test_speaker_from_file_name(self, path, label, speaker):
        self.assertEqual(speaker_of(path, label), speaker)


class WhichSetTest(tf.test.TestCase):
    def test_matches_speech_commands_formula(self):
        # TensorFlow's speech_commands input_data.which_set, written out.
        for speaker in ("0a7c2a8d", "jackson", "theo", "ffd2ba2f", "george"):
            value = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
            percentage = (value % (2**27)) * (100.0 / (2**27 - 1))
            expected = ("validation" if percentage < 10 else
                        "testing" if percentage < 20 else "training")
            self.assertEqual(which_set(speaker, 10, 10), expected)

    def test_deterministic_and_roughly_proportional(self):
        speakers = [f"speaker{i}" for i in range(2000)]
        first = [which_set(s, 10, 10) for s in speakers]
        self.assertEqual(first, [which_set(s, 10, 10) for s in speakers])
        for name in ("validation", "testing"):
            self.assertBetween(first.count(name) / len(speakers), 0.08, 0.12)


class SplitSpecTest(tf.test.TestCase):
    def test_named_speakers_override_the_hash(self):
        spec = SplitSpec(testing_speakers=("jackson",), validation_speakers=("theo",))
        self.assertEqual(spec.assign("jackson"), "testing")
        self.assertEqual(spec.assign("theo"), "validation")
        self.assertEqual(spec.assign("lucas"), which_set("lucas", 10, 10))

    def test_rejects_a_speaker_on_both_sides(self):
        with self.assertRaisesRegex(InputError, "both validation and testing: theo"):
            SplitSpec(testing_speakers=("theo",), validation_speakers=("theo",))

    def test_rejects_percentages_that_leave_no_training(self):
        with self.assertRaisesRegex(InputError, "leave nothing for training"):
            SplitSpec(validation_percentage=50, testing_percentage=50)


if __name__ == "__main__":
    tf.test.main()
