"""Mixup: per-clip shares from the clips' seeds, mixed features and the targets that match."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws import mixup
from kws.recipe import SmoothedSparseCrossentropy


class SharesTest(tf.test.TestCase, parameterized.TestCase):
    def test_each_clip_draws_from_its_own_seed(self):
        # A replica's share of a batch, or the batch cut elsewhere, gives each clip the
        # same share: the pipeline and the train step need not pass it between them.
        whole = mixup.shares(tf.constant([40, 41, 42, 43], tf.int64), 0.4).numpy()
        part = mixup.shares(tf.constant([42, 43], tf.int64), 0.4).numpy()
        self.assertAllEqual(whole[2:], part)
        self.assertLen(set(whole.tolist()), 4)

    @parameterized.parameters(0.1, 0.4, 2.0)
    def test_every_mix_is_mostly_its_own_clip(self, alpha):
        drawn = mixup.shares(tf.range(2000, dtype=tf.int64), alpha).numpy()
        self.assertAllInRange(drawn, 0.5, 1.0)
        # Beta(alpha, alpha) folded: its mean is above 3/4 for small alpha, nearer 1/2 for large.
        self.assertEqual(np.mean(drawn) > 0.75, alpha < 1)


class MixupLayerTest(tf.test.TestCase):
    def test_mixes_each_clip_with_the_mirrored_one(self):
        features = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
        seeds = tf.constant([5, 6, 7], tf.int64)
        share = mixup.shares(seeds, 0.4).numpy()[:, None, None]
        expected = share * features + (1 - share) * features[::-1]
        self.assertAllClose(mixup.Mixup(0.4)([features, seeds]), expected)

    def test_a_clip_alone_stays_as_it_is(self):
        features = np.ones((1, 4, 3), np.float32)
        self.assertAllClose(mixup.Mixup(0.4)([features, tf.constant([1], tf.int64)]), features)


class MixedTargetsTest(tf.test.TestCase):
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)

    def test_packs_each_label_with_its_clips_share(self):
        seeds = tf.constant([3, 4], tf.int64)
        batches = tf.data.Dataset.from_tensors(((np.zeros((2, 5), np.float32), seeds),
                                                np.array([2, 0])))
        (_, kept_seeds), targets = next(iter(mixup.with_mixed_targets(batches, 0.4)))
        self.assertAllEqual(kept_seeds, seeds)
        self.assertAllClose(targets, [[2.0, mixup.shares(seeds, 0.4)[0]],
                                      [0.0, mixup.shares(seeds, 0.4)[1]]])

    def test_loss_is_each_labels_cross_entropy_by_its_share(self):
        # Clip 0 is 0.8 of itself (label 0) and 0.2 of clip 1 (label 2), clip 1 the other way.
        targets = np.array([[0.0, 0.8], [2.0, 0.6]], np.float32)
        log = np.log(self.scores)
        expected = -np.mean([0.8 * log[0, 0] + 0.2 * log[0, 2],
                             0.6 * log[1, 2] + 0.4 * log[1, 0]])
        self.assertAllClose(SmoothedSparseCrossentropy(0.0)(targets, self.scores), expected,
                            rtol=1e-5)

    def test_smoothing_applies_to_the_mixed_target(self):
        targets = np.array([[0.0, 0.8], [2.0, 0.6]], np.float32)
        mixed = np.array([[0.8, 0.0, 0.2], [0.4, 0.0, 0.6]])
        smoothed = 0.7 * mixed + 0.1  # 0.3 spread over 3 classes
        expected = -np.mean(np.sum(smoothed * np.log(self.scores), axis=-1))
        self.assertAllClose(SmoothedSparseCrossentropy(0.3)(targets, self.scores), expected,
                            rtol=1e-5)

    def test_a_share_of_one_is_the_plain_loss(self):
        loss = SmoothedSparseCrossentropy(0.1)
        self.assertAllClose(loss(np.array([[0.0, 1.0], [2.0, 1.0]], np.float32), self.scores),
                            loss(np.array([0, 2]), self.scores))

    def test_two_scores_per_clip_mix_with_the_mirrored_clip(self):
        # kws.training.with_carried_state: (clips, 2, classes) scores, each label twice.
        twice = np.stack([self.scores, self.scores[::-1]], axis=1)
        targets = np.stack([np.array([[0.0, 0.8], [2.0, 0.6]], np.float32)] * 2, axis=1)
        log = np.log(twice)
        expected = -np.mean([0.8 * log[0, 0, 0] + 0.2 * log[0, 0, 2],
                             0.8 * log[0, 1, 0] + 0.2 * log[0, 1, 2],
                             0.6 * log[1, 0, 2] + 0.4 * log[1, 0, 0],
                             0.6 * log[1, 1, 2] + 0.4 * log[1, 1, 0]])
        self.assertAllClose(SmoothedSparseCrossentropy(0.0)(targets, twice), expected, rtol=1e-5)

    def test_accuracy_reads_the_clips_own_label(self):
        metric = mixup.accuracy()
        metric.update_state(np.array([[0.0, 0.9], [0.0, 0.7]], np.float32), self.scores)
        self.assertAllClose(metric.result(), 0.5)  # clip 1's own label is 0, its top class 2
        plain = mixup.accuracy()
        plain.update_state(np.array([0, 2]), self.scores)
        self.assertAllClose(plain.result(), 1.0)

    def test_one_fitted_step_trains_through_the_mixed_features(self):
        keras.utils.set_random_seed(2)
        model = keras.Sequential([keras.Input((4, 2)), keras.layers.Flatten(),
                                  keras.layers.Dense(3, activation="softmax")])
        features = keras.Input((4, 2))
        seeds = keras.Input((), dtype="int64")
        fitted = keras.Model([features, seeds], model(mixup.Mixup(0.4)([features, seeds])))
        fitted.compile(optimizer="adam", loss=SmoothedSparseCrossentropy(0.1),
                       metrics=[mixup.accuracy()])
        clips = np.random.default_rng(0).normal(size=(4, 4, 2)).astype("float32")
        batches = mixup.with_mixed_targets(tf.data.Dataset.from_tensors(
            ((clips, tf.range(4, dtype=tf.int64)), np.array([0, 1, 2, 0]))), 0.4)
        before = model.get_weights()[0].copy()
        history = fitted.fit(batches, verbose=0, shuffle=False)
        self.assertNotAllClose(model.get_weights()[0], before)
        self.assertIn("accuracy", history.history)


if __name__ == "__main__":
    tf.test.main()
