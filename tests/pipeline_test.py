"""Clips in memory as tf.data batches, and a pool of clips drawn afresh every epoch."""

import numpy as np
import tensorflow as tf

from kws.config import FeatureConfig, FrontEnd, Normalization
from kws.data.dataset import ClipSet
from kws.data.pipeline import make_dataset, memory_source

KEPT, POOL, PER_EPOCH = 10, 20, 5


def clip_set() -> ClipSet:
    """Clip i is the constant i / 100, so a batch says which clips it holds; the pool is
    label 0 (as _unknown_ is), drawn 5 at a time."""
    count = KEPT + POOL
    labels = np.array([0] * POOL + [1] * KEPT)
    np.random.default_rng(0).shuffle(labels)
    clips = np.repeat(np.arange(count, dtype=np.float32)[:, None] / 100, 16000, axis=1)
    return ClipSet(clips, labels, ("",) * count, redrawn_label=0, redrawn_per_epoch=PER_EPOCH)


def clip_numbers(dataset: tf.data.Dataset) -> list[int]:
    return [round(float(clip[0]) * 100) for clips, _ in dataset for clip in clips.numpy()]


class RedrawTest(tf.test.TestCase):
    def test_each_epoch_keeps_every_other_clip_and_draws_the_pool_afresh(self):
        clips = clip_set()
        self.assertEqual(clips.epoch_size, KEPT + PER_EPOCH)
        source = memory_source(clips)
        batches = source.batches(4, 7)
        kept = set(np.flatnonzero(clips.labels == 1))
        drawn_per_epoch = []
        for _ in range(3):
            numbers = clip_numbers(batches)
            self.assertLen(numbers, KEPT + PER_EPOCH)
            self.assertLen(set(numbers), len(numbers))  # no clip twice in an epoch
            self.assertContainsSubset(kept, set(numbers))
            drawn_per_epoch.append(frozenset(set(numbers) - kept))
        self.assertLen(set(drawn_per_epoch), 3)  # a new draw each epoch
        # The same seed draws the same epochs.
        self.assertEqual(frozenset(set(clip_numbers(source.batches(4, 7))) - kept),
                         drawn_per_epoch[0])

    def test_in_order_every_clip_is_there(self):
        self.assertEqual(clip_numbers(memory_source(clip_set()).batches(8, None)),
                         list(range(KEPT + POOL)))

    def test_unaugmented_training_batches_redraw_too(self):
        features = FeatureConfig()
        front_end = FrontEnd(features, Normalization((0.0,) * features.num_mel_bins,
                                                     (1.0,) * features.num_mel_bins), ("a", "b"))
        dataset = make_dataset(memory_source(clip_set()), front_end, 4, shuffle_seed=1)
        self.assertEqual(int(dataset.cardinality()), -(-(KEPT + PER_EPOCH) // 4))
        for _ in range(2):
            labels = np.concatenate([batch_labels.numpy() for _, batch_labels in dataset])
            self.assertEqual(np.bincount(labels).tolist(), [PER_EPOCH, KEPT])


if __name__ == "__main__":
    tf.test.main()
