"""The training recipe: learning-rate schedule, optimizer and the label-smoothed loss."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws.errors import InputError
from kws.recipe import Recipe, SmoothedSparseCrossentropy


class ScheduleTest(tf.test.TestCase):
    def test_constant_is_the_learning_rate(self):
        self.assertEqual(Recipe(learning_rate=3e-3, lr_schedule="constant")
                         .learning_rates(50, 10), 3e-3)

    def test_cosine_warms_up_then_decays_to_zero(self):
        rates = Recipe(learning_rate=2e-3, lr_schedule="cosine",
                       warmup_epochs=2).learning_rates(epochs=10, steps_per_epoch=5)
        rate = lambda step: float(rates(step))  # noqa: E731
        self.assertAllClose(rate(0), 0.0)
        self.assertAllClose(rate(5), 1e-3)  # half way through the 10 warm-up steps
        self.assertAllClose(rate(10), 2e-3)  # the peak
        self.assertAllClose(rate(10 + 20), 1e-3, rtol=1e-5)  # half way down the cosine
        self.assertAllClose(rate(50), 0.0, atol=1e-9)  # zero at the last step

    def test_cosine_without_warm_up_starts_at_the_peak(self):
        rates = Recipe(lr_schedule="cosine", warmup_epochs=0).learning_rates(
            epochs=4, steps_per_epoch=3)
        self.assertAllClose(float(rates(0)), 2e-3)

    def test_weight_decay_means_adamw(self):
        self.assertIsInstance(Recipe().optimizer(5, 5), keras.optimizers.Adam)
        optimizer = Recipe(weight_decay=0.01).optimizer(5, 5)
        self.assertIsInstance(optimizer, keras.optimizers.AdamW)
        self.assertAllClose(optimizer.weight_decay, 0.01)


class SmoothedLossTest(tf.test.TestCase):
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    labels = np.array([0, 2])

    def test_without_smoothing_it_is_sparse_cross_entropy(self):
        self.assertAllClose(SmoothedSparseCrossentropy(0.0)(self.labels, self.scores),
                            -np.mean(np.log([0.7, 0.8])), rtol=1e-5)

    def test_smoothing_spreads_the_target(self):
        # 0.3 of the target spread over 3 classes: 0.8 on the label, 0.1 on the others.
        targets = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
        expected = -np.mean(np.sum(targets * np.log(self.scores), axis=-1))
        self.assertAllClose(SmoothedSparseCrossentropy(0.3)(self.labels, self.scores), expected,
                            rtol=1e-5)

    def test_per_clip_without_reduction(self):
        loss = Recipe(label_smoothing=0.1).loss(reduction=None)
        self.assertEqual(loss(self.labels, self.scores).shape, (2,))

    def test_two_scores_per_clip_count_alike(self):
        # kws.training.with_carried_state scores each clip twice: (clips, 2, classes).
        twice = np.stack([self.scores, self.scores[::-1]], axis=1)
        expected = -np.mean(np.log([0.7, 0.1, 0.8, 0.1]))
        self.assertAllClose(SmoothedSparseCrossentropy(0.0)(np.stack([self.labels] * 2, axis=1),
                                                            twice), expected, rtol=1e-5)

    def test_a_model_compiled_with_it_saves_and_loads(self):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss=Recipe(label_smoothing=0.2).loss())
        path = self.get_temp_dir() + "/model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        self.assertAllClose(loaded.loss.label_smoothing, 0.2)


class RecipeCheckTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(
        ({"learning_rate": 0.0}, "--learning_rate must be positive, got 0.0"),
        ({"lr_schedule": "step"}, "--lr_schedule=step: unknown; choose from constant, cosine"),
        ({"warmup_epochs": -1.0}, "--warmup_epochs must not be negative, got -1.0"),
        ({"weight_decay": -0.1}, "--weight_decay must not be negative, got -0.1"),
        ({"label_smoothing": 1.0}, r"--label_smoothing must be in \[0, 1\), got 1.0"),
        ({"dropout": -0.5}, r"--dropout must be in \[0, 1\), got -0.5"),
        ({"carried_state_ms": -10.0}, "--carried_state_ms must not be negative, got -10.0"),
        ({"best_of_ties": "middle"}, "--best_of_ties=middle: unknown; choose from first, last"),
        ({"kept_epoch": "average"}, "--kept_epoch=average: unknown; choose from best, last"),
    )
    def test_rejects_bad_values(self, overrides, message):
        with self.assertRaisesRegex(InputError, message):
            Recipe(**overrides)


if __name__ == "__main__":
    tf.test.main()
