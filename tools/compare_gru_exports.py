#!/usr/bin/env python3
"""Times kws's GRU exports beside the naive conversion, in one run on this machine.

The naive conversion is the trained Keras model rebuilt with ``GRU(unroll=True)`` (the
only way Keras' GRU layer converts at all) and converted as float and dynamic-range
models. Every model runs on one thread with LiteRT, invoke() alone timed.

    python tools/compare_gru_exports.py --model export/runs/<run>/gru.keras --export_dir export
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kws import benchmark_tflite, fileio
from kws.export import STREAM_INT8, WINDOW_FLOAT, WINDOW_INT8


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
    path = Path("/dev/null")
    result = benchmark_tflite.benchmark_content(content, path, args)
    return {"bytes": len(content), "avg_us": result["avg_us"], "p50_us": result["p50_us"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained gru.keras")
    parser.add_argument("--export_dir", required=True, help="folder of kws.export's files")
    parser.add_argument("--num_runs", type=int, default=300)
    parser.add_argument("--warmup_runs", type=int, default=20)
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    model = keras.saving.load_model(args.model, safe_mode=True)
    unrolled = naive_unrolled(model)
    contents = {
        **{f"naive unrolled {quantization}": convert_keras(unrolled, quantization)
           for quantization in ("float32", "dynamic-range", "int8")},
        **{name: (Path(args.export_dir) / name).read_bytes()
           for name in (WINDOW_FLOAT, WINDOW_INT8, STREAM_INT8)},
    }
    figures = {name: time_model(content, args.num_runs, args.warmup_runs)
               for name, content in contents.items()}
    naive = min(figures[f"naive unrolled {q}"]["avg_us"]
                for q in ("float32", "dynamic-range", "int8"))
    window = figures[WINDOW_INT8]["avg_us"]
    for name, figure in figures.items():
        print(f"{name:<32}{figure['bytes']:>10,} bytes{figure['avg_us']:>10.1f} us avg"
              f"{figure['p50_us']:>10.1f} us p50")
    print(f"int8 window / fastest naive: {window / naive:.3f} (target <= 0.333)")
    print(f"int8 stream step / int8 window: {figures[STREAM_INT8]['avg_us'] / window:.4f} "
          "(target <= 0.02)")
    if args.json:
        fileio.write_text_atomic(args.json, json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
