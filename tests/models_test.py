import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws.errors import InputError
from kws.models import MODEL_NAMES, STUDY, build_model, describe, gru_formula


class BuildModelTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(("fc", 567_171), ("cnn", 346_067), ("gru", 70_531))
    def test_study_parameter_counts(self, name, params):
        model = build_model(name, num_classes=3, input_shape=(101, 40))
        self.assertEqual(model.count_params(), params)
        self.assertEqual(STUDY[name].params, params)
        self.assertIsInstance(model, keras.Sequential)

    @parameterized.parameters(*MODEL_NAMES)
    def test_outputs_class_probabilities(self, name):
        model = build_model(name, num_classes=5)
        scores = model(np.random.default_rng(0).standard_normal((2, 101, 40)).astype("float32"))
        self.assertEqual(scores.shape, (2, 5))
        self.assertAllClose(np.sum(scores, axis=-1), [1.0, 1.0], atol=1e-5)

    @parameterized.parameters(("fc", 4), ("cnn", 3), ("gru", 4))
    def test_dropout_adds_layers_but_no_parameters(self, name, dropouts):
        model = build_model(name, num_classes=3, dropout=0.2)
        self.assertEqual(model.count_params(), STUDY[name].params)
        layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
        self.assertLen(layers, dropouts)
        self.assertAllClose([layer.rate for layer in layers], [0.2] * dropouts)
        features = np.random.default_rng(0).standard_normal((2, 101, 40)).astype("float32")
        self.assertAllClose(model(features), model(features))  # inactive at inference
        self.assertNotAllClose(model(features, training=True), model(features))

    def test_cnn_flattens_to_the_study_width(self):
        model = build_model("cnn", num_classes=3)
        flatten = next(layer for layer in model.layers if isinstance(layer, keras.layers.Flatten))
        self.assertEqual(flatten.output.shape[1:], (22 * 7 * 16,))

    def test_gru_layers_follow_the_study_formula(self):
        model = build_model("gru", num_classes=3)
        grus = [layer for layer in model.layers if isinstance(layer, keras.layers.GRU)]
        self.assertEqual([layer.count_params() for layer in grus], [20_352, 24_960])
        self.assertTrue(all(layer.reset_after for layer in grus))
        self.assertEndsWith(gru_formula(40, 64), "= 20,352")
        self.assertIn("3(64*64 + 2*64 + 64^2) = 24,960", describe(model))

    def test_fc_exact_output_from_constant_weights(self):
        model = build_model("fc", num_classes=3, input_shape=(2, 2))
        for layer in model.layers:
            if layer.weights:
                kernel, bias = layer.get_weights()
                layer.set_weights([np.full_like(kernel, 0.01), np.zeros_like(bias)])
        # Every unit of each hidden layer sees the same sum; equal logits give equal scores.
        scores = model(np.ones((1, 2, 2), "float32"))
        self.assertAllClose(scores, [[1 / 3, 1 / 3, 1 / 3]])
        hidden = keras.Sequential(model.layers[:2])(np.ones((1, 2, 2), "float32"))
        self.assertAllClose(hidden, np.full((1, 128), 0.04))

    @parameterized.parameters(("rnn", "unknown model 'rnn'; choose from fc, cnn, gru"),)
    def test_unknown_name(self, name, message):
        with self.assertRaisesRegex(InputError, message):
            build_model(name, num_classes=3)

    def test_needs_two_classes(self):
        with self.assertRaisesRegex(InputError, "at least 2 classes, got num_classes=1"):
            build_model("fc", num_classes=1)


if __name__ == "__main__":
    tf.test.main()
