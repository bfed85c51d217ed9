"""The three models of the original study, as pure builder functions.

``python -m kws.models`` prints every layer with its parameter count, the study's formula
beside each GRU layer, and the three totals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import keras

from kws.config import MODEL_NAMES, check_model_names
from kws.errors import InputError

HIDDEN_UNITS = 128
GRU_UNITS = 64


@dataclasses.dataclass(frozen=True)
class StudyResult:
    """What the original study reports for a model at 101x40 inputs and 3 classes."""

    params: int
    test_accuracy_percent: float


STUDY = {
    "fc": StudyResult(params=567_171, test_accuracy_percent=87.96),
    "cnn": StudyResult(params=346_067, test_accuracy_percent=91.78),
    "gru": StudyResult(params=70_531, test_accuracy_percent=95.69),
}


def _dropped(layer: keras.layers.Layer, dropout: float) -> list[keras.layers.Layer]:
    """``layer``, then dropout at ``dropout`` when it is not 0 (no parameters)."""
    return [layer, keras.layers.Dropout(dropout)] if dropout else [layer]


def _classifier_head(num_classes: int, hidden_layers: int,
                     dropout: float) -> list[keras.layers.Layer]:
    """``hidden_layers`` x Dense(128, relu), each followed by dropout, then class
    probabilities."""
    hidden = [layer for _ in range(hidden_layers)
              for layer in _dropped(keras.layers.Dense(HIDDEN_UNITS, activation="relu"),
                                    dropout)]
    # Scores stay float32 under a mixed-precision policy: a float16 softmax loses the
    # small probabilities and the loss with them.
    return [*hidden, keras.layers.Dense(num_classes, activation="softmax", dtype="float32")]


def _fc(input_shape: tuple[int, int], num_classes: int,
        dropout: float) -> list[keras.layers.Layer]:
    return [keras.layers.Flatten(), *_classifier_head(num_classes, 4, dropout)]


def _cnn(input_shape: tuple[int, int], num_classes: int,
         dropout: float) -> list[keras.layers.Layer]:
    return [
        keras.layers.Reshape((*input_shape, 1)),  # the spectrogram as a one-channel image
        keras.layers.Conv2D(32, (5, 5), activation="relu", padding="valid"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, (5, 5), activation="relu", padding="valid"),
        keras.layers.MaxPooling2D(2),
        *_dropped(keras.layers.Flatten(), dropout),
        *_classifier_head(num_classes, 2, dropout),
    ]


def _gru(input_shape: tuple[int, int], num_classes: int,
         dropout: float) -> list[keras.layers.Layer]:
    # Keras defaults (tanh, sigmoid, reset_after=True, no recurrent dropout) keep the fused
    # cuDNN kernel available on a GPU; dropout between layers leaves it so.
    return [
        *_dropped(keras.layers.GRU(GRU_UNITS, return_sequences=True), dropout),
        *_dropped(keras.layers.GRU(GRU_UNITS), dropout),
        *_classifier_head(num_classes, 2, dropout),
    ]


MODEL_BUILDERS: dict[str, Callable[[tuple[int, int], int, float], list[keras.layers.Layer]]] = \
    dict(zip(MODEL_NAMES, (_fc, _cnn, _gru), strict=True))


def build_model(name: str, num_classes: int, input_shape: tuple[int, int] = (101, 40),
                dropout: float = 0.0) -> keras.Sequential:
    """The study's model ``name`` (``fc``, ``cnn`` or ``gru``) as an uncompiled Sequential.

    Args:
        name: Which model.
        num_classes: Number of output classes; the last layer gives their probabilities.
        input_shape: ``(frames, mel bins)`` of one clip's log-mel features.
        dropout: Rate of a dropout layer after every hidden layer (and the cnn's flattened
            features), active only in training; 0 adds none. No parameters either way.
    """
    check_model_names([name])
    if num_classes < 2:
        raise InputError(f"a classifier needs at least 2 classes, got num_classes={num_classes}")
    layers = MODEL_BUILDERS[name](tuple(input_shape), num_classes, dropout)
    return keras.Sequential([keras.Input(shape=tuple(input_shape)), *layers], name=name)


def load_trained_model(path: str | Path) -> keras.Model:
    """Loads a ``.keras`` model in Keras' safe mode: a file edited to run code (a lambda
    layer, a pickled function) is refused, never executed. Anything that is not a model
    raises ``InputError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--model={path}: no such file")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)  # for inference
    except Exception as error:  # Keras raises many types for a bad file; all mean the same
        reason = " ".join(str(error).split())
        causes = [error, error.__cause__, error.__context__]
        if any("code execution" in str(cause) for cause in causes if cause):
            reason = "it holds Python code (a lambda), which safe mode refuses to run"
        raise InputError(f"--model={path}: not a kws model that loads safely ({reason[:300]})") \
            from None


def gru_formula(input_size: int, units: int) -> str:
    """The study's GRU parameter count, 3(HI + 2H + H^2) for Keras' ``reset_after=True``."""
    count = 3 * (units * input_size + 2 * units + units * units)
    return (f"3(HI + 2H + H^2) = 3({units}*{input_size} + 2*{units} + {units}^2) = {count:,}")


def describe(model: keras.Sequential) -> str:
    """A table of the model's layers and parameter counts, with the GRU formula."""
    lines = [f"{model.name}", f"  {'layer':<18}{'output shape':<22}{'params':>9}"]
    for layer in model.layers:
        note = ""
        if isinstance(layer, keras.layers.GRU):
            note = f"   {gru_formula(layer.input.shape[-1], layer.units)}"
        shape = str(tuple(layer.output.shape[1:]))
        lines.append(f"  {layer.name:<18}{shape:<22}{layer.count_params():>9,}{note}")
    lines.append(f"  {'total':<40}{model.count_params():>9,}")
    return "\n".join(lines)


def main() -> None:
    totals = []
    for name in MODEL_NAMES:
        model = build_model(name, num_classes=3)
        print(describe(model), end="\n\n")
        totals.append((name, model.count_params(), STUDY[name].params))
    print(f"{'model':<6}{'params':>10}{'study':>10}")
    for name, params, study in totals:
        print(f"{name:<6}{params:>10,}{study:>10,}{'' if params == study else '  MISMATCH'}")


if __name__ == "__main__":
    main()
