"""tools/benchmark_tflite.py: its report, its bad-input errors, its front end, its imports."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tensorflow.lite.python import schema_py_generated

from kws import benchmark_tflite
from kws.audio import write_wav

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "benchmark_tflite.py"
EXPORT = ROOT / "export"

# Runs the tool with everything but numpy and LiteRT made unimportable, as on a device.
ISOLATED = """
import runpy, sys
for name in ("tensorflow", "keras", "scipy", "absl", "kws", "matplotlib", "tflite_runtime"):
    sys.modules[name] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ISOLATED, str(TOOL), *args],
                          capture_output=True, text=True, timeout=300)


class ModelFileTest(tf.test.TestCase):
    def test_builtin_op_names_match_the_schema(self):
        for code, name in benchmark_tflite.BUILTIN_OPS.items():
            self.assertEqual(getattr(schema_py_generated.BuiltinOperator, name), code, name)

    def test_ops_of_every_subgraph(self):
        ops = benchmark_tflite.model_ops((EXPORT / "gru_int8.tflite").read_bytes())
        self.assertLen(ops, 3)  # main, loop condition, loop body
        self.assertIn("WHILE", ops[0])
        self.assertEqual(ops[1], ["LESS"])
        self.assertContainsSubset({"FULLY_CONNECTED", "LOGISTIC", "TANH", "MUL"}, set(ops[2]))


class CommandTest(tf.test.TestCase, parameterized.TestCase):
    def test_window_report_and_json(self):
        out = Path(self.create_tempdir().full_path) / "result.json"
        result = run_tool(str(EXPORT / "gru_int8.tflite"), "--num_runs=5", "--warmup_runs=1",
                          f"--json={out}")
        self.assertEqual(result.returncode, 0, result.stderr)
        for text in ("latency over 5 runs", "p99", "peak memory", "tensor dtypes:",
                     "features [1, 101, 40] int8", "WHILE"):
            self.assertIn(text, result.stdout)
        figures = json.loads(out.read_text())
        self.assertEqual(figures["runtime"], "ai_edge_litert")
        self.assertEqual(figures["size_bytes"], (EXPORT / "gru_int8.tflite").stat().st_size)
        self.assertGreater(figures["avg_us"], 0)
        self.assertIn("int8", figures["tensor_dtypes"])

    def test_threads_and_builtin_kernels(self):
        out = Path(self.create_tempdir().full_path) / "result.json"
        result = run_tool(str(EXPORT / "gru_int8.tflite"), "--num_runs=3", "--warmup_runs=0",
                          "--num_threads=2", "--use_xnnpack=false", f"--json={out}")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("2 thread(s), XNNPACK off", result.stdout)
        figures = json.loads(out.read_text())
        self.assertEqual((figures["num_threads"], figures["use_xnnpack"]), (2, False))
        bad = run_tool(str(EXPORT / "gru_int8.tflite"), "--use_xnnpack=maybe")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("must be true or false, got 'maybe'", bad.stderr)

    def test_stream_carries_state(self):
        result = run_tool(str(EXPORT / "gru_int8_stream.tflite"), "--stream", "--num_runs=20")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("stream (one frame)", result.stdout)
        self.assertIn("state_0 [1, 64] int8", result.stdout)
        # What is timed: each invoke starts from the states the one before it left.
        content = (EXPORT / "gru_int8_stream.tflite").read_bytes()
        model = benchmark_tflite.SignatureModel(content)
        interpreter = benchmark_tflite.make_interpreter(content)
        invoke = benchmark_tflite.timed_invoke(interpreter, model)
        states = {name: detail["index"] for name, detail in model.input_details.items()
                  if name.startswith("state_")}
        self.assertLen(states, 2)
        for _ in range(3):
            invoke()
            for name, index in states.items():
                self.assertAllEqual(interpreter.get_tensor(index), interpreter.get_tensor(
                    model.output_details[f"new_{name}"]["index"]))
        self.assertNotAllEqual(interpreter.get_tensor(states["state_1"]), 0)

    def test_accuracy_on_a_folder_with_the_manifest(self):
        data_dir = Path(self.create_tempdir().full_path)
        rng = np.random.default_rng(0)
        for label in ("yes", "no", "up"):
            (data_dir / label).mkdir()
            write_wav(data_dir / label / "a_nohash_0.wav",
                      rng.standard_normal(12000).astype(np.float32) * 0.05, 16000)
        result = run_tool(str(EXPORT / "gru_int8.tflite"), "--num_runs=2",
                          f"--data_dir={data_dir}")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"accuracy: \d+\.\d\d % on 3 clips")
        self.assertRegex(result.stdout, r"recall: .*yes \d+\.\d\d % of 1")

    def test_other_words_count_as_unknown_and_lists_choose_clips(self):
        data_dir = Path(self.create_tempdir().full_path)
        for folder in ("yes", "maybe", "later", "_background_noise_"):
            (data_dir / folder).mkdir()
            for take in range(2):
                (data_dir / folder / f"a_nohash_{take}.wav").write_bytes(b"")
        labels = ["_silence_", "_unknown_", "yes", "no"]
        clips = benchmark_tflite.label_folders(data_dir, labels)
        self.assertEqual(sorted(clips), ["_unknown_", "yes"])  # no "no" clips: fine
        self.assertEqual([path.parent.name for path in clips["_unknown_"]],
                         ["later", "later", "maybe", "maybe"])
        listed = benchmark_tflite.label_folders(data_dir, labels, {"yes/a_nohash_1.wav"})
        self.assertEqual({label: [p.name for p in paths] for label, paths in listed.items()},
                         {"yes": ["a_nohash_1.wav"]})
        with self.assertRaisesRegex(benchmark_tflite.BenchmarkError,
                                    "has labels the model does not know: later, maybe "
                                    r"\(model labels: yes, no, no _unknown_ class"):
            benchmark_tflite.label_folders(data_dir, ["yes", "no"])
        with self.assertRaisesRegex(benchmark_tflite.BenchmarkError, "no .wav clips of any"):
            benchmark_tflite.label_folders(data_dir, labels, {"up/b.wav"})

    def test_recall_per_class(self):
        recall = benchmark_tflite.recall_per_class(np.array([0, 0, 2, 2]),
                                                   np.array([0, 1, 2, 2]), ["a", "b", "c"])
        self.assertEqual(recall, {"a": {"clips": 2, "recall": 0.5},
                                  "c": {"clips": 2, "recall": 1.0}})

    @parameterized.named_parameters(
        ("missing", None, "cannot read it"),
        ("text", b"hello, not a model", "not a TFLite model"),
        ("empty", b"", "not a TFLite model"),
        ("truncated", "truncate", "truncated or damaged TFLite model"),
    )
    def test_bad_files_end_in_one_line(self, content, message):
        path = Path(self.create_tempdir().full_path) / "model.tflite"
        if content == "truncate":
            content = (EXPORT / "gru_int8.tflite").read_bytes()[:3000]
        if content is not None:
            path.write_bytes(content)
        result = run_tool(str(path))
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.strip().count("\n"), 0, result.stderr)
        self.assertIn(f"benchmark_tflite: error: {path}: {message}", result.stderr)

    def test_stream_flag_needs_a_streaming_model(self):
        result = run_tool(str(EXPORT / "gru_int8.tflite"), "--stream")
        self.assertEqual(result.returncode, 1)
        self.assertIn("--stream needs a streaming model", result.stderr)

    def test_wrong_input_shape_is_named(self):
        model = benchmark_tflite.SignatureModel(EXPORT / "gru_int8.tflite")
        with self.assertRaisesRegex(benchmark_tflite.BenchmarkError,
                                    r"input 'features' has shape \(1, 99, 40\)"):
            model(features=np.zeros((1, 99, 40), np.float32))


if __name__ == "__main__":
    tf.test.main()
