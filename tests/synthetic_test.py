import dataclasses
from pathlib import Path
from unittest import mock

import numpy as np
import tensorflow as tf

from kws.config import FeatureConfig
from kws.data import synthetic
from kws.data.split import SPLITS, SplitSpec
from kws.errors import InputError
from kws.run import TrainConfig, load_data
from tests import fixtures

SPEC = synthetic.SyntheticSpec(words=("yes", "no"), clips_per_word=12, seed=3)


class SynthesizeTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.clips, cls.labels, cls.speakers = synthetic.synthesize(SPEC, FeatureConfig())

    def test_shapes_labels_and_speakers(self):
        self.assertEqual(self.clips.shape, (24, 16000))
        self.assertEqual(self.clips.dtype, np.int16)
        self.assertAllEqual(self.labels, [0] * 12 + [1] * 12)
        self.assertTrue(all("+" in s for s in self.speakers))  # accent+variant
        self.assertGreater(len(set(self.speakers)), 5)

    def test_clips_hold_speech_above_the_noise(self):
        for clip in self.clips.astype(np.float32) / 32768:
            frames = clip.reshape(100, 160)
            energy = np.sqrt(np.mean(np.square(frames), axis=1))
            self.assertGreater(energy.max(), 2 * np.percentile(energy, 10))

    def test_same_seed_gives_identical_clips(self):
        clips, labels, speakers = synthetic.synthesize(SPEC, FeatureConfig())
        self.assertAllEqual(clips, self.clips)
        self.assertEqual(speakers, self.speakers)

    def test_other_seed_gives_other_clips(self):
        other = synthetic.SyntheticSpec(words=SPEC.words, clips_per_word=12, seed=4)
        clips, _, _ = synthetic.synthesize(other, FeatureConfig())
        self.assertNotAllEqual(clips, self.clips)


class CacheTest(tf.test.TestCase):
    def test_cache_is_written_then_reused(self):
        cache_dir = Path(self.create_tempdir().full_path)
        spec = synthetic.SyntheticSpec(words=("up", "go"), clips_per_word=4, seed=1)
        first = synthetic.load_synthetic(spec, FeatureConfig(), SplitSpec(), cache_dir)
        self.assertLen(list(cache_dir.glob("synthetic-*.npz")), 1)
        with mock.patch.object(synthetic, "synthesize", side_effect=AssertionError("no cache")):
            second = synthetic.load_synthetic(spec, FeatureConfig(), SplitSpec(), cache_dir)
        for name in SPLITS:
            self.assertAllEqual(first.splits[name].clips, second.splits[name].clips)
        self.assertIn("synthetic speech", second.source)

    def test_damaged_cache_is_rebuilt(self):
        cache_dir = Path(self.create_tempdir().full_path)
        spec = synthetic.SyntheticSpec(words=("up", "go"), clips_per_word=3, seed=1)
        cache_path = cache_dir / f"synthetic-{spec.cache_key(FeatureConfig())}.npz"
        cache_path.write_bytes(b"PK\x03\x04 torn")
        data = synthetic.load_synthetic(spec, FeatureConfig(), SplitSpec(), cache_dir)
        self.assertEqual(sum(data.split_sizes().values()), 6)
        with np.load(cache_path) as rebuilt:
            self.assertEqual(rebuilt["clips"].shape, (6, 16000))

    def test_cache_key_follows_the_spec(self):
        config = FeatureConfig()
        self.assertEqual(SPEC.cache_key(config), SPEC.cache_key(config))
        self.assertNotEqual(SPEC.cache_key(config),
                            synthetic.SyntheticSpec(SPEC.words, 12, seed=4).cache_key(config))


class OtherWordsTest(tf.test.TestCase):
    def test_no_wanted_word_and_nothing_that_sounds_like_one(self):
        everything = len(synthetic.common_words())
        words = synthetic.other_words(("see", "by"), everything - 4, seed=0)
        self.assertLen(words, everything - 4)
        for word in ("see", "sea", "by", "buy"):  # the same phonemes in eSpeak NG
            self.assertNotIn(word, words)
        with self.assertRaisesRegex(InputError, "--synthetic_unknown_words=600: the list "
                                                f"holds only {everything - 4} words"):
            synthetic.other_words(("see", "by"), 600, seed=0)

    def test_a_seeded_draw(self):
        first = synthetic.other_words(("yes",), 20, seed=1)
        self.assertEqual(first, synthetic.other_words(("yes",), 20, seed=1))
        self.assertNotEqual(first, synthetic.other_words(("yes",), 20, seed=2))
        self.assertEqual(list(first), sorted(first, key=synthetic.common_words().index))

    def test_speech_commands_words_are_not_in_the_list(self):
        self.assertEmpty({"yes", "no", "up", "down", "left", "right", "on", "off", "stop",
                          "go", "zero", "one", "two", "three", "bed", "cat", "forward",
                          "learn", "follow"} & set(synthetic.common_words()))

    def word_folder_config(self, **settings) -> TrainConfig:
        """A run on a folder of yes, no and left (the other word), with these settings."""
        root = Path(self.create_tempdir().full_path)
        words = fixtures.write_word_folder(root / "words", {"yes": 300.0, "no": 500.0,
                                                            "left": 700.0},
                                           [f"spk{i:02d}" for i in range(20)], takes=2)
        return TrainConfig(output_dir=root / "run", data_dir=words, wanted_words=("yes", "no"),
                           silence_percentage=0.0, unknown_percentage=50.0,
                           cache_dir=root / "cache", **settings)

    def test_they_join_the_training_unknown_clips(self):
        config = self.word_folder_config(synthetic_unknown_words=3, synthetic_unknown_clips=2)
        plain = load_data(dataclasses.replace(config, synthetic_unknown_words=0))
        data = load_data(config)
        self.assertLen(data.synthetic_words, 3)
        training, before = data.splits["training"], plain.splits["training"]
        self.assertLen(training, len(before) + 6)
        self.assertAllEqual(training.labels[len(before):], [0] * 6)  # _unknown_
        self.assertAllEqual(data.splits["testing"].clips, plain.splits["testing"].clips)
        with self.assertRaisesRegex(InputError, "needs --unknown_percentage above 0"):
            dataclasses.replace(config, unknown_percentage=0.0)

    def test_synthetic_keywords_join_the_training_split_under_their_labels(self):
        config = self.word_folder_config(synthetic_keyword_clips=3)
        plain = load_data(dataclasses.replace(config, synthetic_keyword_clips=0))
        data = load_data(config)
        self.assertEqual(data.labels, plain.labels)
        self.assertEmpty(data.synthetic_words)  # the list names other words only
        training, before = data.splits["training"], plain.splits["training"]
        self.assertLen(training, len(before) + 6)
        added = training.labels[len(before):]
        self.assertAllEqual(added, [data.labels.index("yes")] * 3 + [data.labels.index("no")] * 3)
        self.assertGreater(np.abs(training.clips[len(before):]).max(), 0.01)  # speech, not zeros
        for split in ("validation", "testing"):
            self.assertAllEqual(data.splits[split].clips, plain.splits[split].clips)
        with self.assertRaisesRegex(InputError, "--synthetic_keyword_clips adds synthetic clips "
                                                "to the recordings of --data_dir or --dataset"):
            TrainConfig(output_dir=config.output_dir, synthetic_keyword_clips=3)

    def test_a_synthetic_run_gains_silence_and_unknown(self):
        root = Path(self.create_tempdir().full_path)
        config = TrainConfig(output_dir=root / "run", wanted_words=("yes",),
                             clips_per_word=24, synthetic_unknown_words=4,
                             synthetic_unknown_clips=6, silence_percentage=10.0,
                             cache_dir=root / "cache")
        data = load_data(config)
        self.assertEqual(data.labels, ("_silence_", "_unknown_", "yes"))
        self.assertLen(data.synthetic_words, 4)
        self.assertNotIn("yes", data.synthetic_words)
        for name, part in data.splits.items():
            counts = np.bincount(part.labels, minlength=3)
            spoken = counts[1:].sum()
            self.assertEqual(counts[0], round(spoken * 0.10), name)
            silent = part.clips[part.labels == 0]
            # Noise only, at -70 to -20 dBFS.
            rms_dbfs = 20 * np.log10(np.sqrt(np.mean(np.square(silent), axis=1)))
            self.assertAllInRange(rms_dbfs, -70.5, -19.5)
        self.assertEqual(sum(np.sum(part.labels == 1) for part in data.splits.values()), 24)
        # The other words' voices are split as the keywords' are: no test voice trains.
        voices = {name: set(part.speakers) - {""} for name, part in data.splits.items()}
        self.assertEmpty(voices["training"] & voices["testing"])


if __name__ == "__main__":
    tf.test.main()


class AnyWordsTest(tf.test.TestCase):
    def test_a_word_given_by_its_phonemes(self):
        cache_dir = Path(self.create_tempdir().full_path)
        spec = synthetic.SyntheticSpec(words=("kira:k'i@r@", "lights"), clips_per_word=3,
                                       seed=1, designed_voices=5)
        data = synthetic.load_synthetic(spec, FeatureConfig(), SplitSpec(), cache_dir)
        self.assertEqual(data.labels, ("kira", "lights"))
        clips = np.concatenate([part.clips for part in data.splits.values()])
        self.assertLen(clips, 6)
        self.assertTrue(all(np.abs(clip).max() > 0.01 for clip in clips))

    def test_spoken_text(self):
        self.assertEqual(synthetic.spoken_text("kira:k'i@r@"), "[[k'i@r@]]")
        self.assertEqual(synthetic.spoken_text("lights"), "lights")

    def test_other_words_avoid_what_the_phonemes_say(self):
        # "see" and "sea" are spelled otherwise, but sound as the phonemes given for "sii".
        words = synthetic.other_words(("sii:s'i:",), len(synthetic.common_words()) - 2, 0)
        self.assertContainsSubset({"see", "sea"}, synthetic.common_words())
        self.assertNoCommonElements({"see", "sea"}, words)

    def test_phonemes_only_for_synthetic_speech(self):
        with self.assertRaisesRegex(InputError, "--wanted_words: kira:k'i@r@ gives phonemes, "
                                                "which only synthetic speech uses"):
            TrainConfig(output_dir=Path("run"), data_dir=Path("words"),
                        wanted_words=("kira:k'i@r@",))
