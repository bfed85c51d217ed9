from pathlib import Path
from unittest import mock

import numpy as np
import tensorflow as tf

from kws.config import FeatureConfig
from kws.data import synthetic
from kws.data.split import SPLITS, SplitSpec

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


if __name__ == "__main__":
    tf.test.main()
