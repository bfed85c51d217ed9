"""The explicit-op GRU classifier against Keras, and streaming against window."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws.errors import InputError
from kws.models import build_model
from kws.streaming import GRUClassifier


def small_gru_model(frames=12, bins=5, units=8, seed=0) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((frames, bins)),
        keras.layers.GRU(units, return_sequences=True),
        keras.layers.GRU(units),
        keras.layers.Dense(6, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    # Random biases too: Keras initialises them to zero, which would hide a bias mix-up.
    for layer in model.layers:
        layer.set_weights([np.random.default_rng(seed).normal(0, 0.5, w.shape)
                           for w in layer.get_weights()])
    return model


class GRUClassifierTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(0, 1, 2)
    def test_window_matches_keras(self, seed):
        model = small_gru_model(seed=seed)
        features = np.random.default_rng(seed).standard_normal((4, 12, 5)).astype("float32")
        classifier = GRUClassifier.from_keras(model)
        self.assertAllClose(classifier.window(features), model.predict(features, verbose=0),
                            atol=1e-5)

    def test_streaming_frame_by_frame_matches_window(self):
        classifier = GRUClassifier.from_keras(small_gru_model())
        features = np.random.default_rng(3).standard_normal((2, 12, 5)).astype("float32")
        states = classifier.zero_states(batch_size=2)
        for frame in range(12):
            scores, states = classifier.step(features[:, frame], states)
        self.assertAllClose(scores, classifier.window(features), atol=1e-6)

    def test_zero_weights_give_the_softmax_of_the_last_bias(self):
        model = small_gru_model()
        for layer in model.layers:
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
        last_bias = np.array([1.0, 2.0, 3.0], "float32")
        model.layers[-1].set_weights([np.zeros((6, 3)), last_bias])
        # Zero gates keep the state at zero: z = r = 0.5, candidate tanh(0) = 0.
        scores = GRUClassifier.from_keras(model).window(np.ones((1, 12, 5), "float32"))
        expected = np.exp(last_bias) / np.exp(last_bias).sum()
        self.assertAllClose(scores, [expected], atol=1e-7)

    def test_study_gru_copies_every_weight(self):
        model = build_model("gru", num_classes=3)
        classifier = GRUClassifier.from_keras(model)
        copied = sum(w.size for gru in classifier.grus for w in
                     (gru.kernel, gru.recurrent_kernel, gru.input_bias, gru.recurrent_bias))
        copied += sum(d.kernel.size + d.bias.size for d in classifier.head)
        self.assertEqual(copied, 70_531)

    def test_dropout_is_left_out(self):
        model = build_model("gru", num_classes=3, dropout=0.3)
        features = np.random.default_rng(4).standard_normal((2, 101, 40)).astype("float32")
        self.assertAllClose(GRUClassifier.from_keras(model).window(features),
                            model.predict(features, verbose=0), atol=1e-5)

    def test_rejects_models_that_are_not_a_gru_stack(self):
        with self.assertRaisesRegex(InputError, "not GRU layers then Dense layers"):
            GRUClassifier.from_keras(build_model("cnn", num_classes=3))

    def test_rejects_reset_before(self):
        model = keras.Sequential([keras.Input((4, 2)), keras.layers.GRU(3, reset_after=False),
                                  keras.layers.Dense(2, activation="softmax")])
        with self.assertRaisesRegex(InputError, "export needs"):
            GRUClassifier.from_keras(model)


if __name__ == "__main__":
    tf.test.main()
