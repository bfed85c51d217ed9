"""Strategies, mixed precision, and the training-speed benchmark."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kws.distribute import describe, make_strategy
from kws.models import build_model
from tests import fixtures

ROOT = Path(__file__).resolve().parents[1]
# Two logical CPU devices must be set up before TensorFlow starts: a fresh process.
TWO_CPUS = """
import runpy, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.argv = ["kws.train", *sys.argv[1:]]
runpy.run_module("kws.train", run_name="__main__")
"""


class MirroredTest(tf.test.TestCase):
    def test_trains_on_two_logical_cpus_like_on_one(self):
        root = Path(self.create_tempdir().full_path)
        words = fixtures.write_word_folder(root / "words", {"yes": 300.0, "no": 700.0},
                                           [f"spk{i:02d}" for i in range(20)], takes=2)
        reports = {}
        for distribution in ("default", "mirrored"):
            result = subprocess.run(
                [sys.executable, "-c", TWO_CPUS, f"--distribution={distribution}",
                 f"--data_dir={words}", "--models=fc", "--epochs=4", "--batch_size=16",
                 "--silence_percentage=0", f"--output_dir={root / distribution}"],
                capture_output=True, text=True, timeout=300, cwd=ROOT)
            self.assertEqual(result.returncode, 0, result.stderr[-2000:])
            reports[distribution] = json.loads((root / distribution / "report.json").read_text())
            if distribution == "mirrored":
                self.assertIn("MirroredStrategy: 2 replica(s) on", result.stderr)
                self.assertIn("Global batch 16, 8 clips per replica per step; learning rate "
                              "0.001 as given", result.stderr)
        accuracies = [report["models"]["fc"]["test_accuracy"] for report in reports.values()]
        self.assertGreater(min(accuracies), 0.9)  # two distinct tones, either way

    def test_default_is_one_device(self):
        strategy = make_strategy("default")
        self.assertEqual(strategy.num_replicas_in_sync, 1)
        self.assertIn("GRU: generic kernel (cuDNN needs a GPU)", describe(strategy))


class MixedPrecisionTest(tf.test.TestCase):
    def test_scores_stay_float32(self):
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            model = build_model("gru", 3)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            model.train_on_batch(np.zeros((2, 101, 40), np.float32), np.array([0, 1]))
            scores = model.predict(np.zeros((2, 101, 40), np.float32), verbose=0)
            self.assertEqual(model.layers[0].compute_dtype, "float16")
            self.assertEqual(model.layers[-1].compute_dtype, "float32")
            self.assertEqual(scores.dtype, np.float32)
            self.assertEqual(model.count_params(), 70_531)
        finally:
            keras.mixed_precision.set_global_policy("float32")


class BenchmarkTrainTest(tf.test.TestCase):
    def run_tool(self, *flags: str) -> dict:
        out = Path(self.create_tempdir().full_path) / "speed.json"
        result = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "benchmark_train.py"), "--models=fc",
             "--steps=2", "--warmup_steps=1", "--batch_size=8", f"--json={out}", *flags],
            capture_output=True, text=True, timeout=300, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("train step alone", result.stdout)
        return json.loads(out.read_text())

    def test_tensorflow_pipeline_step_and_both(self):
        figures = self.run_tool()
        self.assertEqual(figures["backend"], "tensorflow")
        self.assertGreater(figures["pipeline_clips_per_second"], 0)
        fc = figures["models"]["fc"]
        for key in ("step_clips_per_second", "fit_clips_per_second", "pipeline_over_step"):
            self.assertGreater(fc[key], 0)

    def test_jax_backend_trains_the_same_models(self):
        if importlib.util.find_spec("jax") is None:
            self.skipTest("JAX is not installed (pip install jax to run the models on it)")
        figures = self.run_tool("--backend=jax")
        self.assertEqual(figures["backend"], "jax")
        self.assertNotIn("pipeline_clips_per_second", figures)
        self.assertGreater(figures["models"]["fc"]["step_clips_per_second"], 0)


if __name__ == "__main__":
    tf.test.main()
