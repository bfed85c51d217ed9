#!/usr/bin/env python3
"""Times kws's GRU exports beside the naive conversion, in one run on this machine.

The naive conversion is the trained Keras model rebuilt with ``GRU(unroll=True)`` (the
only way Keras' GRU layer converts at all) and converted as float and dynamic-range
models. Every model runs on one thread with LiteRT, invoke() alone timed, in ``--rounds``
that take each model in turn (a shared machine's speed drifts between minutes); the
figures are the medians of the rounds.

    python tools/compare_gru_exports.py --model export/runs/<run>/gru.keras --export_dir export
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kws import benchmark_tflite, fileio
from kws.errors import InputError, describe_os_error
from kws.export import STREAM_INT8, WINDOW_FLOAT, WINDOW_INT8
from kws.models import load_trained_model


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


def time_model(content: bytes, num_runs: int, warmup_runs: int) -> dict:
    args = argparse.Namespace(num_threads=1, use_xnnpack=True, stream=False, data_dir=None,
                              manifest=None, num_runs=num_runs, warmup_runs=warmup_runs)
    result = benchmark_tflite.benchmark_content(content, Path("/dev/null"), args)
    return {"avg_us": result["avg_us"], "p50_us": result["p50_us"]}


def time_in_rounds(contents: dict[str, bytes], rounds: int, num_runs: int,
                   warmup_runs: int) -> dict[str, dict]:
    """Each model timed once per round, in turn; medians over the rounds."""
    per_round = {name: [] for name in contents}
    for _ in range(rounds):
        for name, content in contents.items():
            per_round[name].append(time_model(content, num_runs, warmup_runs))
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
        unrolled = naive_unrolled(load_trained_model(args.model))
    except (InputError, benchmark_tflite.BenchmarkError) as error:
        sys.exit(f"compare_gru_exports: error: {error}")
    contents = {**{f"naive unrolled {quantization}": convert_keras(unrolled, quantization)
                   for quantization in ("float32", "dynamic-range", "int8")},
                **exported}
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
    print(f"int8 window / {frames} int8 stream steps: "
          f"{window / (frames * figures[STREAM_INT8]['avg_us']):.3f} (target <= 1.0: a window "
          "model no slower than streaming the same frames)")
    if args.json:
        try:
            fileio.write_text_atomic(args.json, json.dumps(figures, indent=2) + "\n")
        except OSError as error:
            sys.exit(f"compare_gru_exports: error: {describe_os_error(error)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
