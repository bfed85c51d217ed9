"""Issue 17, item 1: an int8 window model that runs k GRU steps per WHILE iteration,
against 101 invokes of the int8 streaming model. Not part of kws: the measurement behind
``README.md`` in this folder, kept so it can be run again.

    python docs/measurements/window-frames-per-iteration/measure.py RUN/gru.keras 1,2,4 5

prints each window file's bytes (total, weight data, tensor names) and its agreement with
the Keras model on the run's validation clips, then (ROUNDS > 0) medians of ROUNDS
interleaved rounds of 300 ``invoke()`` calls on one thread (XNNPACK), timed by
``tools/compare_gru_exports.py``'s ``time_model``.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from keras import ops
from tensorflow.lite.python import schema_py_generated as schema

from kws import benchmark_tflite
from kws import export as kws_export
from kws.models import load_trained_model
from kws.streaming import GRUClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
from compare_gru_exports import run_features, time_model  # noqa: E402


def window_k(classifier: GRUClassifier, features, steps_per_iteration: int):
    """``classifier.window`` with ``steps_per_iteration`` steps per loop iteration; 101
    frames is prime, so the frames left over run before the loop."""
    frames = features.shape[1]
    leading = frames % steps_per_iteration
    states = [ops.zeros((1, gru.units)) for gru in classifier.grus]
    for index in range(leading):
        _, states = classifier.step(features[:, index], states)

    def body(_, carried):
        rest, states = carried
        for index in range(steps_per_iteration):
            _, states = classifier.step(rest[:, index], states)
        rotated = ops.concatenate([rest[:, steps_per_iteration:],
                                   rest[:, :steps_per_iteration]], axis=1)
        return rotated, states

    _, states = ops.fori_loop(0, (frames - leading) // steps_per_iteration, body,
                              (features[:, leading:], states))
    return classifier.classify(states[-1])


def byte_breakdown(content: bytes) -> tuple[int, int]:
    """(weight and bias bytes, tensor name bytes) of a flatbuffer."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    data = sum(len(buffer.data) for buffer in model.buffers if buffer.data is not None)
    names = sum(len(tensor.name or b"") for graph in model.subgraphs for tensor in graph.tensors)
    return data, names


def main() -> None:
    model_path = Path(sys.argv[1])
    steps = [int(k) for k in sys.argv[2].split(",")]
    rounds = int(sys.argv[3])
    classifier = GRUClassifier.from_keras(load_trained_model(model_path))
    features, _ = run_features(model_path)
    calibration = features[:kws_export.CALIBRATION_CLIPS]
    files = {}
    for k in steps:
        @tf.function(input_signature=[tf.TensorSpec((1, *features.shape[1:]), tf.float32,
                                                    "features")])
        def window(clip, k=k):
            return {"scores": window_k(classifier, clip, k)}

        files[f"window, {k} per iteration"] = kws_export.convert(
            window, lambda: ({"features": clip[None]} for clip in calibration))
    samples = kws_export.stream_calibration_samples(classifier, calibration)
    files["stream"] = kws_export.convert(
        kws_export.stream_function(classifier, features.shape[2]), lambda: iter(samples))
    keras_classes = np.argmax(np.asarray(classifier.window(features)), axis=-1)
    for name, content in files.items():
        data, names = byte_breakdown(content)
        line = f"{name:<26}{len(content):>9,} bytes (weights {data:,}, names {names:,})"
        if name != "stream":
            scores = benchmark_tflite.clip_scores(benchmark_tflite.SignatureModel(content),
                                                  features)
            agree = np.mean(np.argmax(scores, axis=-1) == keras_classes)
            line += f", same class as Keras on {100 * agree:.2f} % of {len(features)} clips"
        print(line, flush=True)
    if not rounds:
        return
    times = {name: [] for name in files}
    for _ in range(rounds):
        for name, content in files.items():
            times[name].append(time_model(content, 300, 20, invoke_only=True)["avg_us"])
    frames = features.shape[1]
    stream = statistics.median(times["stream"])
    for name, timings in times.items():
        median = statistics.median(timings)
        ratio = ("" if name == "stream"
                 else f"   {median / (frames * stream):.2f} x {frames} stream invokes")
        print(f"{name:<26}{median:8.1f} us  (rounds {' / '.join(f'{t:.0f}' for t in timings)})"
              f"{ratio}")


if __name__ == "__main__":
    main()
