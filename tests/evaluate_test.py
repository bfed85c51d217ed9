"""python -m kws.evaluate on labelled folders, with the model's own front end and labels."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from kws.data.split import SplitSpec
from kws.errors import InputError
from kws.evaluate import class_metrics, evaluate
from kws.run import TrainConfig
from kws.training import train
from tests import fixtures

WORDS = {"yes": 300.0, "no": 700.0}


class ClassMetricsTest(tf.test.TestCase):
    def test_precision_and_recall(self):
        matrix = np.array([[3, 1], [0, 0]])
        metrics = class_metrics(matrix, ("a", "b"))
        self.assertEqual(metrics["a"], {"clips": 4, "precision": 1.0, "recall": 0.75})
        self.assertEqual(metrics["b"], {"clips": 0, "precision": 0.0, "recall": None})


class EvaluateTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = Path(tempfile.mkdtemp(dir=tf.compat.v1.test.get_temp_dir()))
        speakers = [f"spk{i:02d}" for i in range(20)]
        cls.data_dir = fixtures.write_word_folder(root / "words", WORDS, speakers, takes=2)
        cls.run_dir = root / "run"
        train(TrainConfig(output_dir=cls.run_dir, data_dir=cls.data_dir, models=("fc",),
                          wanted_words=tuple(WORDS),
                          epochs=3, batch_size=16, verbose=0, silence_percentage=0.0))
        cls.model = cls.run_dir / "fc.keras"
        # A model with an _unknown_ class, trained with a third word as the other words.
        cls.unknown_data = fixtures.write_word_folder(root / "three", {**WORDS, "maybe": 500.0},
                                                      speakers, takes=2)
        train(TrainConfig(output_dir=root / "unknown-run", data_dir=cls.unknown_data,
                          models=("fc",), wanted_words=tuple(WORDS), epochs=3, batch_size=16,
                          verbose=0, silence_percentage=0.0, unknown_percentage=50.0))
        cls.unknown_model = root / "unknown-run" / "fc.keras"

    def test_reports_accuracy_classes_and_confusion(self):
        out = Path(self.create_tempdir().full_path) / "eval"
        results = evaluate(self.model, self.data_dir, out)
        self.assertEqual(results["labels"], ["yes", "no"])  # the model's order, not sorted
        self.assertEqual(results["clips"], 80)
        self.assertEqual(np.sum(results["confusion_matrix"]), 80)
        self.assertEqual(results["classes"]["yes"]["clips"], 40)
        self.assertGreater(results["accuracy"], 0.9)  # two distinct tones
        self.assertIsNone(results["false_keyword_rate"])  # no _unknown_ or _silence_ clips
        self.assertEqual(json.loads((out / "evaluation.json").read_text()), results)
        self.assertIn("| yes | 40 |", (out / "evaluation.md").read_text())
        self.assertTrue((out / "confusion.png").is_file())

    def test_labels_the_model_does_not_know(self):
        other = Path(self.create_tempdir().full_path)
        shutil.copytree(self.data_dir, other, dirs_exist_ok=True)
        fixtures.write_word_folder(other, {"maybe": 500.0}, ["spk00"], takes=1)
        with self.assertRaisesRegex(InputError, f"--data_dir={other} has labels the model does "
                                                r"not know: maybe \(model labels: yes, no, no "
                                                r"_unknown_ class to count them in\); to "
                                                "evaluate only its words: --words=yes,no$"):
            evaluate(self.model, other, other / "eval")
        results = evaluate(self.model, other, other / "eval", words=("no", "yes"))
        self.assertEqual(results["clips"], 80)  # the maybe folder is left out
        self.assertEqual(results["words"], ["no", "yes"])
        self.assertIn("Only the folders no, yes.", (other / "eval" / "evaluation.md").read_text())
        with self.assertRaisesRegex(InputError, f"--words=yes,later: no clips of later in "
                                                f"{other} \\(it has: maybe, no, yes\\)"):
            evaluate(self.model, other, other / "eval", words=("yes", "later"))

    def test_other_words_count_as_unknown(self):
        other = Path(self.create_tempdir().full_path)
        shutil.copytree(self.unknown_data, other, dirs_exist_ok=True)
        fixtures.write_word_folder(other, {"later": 900.0}, ["spk00", "spk01"], takes=1)
        results = evaluate(self.unknown_model, other, other / "eval")
        self.assertEqual(results["labels"], ["_unknown_", "yes", "no"])
        self.assertEqual(results["counted_as_unknown"], ["later", "maybe"])
        self.assertEqual(results["classes"]["_unknown_"]["clips"], 40 + 2)
        self.assertEqual(results["clips"], 122)
        matrix = np.array(results["confusion_matrix"])
        self.assertAllClose(results["false_keyword_rate"], matrix[0, 1:].sum() / 42)
        self.assertIn("Counted as _unknown_: later, maybe.", (other / "eval" /
                                                              "evaluation.md").read_text())

    def test_some_of_the_labels(self):
        other = Path(self.create_tempdir().full_path)
        shutil.copytree(self.data_dir / "yes", other / "yes")
        results = evaluate(self.model, other, other / "eval")
        self.assertEqual(results["clips"], 40)
        self.assertEqual(results["classes"]["no"]["clips"], 0)
        self.assertIsNone(results["classes"]["no"]["recall"])
        self.assertEqual(results["accuracy"], results["classes"]["yes"]["recall"])

    def test_one_split(self):
        results = evaluate(self.model, self.data_dir,
                           Path(self.create_tempdir().full_path), split="testing")
        in_test = [speaker for speaker in (f"spk{i:02d}" for i in range(20))
                   if SplitSpec().assign(speaker) == "testing"]
        self.assertNotEmpty(in_test)
        self.assertEqual(results["clips"], 4 * len(in_test))  # 2 words x 2 takes each
        self.assertEqual(results["split"], "testing")

    def test_no_label_of_the_model(self):
        empty = Path(self.create_tempdir().full_path)
        with self.assertRaisesRegex(InputError, "has no clips of any of the model's labels"):
            evaluate(self.unknown_model, empty, empty / "eval")

    def test_command_line(self):
        out = Path(self.create_tempdir().full_path)
        result = subprocess.run(
            [sys.executable, "-m", "kws.evaluate", f"--model={self.model}",
             f"--data_dir={self.data_dir}", f"--output_dir={out}"],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("| class | clips | precision | recall |", result.stdout)
        bad = subprocess.run([sys.executable, "-m", "kws.evaluate", f"--model={out}/none.keras",
                              f"--data_dir={self.data_dir}"],
                             capture_output=True, text=True, timeout=300)
        self.assertNotEqual(bad.returncode, 0)
        self.assertEqual(bad.stderr.strip().splitlines()[-1],
                         f"kws.evaluate: error: --model={out}/none.keras: no such file")


if __name__ == "__main__":
    tf.test.main()
