"""The trained GRU classifier as explicit ops: one step, two inference modes.

Keras' GRU layer does not convert to an integer TFLite model (its time loop becomes
TensorList ops), so the same arithmetic is written out here as matrix products and gates,
with the trained weights copied once and shared by every time step:

- ``window``: a clip's (frames, mel bins) features in, class scores out.
- ``step``: one frame and the GRU states in, scores and the new states out: the external
  state streaming mode of kws_streaming, for continuous audio on a device.

Feeding a clip's frames to ``step`` one by one from zero states gives ``window``'s scores.
"""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
from keras import ops

from kws.errors import InputError


@dataclasses.dataclass(frozen=True)
class GRUWeights:
    """One Keras GRU layer (``reset_after=True``), gates in Keras order z, r, h.

    Args:
        kernel: Input projection, (inputs, 3 x units).
        recurrent_kernel: State projection, (units, 3 x units).
        input_bias: Bias of the input projection, (3 x units,).
        recurrent_bias: Bias of the state projection, (3 x units,).
    """

    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    input_bias: np.ndarray
    recurrent_bias: np.ndarray

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]

    @classmethod
    def from_layer(cls, layer: keras.layers.GRU) -> GRUWeights:
        cell = layer.cell
        settings = {"reset_after": cell.reset_after, "use_bias": cell.use_bias,
                    "activation": cell.activation.__name__,
                    "recurrent_activation": cell.recurrent_activation.__name__}
        expected = {"reset_after": True, "use_bias": True, "activation": "tanh",
                    "recurrent_activation": "sigmoid"}
        if settings != expected:
            raise InputError(f"GRU layer {layer.name!r} has {settings}; export needs {expected}")
        kernel, recurrent_kernel, bias = (np.asarray(w) for w in layer.get_weights())
        return cls(kernel, recurrent_kernel, bias[0], bias[1])

    @functools.cached_property
    def _negated_update_gate(self) -> tuple[np.ndarray, ...]:
        """The weights with the update gate's columns negated, so that its sigmoid gives
        1 - z directly (sigmoid(-x) = 1 - sigmoid(x)) with no negation op."""
        signs = np.concatenate([-np.ones(self.units), np.ones(2 * self.units)]).astype(
            self.kernel.dtype)
        return (self.kernel * signs, self.recurrent_kernel * signs, self.input_bias * signs,
                self.recurrent_bias * signs)

    def step(self, inputs, state):
        """The new state after one frame: Keras' GRU cell arithmetic,
        ``z * state + (1 - z) * candidate``, written as
        ``state + (1 - z) * (candidate - state)``.

        Int8 rounds a sigmoid to steps of 1/256 that reach 0 but not 1, so a unit whose
        update gate z is near 1 (holding its state, as on noise-only audio) would drift
        by 1/256 of the gap to its candidate every frame if z were the quantized tensor;
        1 - z is, and rounds to exactly 0. On three seeds of the shipped recipe the int8
        files' ``_silence_`` recall went from 87-96 % to 96-98 % (float: 99.3 %;
        docs/measurements/int8-calibration.md).
        """
        kernel, recurrent_kernel, input_bias, recurrent_bias = self._negated_update_gate
        projected = ops.matmul(inputs, kernel) + input_bias
        recurrent = ops.matmul(state, recurrent_kernel) + recurrent_bias
        input_z, input_r, input_h = ops.split(projected, 3, axis=-1)
        recurrent_z, recurrent_r, recurrent_h = ops.split(recurrent, 3, axis=-1)
        change = ops.sigmoid(input_z + recurrent_z)  # 1 - z
        reset = ops.sigmoid(input_r + recurrent_r)
        candidate = ops.tanh(input_h + reset * recurrent_h)
        return state + change * (candidate - state)


@dataclasses.dataclass(frozen=True)
class DenseWeights:
    kernel: np.ndarray
    bias: np.ndarray
    activation: str

    ACTIVATIONS = {"relu": ops.relu, "softmax": ops.softmax, "linear": lambda x: x}

    @classmethod
    def from_layer(cls, layer: keras.layers.Dense) -> DenseWeights:
        activation = layer.activation.__name__
        if activation not in cls.ACTIVATIONS or not layer.use_bias:
            raise InputError(f"Dense layer {layer.name!r} ({activation}) cannot be exported")
        kernel, bias = (np.asarray(w) for w in layer.get_weights())
        return cls(kernel, bias, activation)

    def __call__(self, inputs):
        return self.ACTIVATIONS[self.activation](ops.matmul(inputs, self.kernel) + self.bias)


@dataclasses.dataclass(frozen=True)
class GRUClassifier:
    """Stacked GRU layers, then Dense layers on the last state: the study's gru model."""

    grus: tuple[GRUWeights, ...]
    head: tuple[DenseWeights, ...]

    @classmethod
    def from_keras(cls, model: keras.Sequential) -> GRUClassifier:
        """Copies the weights of a trained ``build_model("gru", ...)`` Sequential."""
        grus = tuple(GRUWeights.from_layer(layer) for layer in model.layers
                     if isinstance(layer, keras.layers.GRU))
        head = tuple(DenseWeights.from_layer(layer) for layer in model.layers
                     if isinstance(layer, keras.layers.Dense))
        # Dropout does nothing at inference, so the exported ops leave it out.
        dropouts = sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
        if not grus or len(grus) + len(head) + dropouts != len(model.layers):
            names = [type(layer).__name__ for layer in model.layers]
            raise InputError(f"model {model.name!r} is {names}, not GRU layers then Dense layers")
        return cls(grus, head)

    def zero_states(self, batch_size: int = 1) -> list[np.ndarray]:
        return [np.zeros((batch_size, gru.units), np.float32) for gru in self.grus]

    def step(self, frame, states):
        """Scores after one more frame ``(batch, mel bins)``, and the new states."""
        new_states = []
        inputs = frame
        for gru, state in zip(self.grus, states, strict=True):
            inputs = gru.step(inputs, state)
            new_states.append(inputs)
        return self.classify(inputs), new_states

    def classify(self, last_state):
        """Class scores from the top GRU layer's state."""
        scores = last_state
        for dense in self.head:
            scores = dense(scores)
        return scores

    def window(self, features):
        """Class scores of whole clips ``(batch, frames, mel bins)``: ``step`` in a loop.

        The loop carries the frames and rotates them by one each step, reading frame 0,
        rather than indexing an unchanging tensor: a loop input that passes through
        unchanged makes TFLite's calibrator crash (tensorflow/tensorflow#75140), which
        would rule out an integer window model.
        """
        batch_size = ops.shape(features)[0]

        def body(frame_index, carried):
            frames, states = carried
            _, new_states = self.step(frames[:, 0], states)
            rotated = ops.concatenate([frames[:, 1:], frames[:, :1]], axis=1)
            return rotated, new_states

        initial = [ops.zeros((batch_size, gru.units)) for gru in self.grus]
        _, states = ops.fori_loop(0, ops.shape(features)[1], body, (features, initial))
        return self.classify(states[-1])
