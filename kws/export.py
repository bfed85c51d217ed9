"""Exports a trained gru model to TFLite: float and int8 window models, an int8 streaming
model, and a manifest. ``python -m kws.export --model <run>/gru.keras``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from kws import benchmark_tflite, fileio, micro
from kws.config import FrontEnd
from kws.errors import InputError, describe_os_error
from kws.models import load_trained_model
from kws.report import REPORT_FILENAME
from kws.run import load_data, read_report
from kws.streaming import GRUClassifier

WINDOW_FLOAT = "gru_float32.tflite"
WINDOW_INT8 = "gru_int8.tflite"
STREAM_INT8 = "gru_int8_stream.tflite"
MANIFEST = "manifest.json"
MICRO_FILES = (STREAM_INT8, WINDOW_INT8)  # also written as C arrays for TensorFlow Lite Micro
CALIBRATION_CLIPS = 256
# Training clips drawn to choose the class-balanced calibration clips among.
CALIBRATION_POOL = 16 * CALIBRATION_CLIPS
# Calibration sets tried for each int8 file; the file that agrees best with the float
# model on the validation split is kept. Which set calibrates moves an int8 gru's test
# accuracy by up to 2 points (docs/measurements/int8-calibration.md).
CALIBRATION_DRAWS = 3
# Frames of each calibration clip whose streaming states calibrate the streaming model.
CALIBRATION_FRAME_STRIDE = 4


def window_function(classifier: GRUClassifier, feature_shape: tuple[int, int]):
    @tf.function(input_signature=[tf.TensorSpec((1, *feature_shape), tf.float32, "features")])
    def window(features):
        return {"scores": classifier.window(features)}

    return window


def stream_function(classifier: GRUClassifier, num_mel_bins: int):
    specs = [tf.TensorSpec((1, num_mel_bins), tf.float32, "frame")] + [
        tf.TensorSpec((1, gru.units), tf.float32, f"state_{i}")
        for i, gru in enumerate(classifier.grus)]

    @tf.function(input_signature=specs)
    def stream(frame, *states):
        scores, new_states = classifier.step(frame, list(states))
        return {"scores": scores,
                **{f"new_state_{i}": state for i, state in enumerate(new_states)}}

    return stream


def convert(function, representative: Callable[[], Iterator[dict]] | None = None) -> bytes:
    """TFLite flatbuffer of a tf.function; with calibration samples, full int8."""
    # Through a SavedModel, so the file keeps a "serving_default" signature with the
    # input and output names (frame, state_0, scores, new_state_0, ...).
    with tempfile.TemporaryDirectory() as saved_model_dir:
        tf.saved_model.save(tf.Module(), saved_model_dir,
                            signatures={benchmark_tflite.SIGNATURE: function})
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        if representative is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
            # One scale per dense weight matrix instead of one per output unit: 1,000
            # fewer scale/zero-point pairs (~25 KB) at no measurable accuracy cost here.
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True
        return converter.convert()


def balanced_choice(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices, in order, of ``count // classes`` clips of each class in ``labels`` drawn
    with ``seed`` (all of a class that has fewer).

    Drawn at random, calibration follows the training split's class shares, in which
    ``_silence_`` is under 2 % once synthetic clips join it; balanced, every class sets
    the int8 ranges. On the shipped recipe's gru the int8 files came closer to the Keras
    model: 0.42 points apart on average against 0.72 (window), 0.35 against 0.62
    (streaming), over 9 and 5 draws (docs/measurements/int8-calibration.md).
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    share = count // len(classes)
    return np.sort(np.concatenate(
        [rng.permutation(np.flatnonzero(labels == label))[:share] for label in classes]))


def most_faithful_int8(function, calibration_draws: list[Callable[[], Iterator[dict]]],
                       validation_features: np.ndarray,
                       float_scores: np.ndarray) -> tuple[bytes, int, float]:
    """Converts ``function`` to int8 once per calibration draw and keeps the file whose
    classes of the validation clips agree most often with the float model's
    (``float_scores``), the earliest of equals.

    Returns:
        The flatbuffer, the index of its draw and its agreement.
    """
    best = (b"", 0, -1.0)
    for index, samples in enumerate(calibration_draws):
        flatbuffer = convert(function, samples)
        scores = benchmark_tflite.clip_scores(benchmark_tflite.SignatureModel(flatbuffer),
                                              validation_features)
        agreement = float(np.mean(np.argmax(scores, -1) == np.argmax(float_scores, -1)))
        if agreement > best[2]:
            best = (flatbuffer, index, agreement)
    return best


def window_calibration_samples(features: np.ndarray) -> Callable[[], Iterator[dict]]:
    """The window model's calibration inputs, one clip of ``features`` at a time."""
    return lambda: ({"features": clip[None]} for clip in features)


def stream_calibration_samples(classifier: GRUClassifier,
                               features: np.ndarray) -> list[dict[str, np.ndarray]]:
    """(frame, states) inputs met while streaming real clips from zero state.

    States captured from the float streaming model, not zeros or noise, set the int8
    ranges of the state inputs: calibrating state with anything else loses accuracy.
    """
    samples = []
    states = classifier.zero_states(len(features))
    for frame_index in range(features.shape[1]):
        if frame_index % CALIBRATION_FRAME_STRIDE == 0:
            for clip in range(len(features)):
                samples.append({"frame": features[clip : clip + 1, frame_index],
                                **{f"state_{i}": np.asarray(state[clip : clip + 1])
                                   for i, state in enumerate(states)}})
        _, states = classifier.step(features[:, frame_index], states)
    return samples


def export(model_path: Path, front_end: FrontEnd, calibration_draws: list[np.ndarray],
           validation_features: np.ndarray, test_features: np.ndarray,
           test_labels: np.ndarray, keras_test_accuracy: float, training: dict) -> dict:
    """Writes the three TFLite files and ``manifest.json`` beside ``model_path``.

    Args:
        model_path: A trained ``gru.keras``.
        front_end: The run's front end (``features.json``), copied into the manifest.
        calibration_draws: Sets of normalised training features ``(clips, frames, mel
            bins)`` for int8 calibration, 200 clips or more each for stable ranges; each
            int8 file keeps the set that suits it best (``most_faithful_int8``).
        validation_features: Normalised validation features, to choose the calibration
            set by.
        test_features: Normalised test features, for the accuracy of each file.
        test_labels: Label indices of the test clips.
        keras_test_accuracy: The Keras model's accuracy on the same clips.
        training: The run's training configuration (``report.json``'s ``config``), kept in
            the manifest so the test clips can be rebuilt.
    """
    out_dir = model_path.parent
    model = load_trained_model(model_path)
    classifier = GRUClassifier.from_keras(model)
    feature_shape = front_end.features.feature_shape
    window = window_function(classifier, feature_shape)
    stream = stream_function(classifier, feature_shape[1])
    window_float = convert(window)
    float_scores = benchmark_tflite.clip_scores(benchmark_tflite.SignatureModel(window_float),
                                                validation_features)

    def stream_samples(calibration):
        samples = stream_calibration_samples(classifier, calibration)
        return lambda: iter(samples)

    flatbuffers = {WINDOW_FLOAT: window_float}
    calibration_choice = {}
    for name, function, samples in ((WINDOW_INT8, window, window_calibration_samples),
                                    (STREAM_INT8, stream, stream_samples)):
        flatbuffers[name], draw, agreement = most_faithful_int8(
            function, [samples(calibration) for calibration in calibration_draws],
            validation_features, float_scores)
        calibration_choice[name] = {"calibration_draw": draw,
                                    "validation_agrees_with_float": agreement}
    manifest = {**front_end.to_dict(), "keras_test_accuracy": keras_test_accuracy,
                "test_clips": len(test_labels),
                "calibration_clips": len(calibration_draws[0]),
                "calibration_draws": len(calibration_draws),
                "validation_clips": len(validation_features),
                "training": training, "files": {}}
    window_predictions = {}
    for name, flatbuffer in flatbuffers.items():
        runner = benchmark_tflite.SignatureModel(flatbuffer)
        scores = benchmark_tflite.clip_scores(runner, test_features)
        predictions = np.argmax(scores, axis=-1)
        window_predictions[name] = predictions
        with fileio.atomic_path(out_dir / name) as tmp:
            tmp.write_bytes(flatbuffer)
        manifest["files"][name] = {
            "bytes": len(flatbuffer), "sha256": hashlib.sha256(flatbuffer).hexdigest(),
            "test_accuracy": float(np.mean(predictions == test_labels)),
            **calibration_choice.get(name, {}),
            "inputs": benchmark_tflite.tensor_specs(runner.input_details),
            "outputs": benchmark_tflite.tensor_specs(runner.output_details)}
        if name in MICRO_FILES:
            manifest["files"][name]["micro"] = micro.write_c_files(out_dir, flatbuffer, name)
        logging.info("%s: %d bytes, test accuracy %.2f %%", name, len(flatbuffer),
                     100 * manifest["files"][name]["test_accuracy"])
    manifest["int8_stream_agrees_with_window"] = float(
        np.mean(window_predictions[STREAM_INT8] == window_predictions[WINDOW_INT8]))
    fileio.write_text_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def export_run(model_path: Path, data, front_end: FrontEnd, keras_test_accuracy: float,
               training_config: dict) -> dict:
    """``export`` with calibration and test features taken from a loaded data source
    (``LabelledClips`` or ``PreparedClips``).

    Calibration tries up to ``CALIBRATION_DRAWS`` different sets of ``CALIBRATION_CLIPS``
    training clips, the same number of each class (``balanced_choice``), drawn with the
    run's seed (``training_config["seed"]``), so the same run always exports the same
    int8 models.
    """
    from kws.data.pipeline import features_and_labels

    seed = training_config["seed"]
    pool_features, pool_labels = features_and_labels(
        data.clip_source("training").sample(CALIBRATION_POOL, seed), front_end)
    choices = []
    for draw in range(CALIBRATION_DRAWS):
        chosen = balanced_choice(pool_labels, CALIBRATION_CLIPS, seed + draw)
        if not any(np.array_equal(chosen, earlier) for earlier in choices):  # a small split
            choices.append(chosen)
    calibration_draws = [pool_features[chosen] for chosen in choices]
    if len(calibration_draws[0]) < 200:
        logging.warning("Only %d training clips to calibrate the int8 models; 200 or more "
                        "give stable ranges", len(calibration_draws[0]))
    validation_features, _ = features_and_labels(data.clip_source("validation"), front_end)
    test_features, test_labels = features_and_labels(data.clip_source("testing"), front_end)
    return export(model_path, front_end, calibration_draws, validation_features,
                  test_features, test_labels, keras_test_accuracy, training_config)


_MODEL = flags.DEFINE_string("model", None, "A trained gru model, <run>/gru.keras.")


def main(argv: list[str]) -> None:
    del argv
    try:
        if not _MODEL.value:
            raise InputError("--model is required, e.g. --model=export/runs/<run>/gru.keras")
        model_path = Path(_MODEL.value)
        load_trained_model(model_path)  # a bad file fails now, not after loading the data
        run_report, config = read_report(model_path.parent)
        keras_accuracy = run_report.get("models", {}).get("gru", {}).get("test_accuracy")
        if keras_accuracy is None:
            raise InputError(f"{model_path.parent / REPORT_FILENAME}: the run trained no gru")
        manifest = export_run(model_path, load_data(config), FrontEnd.load(model_path.parent),
                              keras_accuracy, run_report["config"])
    except InputError as error:
        sys.exit(f"kws.export: error: {error}")
    except OSError as error:  # a full disk, a folder made read-only mid-run
        sys.exit(f"kws.export: error: {describe_os_error(error)}")
    for name, entry in manifest["files"].items():
        print(f"{name:<24}{entry['bytes']:>9,} bytes  test accuracy "
              f"{100 * entry['test_accuracy']:.2f} %")


if __name__ == "__main__":
    app.run(main)
