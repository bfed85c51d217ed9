"""TFLite conversion, streaming against window on the device runtime, and the reference set."""

import dataclasses
import hashlib
import json
import subprocess
import sys
import unittest
from pathlib import Path
from unittest import mock

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws import benchmark_tflite, export
from kws.config import DEFAULT_CACHE_DIR, FrontEnd
from kws.data.pipeline import features_array
from kws.run import config_from_report, load_data
from kws.streaming import DenseWeights, GRUClassifier, GRUWeights
from tests import fixtures
from tests.streaming_test import small_gru_model

REFERENCE = Path(__file__).resolve().parents[1] / "export"


class ConvertTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.classifier = GRUClassifier.from_keras(small_gru_model(frames=20, bins=5))
        cls.features = np.random.default_rng(0).standard_normal((6, 20, 5)).astype("float32")

    def test_float_streaming_equals_window(self):
        window = benchmark_tflite.SignatureModel(
            export.convert(export.window_function(self.classifier, (20, 5))))
        stream = benchmark_tflite.SignatureModel(
            export.convert(export.stream_function(self.classifier, 5)))
        window_scores = benchmark_tflite.window_scores(window, self.features)
        self.assertAllClose(window_scores, self.classifier.window(self.features), atol=1e-5)
        for clip, expected in zip(self.features, window_scores, strict=True):
            self.assertLessEqual(
                np.abs(benchmark_tflite.stream_scores(stream, clip)[-1] - expected).max(), 1e-4)

    def test_int8_models_are_integer_end_to_end(self):
        calibration = export.stream_calibration_samples(self.classifier, self.features)
        self.assertLen(calibration, 6 * 5)  # every 4th of 20 frames, for 6 clips
        flatbuffer = export.convert(export.stream_function(self.classifier, 5),
                                    lambda: iter(calibration))
        model = benchmark_tflite.SignatureModel(flatbuffer)
        for detail in [*model.input_details.values(), *model.output_details.values()]:
            self.assertEqual(detail["dtype"], np.int8)
        self.assertEqual(sorted(model.output_details), ["new_state_0", "new_state_1", "scores"])

    def test_the_int8_file_most_faithful_on_validation_is_kept(self):
        # A model whose classes vary over the clips (seed 2), so calibration can move them.
        classifier = GRUClassifier.from_keras(small_gru_model(frames=20, bins=5, seed=2))
        features = np.random.default_rng(0).standard_normal((32, 20, 5)).astype("float32")
        window = export.window_function(classifier, (20, 5))
        float_scores = classifier.window(features).numpy()
        draw = export.window_calibration_samples
        # Calibrated on features 50 times too large or too small, the int8 input scale
        # crushes or clips the real ones: both files lose to a calibration on them.
        flatbuffer, index, agreement = export.most_faithful_int8(
            window, [draw(50 * features), draw(features), draw(features / 50)], features,
            float_scores)
        self.assertEqual(index, 1)
        self.assertEqual(flatbuffer, export.convert(window, draw(features)))
        int8_scores = benchmark_tflite.clip_scores(benchmark_tflite.SignatureModel(flatbuffer),
                                                   features)
        self.assertEqual(agreement, np.mean(np.argmax(int8_scores, -1)
                                            == np.argmax(float_scores, -1)))
        self.assertGreater(agreement, 0.9)

    def test_int8_streaming_holds_a_state_the_update_gate_keeps(self):
        # Input 0 opens each unit's update gate (z = sigmoid(10 - 20 x0)), input 1 drives
        # its candidate (tanh(target x1)); small weights elsewhere give every tensor a
        # range (a constant tensor has no int8 scale). Five frames of (1, 1) load the
        # state, 95 frames of (0, 0) keep it (z = 0.99995). Were z the int8 tensor, it
        # could not pass 255/256, and the unit near 1 would leak (0.99 to 0.91).
        targets = np.array([3.0, 1.0, -1.0, 0.5], np.float32)
        units = len(targets)
        rng = np.random.default_rng(0)
        kernel = rng.normal(0, 0.1, (2, 3 * units)).astype(np.float32)
        kernel[0, :units], kernel[1, 2 * units:] = -20.0, targets
        input_bias = np.zeros(3 * units, np.float32)
        input_bias[:units] = 10.0
        gru = GRUWeights(kernel, rng.normal(0, 0.1, (units, 3 * units)).astype(np.float32),
                         input_bias, np.zeros(3 * units, np.float32))
        head = DenseWeights(rng.normal(0, 1, (units, 2)).astype(np.float32),
                            np.zeros(2, np.float32), "softmax")
        classifier = GRUClassifier((gru,), (head,))
        frames = np.zeros((100, 2), np.float32)
        frames[:5] = 1.0
        flatbuffer = export.convert(
            export.stream_function(classifier, 2),
            lambda: iter(export.stream_calibration_samples(classifier, frames[None])))
        model = benchmark_tflite.SignatureModel(flatbuffer)
        states = {"int8": [model.zero_states()["state_0"]],
                  "float": [classifier.zero_states()[0]]}
        for frame in frames:
            states["int8"].append(model(frame=frame[None], state_0=states["int8"][-1])
                                  ["new_state_0"])
            states["float"].append(np.asarray(gru.step(frame[None], states["float"][-1])))
        self.assertAllGreater(np.abs(states["float"][5]), 0.4)
        self.assertAllClose(states["float"][-1], states["float"][5], atol=0.01)
        step = model.output_details["new_state_0"]["quantization"][0]
        self.assertAllClose(states["int8"][-1], states["int8"][5], atol=step)


class BalancedChoiceTest(tf.test.TestCase):
    def test_each_class_its_share_and_a_rare_class_all_it_has(self):
        labels = np.repeat([0, 1, 2], [3, 500, 40])
        chosen = export.balanced_choice(labels, 60, seed=0)
        self.assertAllEqual(np.bincount(labels[chosen]), [3, 20, 20])
        self.assertAllEqual(chosen, np.sort(chosen))
        self.assertLen(np.unique(chosen), len(chosen))

    def test_the_seed_fixes_the_draw(self):
        labels = np.arange(1000) % 4
        self.assertAllEqual(export.balanced_choice(labels, 40, 7),
                            export.balanced_choice(labels, 40, 7))
        self.assertNotAllEqual(export.balanced_choice(labels, 40, 7),
                               export.balanced_choice(labels, 40, 8))


class ReferenceSetTest(tf.test.TestCase):
    """The committed export/: hashes, and the accuracy its manifest states."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.manifest = json.loads((REFERENCE / export.MANIFEST).read_text())
        config = config_from_report({"config": cls.manifest["training"]})
        data_dir = fixtures.ROOT / config.data_dir  # relative to the project
        if not data_dir.is_dir():
            raise unittest.SkipTest(f"{data_dir} is absent (real recordings live outside the "
                                    "project; see README)")
        # The test clips alone: synthetic words join only the training split.
        config = dataclasses.replace(config, data_dir=data_dir, cache_dir=DEFAULT_CACHE_DIR,
                                     synthetic_unknown_words=0, synthetic_keyword_clips=0)
        testing = load_data(config).splits["testing"]
        cls.features = features_array(testing, FrontEnd.from_dict(cls.manifest))
        cls.labels = testing.labels

    def test_files_match_their_hashes(self):
        for name, entry in self.manifest["files"].items():
            content = (REFERENCE / name).read_bytes()
            self.assertEqual(hashlib.sha256(content).hexdigest(), entry["sha256"], name)
            self.assertLen(content, entry["bytes"])

    def test_files_classify_the_test_clips_as_stated(self):
        self.assertLen(self.labels, self.manifest["test_clips"])
        predictions = {}
        for name, entry in self.manifest["files"].items():
            model = benchmark_tflite.SignatureModel(REFERENCE / name)
            scores = benchmark_tflite.clip_scores(model, self.features)
            predictions[name] = np.argmax(scores, axis=-1)
            self.assertAlmostEqual(np.mean(predictions[name] == self.labels),
                                   entry["test_accuracy"], places=6, msg=name)
        # The two int8 files quantize the GRU states differently (the window model's loop
        # keeps them float), so a clip near a boundary may go either way: export/README
        # states the share on which they agree.
        agreement = np.mean(predictions[export.STREAM_INT8] == predictions[export.WINDOW_INT8])
        self.assertAlmostEqual(agreement, self.manifest["int8_stream_agrees_with_window"])
        self.assertGreaterEqual(agreement, 0.98)

    def test_int8_files_lose_at_most_half_a_point_against_keras(self):
        # One-sided: where int8 and float differ near the silence/unknown boundary, int8
        # may be right more often (docs/measurements/int8-calibration.md, last section).
        for name in (export.WINDOW_INT8, export.STREAM_INT8):
            self.assertGreaterEqual(self.manifest["files"][name]["test_accuracy"],
                                    self.manifest["keras_test_accuracy"] - 0.005, name)


class ReferenceRecordTest(tf.test.TestCase, parameterized.TestCase):
    """export/reference.json: its hashes are the files', and measuring the files again on
    the real clips gives its figures."""

    def test_the_record_is_what_the_files_do(self):
        tool = fixtures.load_tool("reference_export")
        record = json.loads((REFERENCE / "reference.json").read_text())
        manifest = json.loads((REFERENCE / export.MANIFEST).read_text())
        for name, entry in record["files"].items():
            self.assertEqual(entry["sha256"], manifest["files"][name]["sha256"], name)
        self.assertEqual(manifest.get("detector"), record["streams"]["recommended"])
        if not (fixtures.ROOT / tool.TRAINING_DATA).is_dir():
            self.skipTest(f"{tool.TRAINING_DATA} is absent (real recordings live outside the "
                          "project; see README)")
        self.assertEqual(tool.measure(REFERENCE, manifest), record["measured"])
        self.assertIn(" ".join(tool.TRAIN_FLAGS), record["command"])

    def test_the_markdown_is_the_records(self):
        tool = fixtures.load_tool("reference_export")
        record = json.loads((REFERENCE / "reference.json").read_text())
        self.assertEqual(tool.markdown(record), (REFERENCE / "reference.md").read_text())

    @parameterized.named_parameters(
        ("a_new_detector_replaces_the_old", {"model": "gru_int8.tflite", "threshold": 0.8}),
        ("none_recommended_takes_the_old_one_out", None))
    def test_the_manifest_gets_the_detector_chosen_on_validation(self, recommended):
        tool = fixtures.load_tool("reference_export")
        folder = Path(self.create_tempdir().full_path)
        old = {"labels": ["_silence_", "_unknown_", "yes"],
               "detector": {"model": "gru_int8_stream.tflite", "threshold": 0.5}}
        (folder / export.MANIFEST).write_text(json.dumps(old))
        splits = []

        def measured(export_dir, data_dir, output_dir, command, split="testing", **kwargs):
            splits.append(split)
            self.assertEqual(json.loads((folder / export.MANIFEST).read_text()).get("detector"),
                             recommended if split == "testing" else old["detector"])
            return {"recommended": recommended, "manifest_detector": recommended,
                    "variants": []}

        with mock.patch.object(tool.stream_eval, "stream_eval", measured):
            streams = tool.measure_streams(folder)
        self.assertEqual(splits, ["validation", "testing"])
        self.assertEqual(streams["recommended"], recommended)
        manifest = json.loads((folder / export.MANIFEST).read_text())
        self.assertEqual(manifest.get("detector"), recommended)
        self.assertEqual(manifest["labels"], old["labels"])

    def test_streams_only_without_a_record_is_one_line(self):
        tool = fixtures.load_tool("reference_export")
        if not (fixtures.ROOT / tool.TRAINING_DATA).is_dir():
            self.skipTest(f"{tool.TRAINING_DATA} is absent (real recordings live outside the "
                          "project; see README)")
        folder = self.create_tempdir().full_path
        result = subprocess.run([sys.executable, str(fixtures.ROOT / "tools" /
                                                     "reference_export.py"),
                                 "--streams_only", f"--export_dir={folder}"],
                                capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 1)
        # The last line (TensorFlow's start-up logs come before it).
        self.assertEqual(
            result.stderr.strip().splitlines()[-1],
            f"reference_export.py: error: {folder}/reference.json: cannot read the export's "
            f"record ([Errno 2] No such file or directory: '{folder}/reference.json'); make it "
            "with python tools/reference_export.py")


COMPARE_TOOL = fixtures.ROOT / "tools" / "compare_gru_exports.py"


class CompareGruExportsTest(tf.test.TestCase):
    def test_medians_of_rounds(self):
        tool = fixtures.load_tool("compare_gru_exports")
        content = (REFERENCE / export.STREAM_INT8).read_bytes()
        figures = tool.time_in_rounds({"stream": content}, rounds=3, num_runs=5,
                                      warmup_runs=1)["stream"]
        self.assertEqual(figures["bytes"], len(content))
        self.assertLen(figures["rounds"], 3)
        self.assertEqual(figures["avg_us"],
                         sorted(timing["avg_us"] for timing in figures["rounds"])[1])

    def test_a_missing_export_is_one_line(self):
        folder = self.create_tempdir().full_path
        result = subprocess.run([sys.executable, str(COMPARE_TOOL), f"--model={folder}/gru.keras",
                                 f"--export_dir={folder}"], capture_output=True, text=True,
                                timeout=120)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.strip().splitlines()[-1],
                         f"compare_gru_exports: error: {folder}/gru_float32.tflite: cannot read "
                         "it (No such file or directory)")
        self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
    tf.test.main()
