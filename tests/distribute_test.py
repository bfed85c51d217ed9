"""Strategies, mixed precision, and the training-speed benchmark."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws import collective
from kws.data.prepared import PrepareConfig, prepare
from kws.distribute import check_tf_config, describe, is_chief, make_strategy
from kws.errors import InputError
from kws.models import build_model
from kws.recipe import Recipe
from tests import fixtures

ROOT = fixtures.ROOT
# Two logical CPU devices must be set up before TensorFlow starts: a fresh process.
TWO_CPUS = """
import runpy, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.argv = ["kws.train", *sys.argv[1:]]
runpy.run_module("kws.train", run_name="__main__")
"""


class DistributionsTest(tf.test.TestCase):
    """The fc model trained for an epoch on one folder by each strategy learns alike (4 steps
    leave it near chance on these tones: the test compares, it does not ask for
    accuracy)."""

    TIMEOUT_S = 300

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = Path(tempfile.mkdtemp(prefix="kws-distribute-"))
        cls.words = fixtures.write_word_folder(
            cls.root / "words", {"yes": 300.0, "no": 700.0},
            [f"spk{i:02d}" for i in range(20)], takes=2)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def flags(self, distribution: str) -> list[str]:
        return [f"--distribution={distribution}", f"--data_dir={self.words}", "--models=fc",
                "--epochs=1", "--batch_size=16", "--silence_percentage=0", "--noexport",
                f"--output_dir={self.root / distribution}"]

    def test_mirrored_and_multi_worker_learn_like_one_device(self):
        # All at once (four processes), which halves the test's time on two cores.
        one_machine = {distribution: fixtures.start([sys.executable, "-c", TWO_CPUS,
                                            *self.flags(distribution)])
                       for distribution in ("default", "mirrored")}
        logs = {"multi_worker": self.run_two_workers(self.flags("multi_worker"))}
        for distribution, process in one_machine.items():
            logs[distribution] = self.finish([process])[0]

        self.assertIn("MirroredStrategy: 2 replica(s) on", logs["mirrored"])
        self.assertIn("Global batch 16, 8 clips per replica per step; learning rate 0.002 as "
                      "given", logs["mirrored"])
        self.assertIn("MultiWorkerMirroredStrategy: 2 replica(s) on /job:worker/replica:0/"
                      "task:0", logs["multi_worker"])
        reports = {name: json.loads((self.root / name / "report.json").read_text())
                   for name in logs}
        test_clips = reports["default"]["data"]["split_sizes"]["testing"]
        one_device = reports["default"]["models"]["fc"]["test_accuracy"]
        for name in ("mirrored", "multi_worker"):
            self.assertAllClose(reports[name]["models"]["fc"]["test_accuracy"], one_device,
                                atol=1 / test_clips + 1e-9, msg=name)
            self.assertEqual(reports[name]["data"], reports["default"]["data"])
        # The same initial weights and global batches, the gradients averaged over both
        # replicas or workers: the first epoch's loss is the one-device loss up to float
        # sums (accuracy on 4 test clips of a near-chance model says little).
        histories = {name: json.loads((self.root / name / "history.json").read_text())["fc"]
                     for name in logs}
        self.assertAllClose(histories["multi_worker"]["loss"][0],
                            histories["default"]["loss"][0], rtol=1e-3)
        # Keras' fit under MirroredStrategy distributes the dataset itself, and tf.data's
        # rewrite reseeds the clip shuffle: the same clips come in another order (the
        # same weights and batches give the same loss: keras_mirrored_matches_one_device
        # below), so its first epoch agrees with one device's only as two orders do.
        self.assertAllClose(histories["mirrored"]["loss"][0], histories["default"]["loss"][0],
                            rtol=0.1)

    def run_two_workers(self, flags: list[str]) -> str:
        """Runs ``python -m kws.train`` as worker 0 (the chief) and worker 1 on loopback;
        returns the chief's log after checking that worker 1 wrote nothing."""
        cluster = {"worker": [f"127.0.0.1:{port}" for port in fixtures.free_ports(2)]}
        workers = []
        for index in range(2):
            worker_flags = [*flags[:-1], f"--output_dir={self.root / 'worker1'}"] \
                if index else flags
            workers.append(fixtures.start([sys.executable, "-m", "kws.train", *worker_flags],
                                 TF_CONFIG=json.dumps({"cluster": cluster, "task": {
                                     "type": "worker", "index": index}})))
        chief_log, worker_log = self.finish(workers)
        self.assertIn("Not the chief", worker_log)
        self.assertIn("Done; the chief wrote the run.", worker_log)
        self.assertFalse((self.root / "worker1").exists())
        return chief_log

    def finish(self, processes: list[subprocess.Popen]) -> list[str]:
        """Waits for every process and checks that each exited 0; their logs."""
        logs = fixtures.wait_all(processes, self.TIMEOUT_S)
        for process, log in zip(processes, logs, strict=True):
            self.assertEqual(process.returncode, 0, log[-2000:])
        return logs


class StrategyTest(tf.test.TestCase, parameterized.TestCase):
    def test_default_is_one_device(self):
        strategy = make_strategy("default")
        self.assertEqual(strategy.num_replicas_in_sync, 1)
        self.assertIn("GRU: generic kernel (cuDNN needs a GPU)", describe(strategy))
        self.assertTrue(is_chief(strategy))

    @parameterized.parameters(
        (None, "needs TF_CONFIG set on every worker"),
        ("{not json", "is not a cluster with this task in it"),
        ('{"cluster": {"worker": ["h:1"]}}', "KeyError: 'task'"),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 3}}',
         "IndexError"),
    )
    def test_bad_tf_config_is_one_clear_error(self, text, message):
        with self.assertRaisesRegex(InputError, re.escape(message)):
            check_tf_config(text)


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


class MirroredStepTest(tf.test.TestCase):
    def test_keras_mirrored_matches_one_device(self):
        # In a fresh process with two logical CPUs: the same initial weights and the same
        # global batches give the same losses and weights under MirroredStrategy.
        script = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import json, keras, numpy as np
from kws.models import build_model
from kws.data.prepared import PrepareConfig, prepare
from kws.recipe import Recipe
rng = np.random.default_rng(0)
x, y = rng.standard_normal((32, 20, 40)).astype("float32"), np.arange(32) % 3
out = {}
for name, strategy in (("one", tf.distribute.get_strategy()),
                       ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model("gru", 3, (20, 40))  # the study's layers, 20 frames
        model.compile(optimizer=Recipe().optimizer(2, 2), loss=Recipe().loss())
    history = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=2,
                        verbose=0, shuffle=False)
    out[name] = {"loss": history.history["loss"],
                 "weights": float(sum(np.abs(w).sum() for w in model.get_weights()))}
print(json.dumps(out))
"""
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                timeout=300, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        out = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertAllClose(out["mirrored"]["loss"], out["one"]["loss"], rtol=1e-5)
        self.assertAllClose(out["mirrored"]["weights"], out["one"]["weights"], rtol=1e-5)


class LossScaleTest(tf.test.TestCase):
    """The multi-worker loop's loss-scale path (``kws.collective``), on one device."""

    def fitted_weights(self, precision: str) -> tuple[list[np.ndarray], list[np.ndarray],
                                                      keras.Model]:
        """Weights before and after one step of ``collective.fit``, and the model."""
        keras.mixed_precision.set_global_policy(precision)
        try:
            keras.utils.set_random_seed(0)
            model = build_model("fc", 3, (4, 5))
            initial = [np.asarray(w, np.float32) for w in model.get_weights()]
            optimizer = keras.optimizers.SGD(0.5)
            if precision == "mixed_float16":  # as Keras' compile would wrap it, but with a
                # first scale that cannot overflow float16 and skip the one step
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=128)
            model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
            rng = np.random.default_rng(0)
            data = tf.data.Dataset.from_tensor_slices(
                (rng.standard_normal((8, 4, 5)).astype("float32"), np.arange(8) % 3)).batch(8)
            collective.fit(model, data, epochs=1, callbacks=[],
                           strategy=tf.distribute.get_strategy(), global_batch_size=8,
                           per_clip_loss=Recipe(label_smoothing=0.0).loss(reduction=None))
            return initial, [np.asarray(w, np.float32) for w in model.get_weights()], model
        finally:
            keras.mixed_precision.set_global_policy("float32")

    def test_mixed_float16_steps_like_float32(self):
        before, single, _ = self.fitted_weights("float32")
        scale_loss = keras.optimizers.LossScaleOptimizer.scale_loss
        with mock.patch.object(keras.optimizers.LossScaleOptimizer, "scale_loss",
                               autospec=True, side_effect=scale_loss) as scaled:
            same_start, half, model = self.fitted_weights("mixed_float16")
        scaled.assert_called()  # the loop scales the loss before taking gradients
        self.assertAllClose(same_start, before)
        self.assertEqual(float(model.optimizer.dynamic_scale), 128.0)  # the step was taken
        # One SGD step of the loss times 128: the same update as float32 (the scale divided
        # out again), not 128 times larger, up to float16's precision.
        for w16, w32, w0 in zip(half, single, before, strict=True):
            self.assertAllClose(w16 - w0, w32 - w0, atol=2e-3, rtol=2e-2)
        largest = max(np.abs(w - w0).max() for w, w0 in zip(single, before, strict=True))
        self.assertGreater(largest, 1e-2)


class MixedPrecisionRunTest(tf.test.TestCase):
    def test_a_mixed_bfloat16_run_trains_saves_exports_and_reports(self):
        root = Path(self.create_tempdir().full_path)
        words = fixtures.write_word_folder(root / "words", {"yes": 300.0, "no": 700.0},
                                           [f"spk{i:02d}" for i in range(20)], takes=2)
        result = subprocess.run(
            [sys.executable, "-m", "kws.train", f"--data_dir={words}", "--models=gru",
             "--epochs=1", "--batch_size=16", "--silence_percentage=0",
             "--mixed_precision=mixed_bfloat16", f"--output_dir={root / 'run'}"],
            capture_output=True, text=True, timeout=600, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("mixed_bfloat16", result.stderr)
        report = json.loads((root / "run" / "report.json").read_text())
        self.assertEqual(report["config"]["mixed_precision"], "mixed_bfloat16")
        self.assertEqual(report["models"]["gru"]["params"], build_model("gru", 2).count_params())
        model = keras.saving.load_model(root / "run" / "gru.keras", compile=False)
        self.assertEqual(model.layers[0].compute_dtype, "bfloat16")
        manifest = json.loads((root / "run" / "manifest.json").read_text())
        # The export computes in float32 whatever trained: a float32 file, int8 files.
        self.assertEqual(manifest["files"]["gru_float32.tflite"]["inputs"]["features"]["dtype"],
                         "float32")
        self.assertEqual(manifest["files"]["gru_int8.tflite"]["inputs"]["features"]["dtype"],
                         "int8")


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

    def test_a_folder_and_prepared_records_in_rounds(self):
        root = Path(self.create_tempdir().full_path)
        words = fixtures.write_word_folder(root / "words", {"yes": 300.0, "no": 500.0},
                                           [f"spk{i:02d}" for i in range(20)], takes=2)
        prepare(PrepareConfig(out=root / "prepared", data_dir=words,
                              silence_percentage=0.0, unknown_percentage=0.0))
        figures = self.run_tool(f"--data_dir={words}", f"--prepared_dir={root / 'prepared'}",
                                "--rounds=2")
        self.assertEqual(figures["backend"], "tensorflow")
        self.assertEqual(figures["data"], str(root / "prepared"))  # it wins over --data_dir
        for key in ("wav_folder_clips_per_second", "prepared_clips_per_second"):
            self.assertGreater(figures[key], 0)
        self.assertAllClose(figures["prepared_over_wav_folder"],
                            figures["prepared_clips_per_second"] /
                            figures["wav_folder_clips_per_second"])
        # Each figure is the median of its rounds (of two: their mean).
        self.assertLen(figures["rounds"], 2)
        self.assertAllClose(figures["pipeline_clips_per_second"],
                            np.mean([r["pipeline_clips_per_second"] for r in figures["rounds"]]))
        fc = figures["models"]["fc"]
        for key in ("step_clips_per_second", "fit_clips_per_second", "pipeline_over_step"):
            self.assertAllClose(fc[key], np.mean([r["models"]["fc"][key]
                                                  for r in figures["rounds"]]))

    def test_features_in_the_train_step(self):
        figures = self.run_tool("--features_on=accelerator")
        self.assertEqual(figures["features_on"], "accelerator")
        self.assertGreater(figures["models"]["fc"]["fit_clips_per_second"], 0)

    def test_jax_backend_trains_the_same_models(self):
        if importlib.util.find_spec("jax") is None:
            self.skipTest("JAX is not installed (pip install jax to run the models on it)")
        figures = self.run_tool("--backend=jax")
        self.assertEqual(figures["backend"], "jax")
        self.assertNotIn("pipeline_clips_per_second", figures)
        self.assertGreater(figures["models"]["fc"]["step_clips_per_second"], 0)


if __name__ == "__main__":
    tf.test.main()
