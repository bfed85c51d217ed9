"""tools/seeds.py: one recipe over several seeds, and sweeps side by side."""

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import tensorflow as tf

from tests import fixtures

TOOL = fixtures.ROOT / "tools" / "seeds.py"


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=fixtures.ROOT,
                          capture_output=True, text=True, timeout=600)


class SeedsTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = Path(tempfile.mkdtemp(dir=tf.compat.v1.test.get_temp_dir()))
        words = fixtures.write_word_folder(root / "words", {"yes": 300.0, "no": 700.0},
                                           [f"spk{i:02d}" for i in range(20)], takes=2)
        cls.words = words
        cls.sweep = root / "sweep"
        cls.train_flags = [f"--data_dir={words}", "--models=fc", "--epochs=1",
                           "--batch_size=16", "--noexport", "--silence_percentage=0"]
        cls.first = run_tool(f"--out={cls.sweep}", "--seeds=0,1", "--name=tiny", "--",
                             *cls.train_flags)

    def test_every_seed_trains_and_the_summary_holds_their_figures(self):
        self.assertEqual(self.first.returncode, 0, self.first.stderr[-3000:])
        summary = json.loads((self.sweep / "seeds.json").read_text())
        self.assertEqual(summary["seeds"], [0, 1])
        self.assertEqual(summary["train_flags"], self.train_flags)
        self.assertRegex(summary["commit"], r"^[0-9a-f]{40}(-dirty)?$")  # a git checkout
        accuracies = [json.loads((self.sweep / f"seed-{seed}" / "report.json").read_text())
                      ["models"]["fc"]["test_accuracy"] for seed in (0, 1)]
        figure = summary["models"]["fc"]["test_accuracy"]
        self.assertEqual(figure["values"], accuracies)
        self.assertAllClose(figure["mean"], statistics.fmean(accuracies))
        self.assertAllClose(figure["std"], statistics.stdev(accuracies))
        self.assertIn("| tiny | 2 |", (self.sweep / "seeds.md").read_text())

    def test_finished_seeds_are_read_back_evaluated_and_lined_up(self):
        # Read back, and now also evaluated on a folder (here the training folder itself).
        again = run_tool(f"--out={self.sweep}", "--seeds=0,1", "--name=tiny",
                         f"--evaluate={self.words}", "--evaluate_words=no,yes", "--",
                         *self.train_flags)
        self.assertEqual(again.returncode, 0, again.stderr[-3000:])
        self.assertEqual(again.stdout.count("finished earlier"), 2)
        evaluation = json.loads((self.sweep / "seeds.json").read_text())["models"]["fc"][
            "evaluation"]
        folder = f"evaluate-{self.words.name}-no-yes"  # --evaluate_words in the name
        each = [json.loads((self.sweep / f"seed-{seed}" / folder / "fc" / "evaluation.json")
                           .read_text()) for seed in (0, 1)]
        self.assertEqual([e["words"] for e in each], [["no", "yes"]] * 2)
        self.assertEqual(evaluation["recall"]["no"]["values"],
                         [e["classes"]["no"]["recall"] for e in each])
        self.assertEqual(evaluation["accuracy"]["values"], [e["accuracy"] for e in each])
        self.assertIn("| recall of yes |", (self.sweep / "seeds.md").read_text())
        out = Path(self.create_tempdir().full_path) / "table.json"
        table = run_tool("--table", str(self.sweep), str(self.sweep), f"--json={out}")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertEqual(table.stdout.count("| tiny | 2 |"), 2)
        self.assertLen(json.loads(out.read_text()), 2)

    def test_bad_input_is_one_line(self):
        for args, message in (
                (["--out=/tmp/x", "--seeds=0,a"], "--seeds=0,a: not a comma-separated list"),
                (["--out=/tmp/x", "--", "--seed=3"], "--seed=3: seeds.py sets --seed"),
                (["--out=/tmp/x", "--evaluate=/no/such"], "--evaluate=/no/such: no such folder"),
                (["--table", "/no/such/sweep"], "/no/such/sweep/seeds.json: no such file")):
            result = run_tool(*args)
            self.assertEqual(result.returncode, 1)
            self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
            self.assertTrue(result.stderr.startswith(f"seeds.py: error: {message}"),
                            result.stderr)


if __name__ == "__main__":
    tf.test.main()
