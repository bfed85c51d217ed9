#!/usr/bin/env python3
"""Times kws's GRU exports beside what users would pick instead, in one run on this machine.

- The naive conversion: the trained Keras model rebuilt with ``GRU(unroll=True)`` (the
  only way Keras' GRU layer converts at all), as float, dynamic-range and int8 models.
- The fused LSTM that TFLite's maintainers recommend instead of a GRU: a Keras 2 model
  (``tf_keras``; ``pip install tf-keras~=2.21.0``, skipped without it) of the same shape,
  two LSTM layers of the GRU's units and the same head, whose LSTMs convert to TFLite's
  fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` kernel, full int8; its weights come from a short
  fit on the run's validation features, so their ranges, and the int8 calibration, are
  those of real features (its accuracy is not the point, only its speed and size).
- Our int8 streaming model, once per frame: the window model is compared with as many
  streaming steps as a clip has frames, timed with the states copied back in Python as
  the benchmark tool does, and as ``invoke()`` alone (what a device's C loop pays).

Every model runs on one thread with LiteRT, invoke() alone timed, in ``--rounds`` that
take each model in turn (a shared machine's speed drifts between minutes); the figures
are the medians of the rounds.

    python tools/compare_gru_exports.py --model export/runs/<run>/gru.keras --export_dir export
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kws import benchmark_tflite, fileio
from kws.config import FrontEnd
from kws.data.pipeline import features_array
from kws.errors import InputError, describe_os_error
from kws.export import STREAM_INT8, WINDOW_FLOAT, WINDOW_INT8
from kws.models import load_trained_model
from kws.run import load_data, read_report

FUSED_LSTM = "fused LSTM int8 (tf_keras)"
INVOKE_ONLY = ", invoke only"
LSTM_FIT_EPOCHS = 2
CALIBRATION_CLIPS = 100


def naive_unrolled(model: keras.Sequential) -> keras.Sequential:
    """The same layers and weights, with every GRU unrolled over its 101 steps."""
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "GRU":
            layer["config"]["unroll"] = True
    unrolled = keras.Sequential.from_config(config)
    unrolled.set_weights(model.get_weights())
    return unrolled


def convert_keras(model: keras.Sequential, quantization: str) -> bytes:
    """``float32``, ``dynamic-range`` or ``int8`` (calibrated on random features: the
    accuracy of this baseline is not measured, only its speed and size)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8":
        rng = np.random.default_rng(0)
        shape = (1, *model.input_shape[1:])
        converter.representative_dataset = lambda: (
            [rng.standard_normal(shape).astype(np.float32)] for _ in range(20))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def fused_lstm(model: keras.Sequential, features: np.ndarray, labels: np.ndarray) -> bytes:
    """The int8 fused-LSTM model of ``model``'s shape (its GRU units, its Dense head),
    fitted for ``LSTM_FIT_EPOCHS`` on ``features`` and calibrated on them."""
    import tf_keras  # an optional extra: only this comparison needs Keras 2

    recurrent = [layer for layer in model.layers if isinstance(layer, keras.layers.GRU)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    lstm = tf_keras.Sequential(
        [tf_keras.Input(features.shape[1:]),
         *(tf_keras.layers.LSTM(layer.units, return_sequences=index < len(recurrent) - 1)
           for index, layer in enumerate(recurrent)),
         *(tf_keras.layers.Dense(layer.units, activation=layer.activation.__name__)
           for layer in dense)])
    lstm.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    lstm.fit(features, labels, epochs=LSTM_FIT_EPOCHS, batch_size=32, verbose=0)
    # A concrete function of batch 1 keeps Keras 2's "implements lstm" marking, which the
    # converter fuses into one op per layer.
    forward = tf.function(lambda clip: lstm(clip)).get_concrete_function(
        tf.TensorSpec((1, *features.shape[1:]), tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([forward], lstm)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [clip[None]] for clip in features[:CALIBRATION_CLIPS])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def run_features(model_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The normalised validation features and labels of the run ``model_path`` belongs to
    (its report.json and features.json)."""
    _, config = read_report(model_path.parent)
    validation = load_data(config).splits["validation"]
    return features_array(validation, FrontEnd.load(model_path.parent)), validation.labels


def time_model(content: bytes, num_runs: int, warmup_runs: int,
               invoke_only: bool = False) -> dict:
    """Latency of one invoke as the benchmark tool times it (a streaming model's new states
    copied back to its inputs in Python each time), or of ``invoke()`` alone: a device's
    C loop copies the states (128 bytes) at no measurable cost."""
    if invoke_only:
        model = benchmark_tflite.SignatureModel(content)
        interpreter = model.raw_interpreter()
        benchmark_tflite.timed_invoke(interpreter, model)  # sets the inputs
        result = benchmark_tflite.time_invokes(interpreter.invoke, num_runs, warmup_runs)
    else:
        args = argparse.Namespace(num_threads=1, use_xnnpack=True, stream=False,
                                  data_dir=None, manifest=None, num_runs=num_runs,
                                  warmup_runs=warmup_runs)
        result = benchmark_tflite.benchmark_content(content, Path("/dev/null"), args)
    return {"avg_us": result["avg_us"], "p50_us": result["p50_us"]}


def time_in_rounds(contents: dict[str, bytes], rounds: int, num_runs: int,
                   warmup_runs: int) -> dict[str, dict]:
    """Each model timed once per round, in turn; medians over the rounds. A name ending
    in ``INVOKE_ONLY`` times ``invoke()`` alone."""
    per_round = {name: [] for name in contents}
    for _ in range(rounds):
        for name, content in contents.items():
            per_round[name].append(time_model(content, num_runs, warmup_runs,
                                              name.endswith(INVOKE_ONLY)))
    return {name: {"bytes": len(contents[name]),
                   **{key: statistics.median(timing[key] for timing in timings)
                      for key in ("avg_us", "p50_us")},
                   "rounds": timings}
            for name, timings in per_round.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained gru.keras")
    parser.add_argument("--export_dir", required=True, help="folder of kws.export's files")
    parser.add_argument("--num_runs", type=int, default=300)
    parser.add_argument("--warmup_runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    try:
        exported = {name: benchmark_tflite.read_model(Path(args.export_dir) / name)
                    for name in (WINDOW_FLOAT, WINDOW_INT8, STREAM_INT8)}
        trained = load_trained_model(args.model)
        unrolled = naive_unrolled(trained)
        anchors = {}
        if importlib.util.find_spec("tf_keras") is None:
            print(f"{FUSED_LSTM}: skipped, tf_keras is not installed "
                  "(pip install tf-keras~=2.21.0)")
        else:
            anchors[FUSED_LSTM] = fused_lstm(trained, *run_features(Path(args.model)))
    except (InputError, benchmark_tflite.BenchmarkError) as error:
        sys.exit(f"compare_gru_exports: error: {error}")
    contents = {**{f"naive unrolled {quantization}": convert_keras(unrolled, quantization)
                   for quantization in ("float32", "dynamic-range", "int8")},
                **anchors, **exported, STREAM_INT8 + INVOKE_ONLY: exported[STREAM_INT8]}
    figures = time_in_rounds(contents, args.rounds, args.num_runs, args.warmup_runs)
    naive = min(figures[f"naive unrolled {q}"]["avg_us"]
                for q in ("float32", "dynamic-range", "int8"))
    window = figures[WINDOW_INT8]["avg_us"]
    for name, figure in figures.items():
        rounds = " / ".join(f"{timing['avg_us']:.0f}" for timing in figure["rounds"])
        print(f"{name:<32}{figure['bytes']:>10,} bytes{figure['avg_us']:>10.1f} us avg"
              f"{figure['p50_us']:>10.1f} us p50   (rounds: {rounds} us avg)")
    frames = benchmark_tflite.SignatureModel(exported[WINDOW_INT8]).input_details[
        "features"]["shape"][1]
    print(f"int8 window / fastest naive: {window / naive:.3f}")
    if FUSED_LSTM in figures:
        print(f"int8 window / {FUSED_LSTM}: {window / figures[FUSED_LSTM]['avg_us']:.3f}")
    print(f"int8 window / {frames} int8 stream steps: "
          f"{window / (frames * figures[STREAM_INT8]['avg_us']):.3f} (each step with its "
          "states copied back in Python)")
    print(f"int8 window / {frames} int8 stream invokes: "
          f"{window / (frames * figures[STREAM_INT8 + INVOKE_ONLY]['avg_us']):.3f} (target "
          "<= 1.0: a window model no slower than streaming the same frames)")
    if args.json:
        try:
            fileio.write_text_atomic(args.json, json.dumps(figures, indent=2) + "\n")
        except OSError as error:
            sys.exit(f"compare_gru_exports: error: {describe_os_error(error)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
