import tensorflow as tf
from absl.testing import parameterized

from kws.config import FeatureConfig, FrontEnd, Normalization, parse_word_list, parse_word_weights
from kws.errors import InputError


class FeatureConfigTest(tf.test.TestCase, parameterized.TestCase):
    def test_study_shape(self):
        self.assertEqual(FeatureConfig().feature_shape, (101, 40))

    @parameterized.named_parameters(
        ("zero_hop", {"hop_samples": 0}, "hop_samples must be a positive integer, got 0"),
        ("short_fft", {"fft_length": 256},
         r"fft_length \(256\) must be at least window_samples \(400\)"),
        ("edges", {"upper_edge_hz": 9000.0}, "9000.0"),
        ("floor", {"log_floor": 0.0}, "log_floor must be positive, got 0.0"),
    )
    def test_rejects_bad_values(self, overrides, message):
        with self.assertRaisesRegex(InputError, message):
            FeatureConfig(**overrides)

    def test_front_end_round_trip(self):
        front_end = FrontEnd(FeatureConfig(num_mel_bins=2), Normalization((1.0, 2.0), (0.5, 3.0)),
                             ("yes", "no"))
        run_dir = self.create_tempdir().full_path
        front_end.save(run_dir)
        self.assertEqual(FrontEnd.load(run_dir), front_end)

    def test_load_names_the_missing_file(self):
        run_dir = self.create_tempdir().full_path
        with self.assertRaisesRegex(InputError, r"features\.json: no feature configuration"):
            FrontEnd.load(run_dir)

    def test_load_names_a_damaged_file(self):
        run_dir = self.create_tempdir()
        run_dir.create_file("features.json", "{not json")
        with self.assertRaisesRegex(InputError, "not a valid feature configuration"):
            FrontEnd.load(run_dir.full_path)


class WordListTest(tf.test.TestCase, parameterized.TestCase):
    def test_splits_and_strips(self):
        self.assertEqual(parse_word_list("yes, no,up", "--wanted_words"), ("yes", "no", "up"))

    def test_rejects_duplicates(self):
        with self.assertRaisesRegex(InputError, "--wanted_words lists yes more than once"):
            parse_word_list("yes,no,yes", "--wanted_words")

    def test_rejects_empty_entries(self):
        with self.assertRaisesRegex(InputError, "--models has an empty entry"):
            parse_word_list("fc,,gru", "--models")

    def test_word_weights(self):
        self.assertEqual(parse_word_weights("left:3, go:2", "--unknown_word_weights"),
                         (("left", 3), ("go", 2)))

    @parameterized.named_parameters(
        ("no_times", "left", r"'left' is not word:times \(a whole number\), e.g. left:3"),
        ("not_a_number", "left:x", "'left:x' is not word:times"),
        ("negative", "left:-1", "'left:-1' is not word:times"),
        ("no_word", ":3", "':3' is not word:times"),
        ("twice", "left:3,left:2", "lists left more than once"))
    def test_bad_word_weights_are_quoted(self, text, message):
        with self.assertRaisesRegex(InputError, "--unknown_word_weights.*" + message):
            parse_word_weights(text, "--unknown_word_weights")


if __name__ == "__main__":
    tf.test.main()
