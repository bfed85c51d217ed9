import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws.audio import write_wav
from kws.config import FeatureConfig
from kws.data.folder import SILENCE, UNKNOWN, ExtraClasses, load_folder, plan_folder
from kws.data.split import SPLITS, SplitSpec
from kws.errors import InputError
from tests import fixtures

SPEAKERS = [f"spk{i:02d}" for i in range(30)]
WORDS = {"yes": 300.0, "no": 600.0, "up": 900.0}


class LoadFolderTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = fixtures.write_word_folder(
            Path(tempfile.mkdtemp(dir=tf.compat.v1.test.get_temp_dir())), WORDS,
            SPEAKERS, takes=2, sample_rate=8000)

    def test_labels_and_speaker_disjoint_split(self):
        data = load_folder(self.root, None, FeatureConfig(), SplitSpec())
        self.assertEqual(data.labels, ("no", "up", "yes"))  # sorted folder names
        speakers = {name: set(data.splits[name].speakers) for name in SPLITS}
        self.assertEmpty(speakers["training"] & speakers["testing"])
        self.assertEmpty(speakers["training"] & speakers["validation"])
        self.assertEmpty(speakers["validation"] & speakers["testing"])
        self.assertEqual(sum(data.split_sizes().values()), len(SPEAKERS) * 2 * len(WORDS))
        self.assertEqual(data.splits["training"].clips.shape[1:], (16000,))

    def test_split_is_deterministic(self):
        first = load_folder(self.root, ("yes", "no"), FeatureConfig(), SplitSpec())
        second = load_folder(self.root, ("yes", "no"), FeatureConfig(), SplitSpec())
        for name in SPLITS:
            self.assertAllEqual(first.splits[name].clips, second.splits[name].clips)
            self.assertEqual(first.splits[name].speakers, second.splits[name].speakers)

    def test_wanted_words_set_the_label_order(self):
        data = load_folder(self.root, ("up", "yes"), FeatureConfig(), SplitSpec())
        self.assertEqual(data.labels, ("up", "yes"))
        self.assertAllEqual(np.unique(data.splits["training"].labels), [0, 1])

    def test_missing_word_is_named(self):
        with self.assertRaisesRegex(InputError, r"--wanted_words: no folder of \.wav clips for "
                                                r"left in .* \(found: no, up, yes\)"):
            load_folder(self.root, ("yes", "left"), FeatureConfig(), SplitSpec())

    def test_empty_and_missing_folders(self):
        empty = self.create_tempdir().full_path
        with self.assertRaisesRegex(InputError, "no label folders with .wav files"):
            load_folder(empty, None, FeatureConfig(), SplitSpec())
        with self.assertRaisesRegex(InputError, "--data_dir=.*/nowhere: no such folder"):
            load_folder(f"{empty}/nowhere", None, FeatureConfig(), SplitSpec())


class BadFilesTest(tf.test.TestCase):
    def test_corrupt_files_are_skipped_and_counted(self):
        root = fixtures.write_word_folder(
            Path(self.create_tempdir().full_path), {"a": 300.0, "b": 500.0},
            SPEAKERS[:10], takes=1)
        (root / "a" / "broken_nohash_0.wav").write_bytes(b"RIFF....not really")
        (root / "b" / "notes_nohash_0.wav").write_text("hello")
        (root / "b" / "README.txt").write_text("not a wav, not counted")
        data = load_folder(root, None, FeatureConfig(), SplitSpec())
        self.assertLen(data.skipped, 2)
        self.assertEqual(sorted(s.path.split("/")[-1] for s in data.skipped),
                         ["broken_nohash_0.wav", "notes_nohash_0.wav"])
        self.assertEqual(sum(data.split_sizes().values()), 20)

    def test_word_without_readable_clips_is_named(self):
        root = Path(self.create_tempdir().full_path)
        fixtures.write_word_folder(root, {"a": 300.0}, SPEAKERS[:3], takes=1)
        (root / "b").mkdir()
        (root / "b" / "x_nohash_0.wav").write_text("junk")
        with self.assertRaisesRegex(InputError, "no readable clip for b"):
            load_folder(root, ("a", "b"), FeatureConfig(), SplitSpec())

    def test_split_lists_are_honoured(self):
        root = fixtures.write_word_folder(
            Path(self.create_tempdir().full_path), {"a": 300.0, "b": 500.0},
            SPEAKERS[:4], takes=1)
        (root / "validation_list.txt").write_text("a/spk00_nohash_0.wav\n")
        (root / "testing_list.txt").write_text("b/spk01_nohash_0.wav\nb/spk02_nohash_0.wav\n")
        data = load_folder(root, None, FeatureConfig(), SplitSpec())
        self.assertEqual(data.split_sizes(), {"training": 5, "validation": 1, "testing": 2})
        self.assertEqual(data.splits["testing"].speakers, ("spk01", "spk02"))


class SpeechCommandsTest(tf.test.TestCase, parameterized.TestCase):
    """_silence_, _unknown_ and _background_noise_, as TensorFlow's speech_commands has them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = fixtures.write_word_folder(
            Path(tempfile.mkdtemp(dir=tf.compat.v1.test.get_temp_dir())),
            {"yes": 300.0, "no": 500.0, "left": 700.0, "right": 900.0}, SPEAKERS, takes=2)
        noise = cls.root / "_background_noise_"
        noise.mkdir()
        rng = np.random.default_rng(0)
        write_wav(noise / "hum.wav", np.full(48000, 0.05, np.float32), 16000)
        write_wav(noise / "short.wav", (rng.standard_normal(4000) * 0.05).astype(np.float32),
                  16000)

    def load(self, extra: ExtraClasses, root: Path | None = None):
        return load_folder(root or self.root, ("yes", "no"), FeatureConfig(), SplitSpec(), extra)

    def test_silence_and_unknown_come_first_and_are_sized_per_split(self):
        data = self.load(ExtraClasses(silence_percentage=10.0, unknown_percentage=50.0))
        self.assertEqual(data.labels, (SILENCE, UNKNOWN, "yes", "no"))
        wanted = self.load(ExtraClasses(0.0, 0.0))
        for name in SPLITS:
            counts = np.bincount(data.splits[name].labels, minlength=4)
            words = len(wanted.splits[name])
            self.assertEqual(counts[0], np.ceil(words * 0.1), name)
            self.assertEqual(counts[1], np.ceil(words * 0.5), name)
            self.assertEqual(counts[2] + counts[3], words, name)
        # Unknown clips are the other words' clips, keeping their speakers and the split.
        unknown = data.splits["training"].labels == 1
        self.assertContainsSubset(set(np.array(data.splits["training"].speakers)[unknown]),
                                  set(wanted.splits["training"].speakers))

    def test_redrawn_unknown_keeps_every_training_clip_of_the_other_words(self):
        once = self.load(ExtraClasses(0.0, 50.0))
        redrawn = self.load(ExtraClasses(0.0, 50.0, unknown_redraw=True))
        others = load_folder(self.root, ("left", "right"), FeatureConfig(), SplitSpec())
        training = redrawn.splits["training"]
        self.assertLen(training.pool, len(others.splits["training"]))
        self.assertEqual(training.redrawn_per_epoch,
                         np.sum(once.splits["training"].labels == 1))
        self.assertEqual(training.epoch_size, len(once.splits["training"]))
        for name in ("validation", "testing"):  # drawn once, the same clips either way
            self.assertAllEqual(redrawn.splits[name].clips, once.splits[name].clips)
            self.assertIsNone(redrawn.splits[name].redrawn_label)

    @parameterized.named_parameters(("drawn_once", False), ("redrawn", True))
    def test_weighted_words_are_drawn_on_top_of_the_others(self, redraw):
        def unknown(weights):
            plan = plan_folder(self.root, ("yes", "no"), SplitSpec(),
                               ExtraClasses(0.0, 50.0, 0, redraw, weights))
            return plan, {name: [(f.folder, f.path.name) for f in plan.files_of(name)
                                 if f.label == UNKNOWN] for name in SPLITS}

        plain_plan, plain = unknown(())
        weighted_plan, weighted = unknown((("left", 3),))
        for name in ("validation", "testing"):  # the same clips as without
            self.assertEqual(weighted[name], plain[name], name)
        if redraw:  # the pool holds every left clip three times; the draw grows by as many
            pool = plain["training"]
            self.assertCountEqual(weighted["training"], pool + 2 * [
                clip for clip in pool if clip[0] == "left"])
            self.assertEqual(weighted_plan.unknown_per_epoch, np.ceil(
                plain_plan.unknown_per_epoch * len(weighted["training"]) / len(pool)))
        else:  # about three left clips to each right one, and as many right as without
            folders = [folder for folder, _ in weighted["training"]]
            plain_right = sum(folder == "right" for folder, _ in plain["training"])
            self.assertBetween(folders.count("left") / folders.count("right"), 2.0, 4.5)
            self.assertBetween(folders.count("right"), 0.7 * plain_right, 1.3 * plain_right)

    @parameterized.named_parameters(
        ("a_wanted_word", (("yes", 2),), r"yes is not one of the other words of .* "
                                         r"\(left, right\)"),
        ("no_folder", (("stop", 2),), "stop is not one of the other words"),
        ("zero_times", (("left", 0),), r"left:0 needs a whole number of times from 1 to 100"))
    def test_bad_word_weights_are_named(self, weights, message):
        with self.assertRaisesRegex(InputError, "--unknown_word_weights: " + message):
            plan_folder(self.root, ("yes", "no"), SplitSpec(), ExtraClasses(0.0, 50.0, 0, True,
                                                                            weights))

    def test_both_zero_gives_the_wanted_words_only(self):
        self.assertEqual(self.load(ExtraClasses(0.0, 0.0)).labels, ("yes", "no"))

    def test_silence_is_background_noise_at_random_volumes(self):
        data = self.load(ExtraClasses(silence_percentage=20.0, unknown_percentage=0.0))
        self.assertLen(data.background, 2)
        self.assertEqual(len(data.background[1]), 16000)  # a short recording is padded
        silence = data.splits["training"].clips[data.splits["training"].labels == 0]
        peaks = np.abs(silence).max(axis=1)
        self.assertLessEqual(peaks.max(), 0.3)
        self.assertGreater(len(set(np.round(peaks, 4))), 3)
        self.assertEqual(data.splits["training"].speakers[-1], "")  # noise has no speaker

    def test_silence_is_zeros_without_background_noise(self):
        root = fixtures.write_word_folder(Path(self.create_tempdir().full_path),
                                          {"yes": 300.0, "no": 500.0}, SPEAKERS[:10], takes=1)
        data = self.load(ExtraClasses(silence_percentage=50.0, unknown_percentage=10.0), root)
        self.assertEqual(data.labels, (SILENCE, "yes", "no"))  # no other words: no _unknown_
        self.assertEmpty(data.background)
        training = data.splits["training"]
        silence = training.clips[training.labels == 0]
        self.assertNotEmpty(silence)
        self.assertAllEqual(silence, np.zeros_like(silence))

    def test_existing_silence_and_unknown_folders_are_used(self):
        root = fixtures.write_word_folder(
            Path(self.create_tempdir().full_path),
            {"yes": 300.0, "no": 500.0, UNKNOWN: 800.0, SILENCE: 50.0}, SPEAKERS[:10], takes=1)
        data = self.load(ExtraClasses(silence_percentage=0.0, unknown_percentage=0.0), root)
        self.assertEqual(data.labels, (SILENCE, UNKNOWN, "yes", "no"))
        self.assertEqual(np.bincount(np.concatenate(
            [data.splits[name].labels for name in SPLITS])).tolist(), [10, 10, 10, 10])

    @parameterized.named_parameters(("parent", "../elsewhere/x.wav"),
                                    ("absolute", "/etc/passwd"),
                                    ("climbing", "yes/../../x.wav"))
    def test_list_entries_outside_the_folder_are_refused(self, entry):
        root = fixtures.write_word_folder(Path(self.create_tempdir().full_path),
                                          {"yes": 300.0, "no": 500.0}, SPEAKERS[:3], takes=1)
        (root / "testing_list.txt").write_text(f"yes/spk00_nohash_0.wav\n{entry}\n")
        with self.assertRaisesRegex(InputError, f"testing_list.txt:2: '{entry}' points outside"):
            self.load(ExtraClasses(0.0, 0.0), root)


class BadMembersTest(tf.test.TestCase):
    def test_junk_is_skipped_with_reasons_and_odd_formats_are_read(self):
        root = fixtures.write_word_folder(Path(self.create_tempdir().full_path),
                                          {"yes": 300.0, "no": 500.0}, SPEAKERS[:10], takes=1)
        fixtures.write_bad_members(root / "yes")
        data = load_folder(root, None, FeatureConfig(), SplitSpec(), ExtraClasses(0.0, 0.0))
        reasons = {Path(item.path).name: item.reason for item in data.skipped}
        unusable = {name for name, usable in fixtures.BAD_MEMBERS.items() if not usable}
        self.assertEqual(set(reasons), unusable)
        self.assertIn("truncated WAV file", reasons["truncated_nohash_0.wav"])
        self.assertIn("not a readable WAV file", reasons["text_nohash_0.wav"])
        self.assertIn("600 s long", reasons["tenminutes_nohash_0.wav"])
        self.assertEqual(sum(data.split_sizes().values()), 20 + 3)  # 24-bit, float, stereo


class FsddTest(tf.test.TestCase):
    """Real voices at 8 kHz, 0.14-2.28 s long."""

    def setUp(self):
        super().setUp()
        if not fixtures.FSDD.is_dir():
            self.skipTest(fixtures.FSDD_MISSING)

    def test_whole_speakers_held_out(self):
        data = load_folder(fixtures.FSDD, ("0", "1", "2"), FeatureConfig(),
                           SplitSpec(testing_speakers=("theo",), validation_speakers=("lucas",)))
        self.assertEqual(data.split_sizes(), {"training": 450, "validation": 300, "testing": 150})
        self.assertEqual(set(data.splits["testing"].speakers), {"theo"})
        self.assertNotIn("theo", data.splits["training"].speakers)
        self.assertEqual(data.splits["testing"].clips.shape, (150, 16000))
        self.assertEmpty(data.skipped)

    def test_hash_split_alone_leaves_no_test_speaker(self):
        data = load_folder(fixtures.FSDD, ("0",), FeatureConfig(), SplitSpec())
        with self.assertRaisesRegex(InputError, "testing split is empty .* --testing_speakers"):
            data.check_splits_not_empty()


if __name__ == "__main__":
    tf.test.main()
