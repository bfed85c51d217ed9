from pathlib import Path

import numpy as np
import tensorflow as tf

from kws.config import FeatureConfig
from kws.data.folder import load_folder
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
            Path(tf.compat.v1.test.get_temp_dir()) / "words", WORDS,
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
