"""The README's table of bad inputs, row by row: one clear line, a non-zero exit, nothing
earlier lost. Rows covered elsewhere name their test in the README."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws.audio import write_wav
from kws.errors import InputError
from kws.models import load_trained_model
from tests import fixtures

ROOT = Path(__file__).resolve().parents[1]
EXPORT = ROOT / "export"
TOOL = ROOT / "tools" / "benchmark_tflite.py"


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


class KerasFileTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("random_bytes", os.urandom(2000)),
        ("empty", b""),
        ("zip_without_model", b"PK\x05\x06" + b"\x00" * 18),
    )
    def test_a_file_that_is_not_a_model(self, content):
        path = Path(self.create_tempdir().full_path) / "gru.keras"
        path.write_bytes(content)
        with self.assertRaisesRegex(InputError, f"--model={path}: not a kws model that loads "
                                                "safely"):
            load_trained_model(path)

    def test_commands_given_a_file_that_is_not_a_model(self):
        path = Path(self.create_tempdir().full_path) / "gru.keras"
        path.write_bytes(os.urandom(2000))
        for command in (["-m", "kws.export"], ["-m", "kws.evaluate", f"--data_dir={path.parent}"]):
            result = run(*command, f"--model={path}")
            self.assertNotEqual(result.returncode, 0)
            self.assertIn(f"error: --model={path}: not a kws model", last_line(result))
            self.assertNotIn("Traceback", result.stderr)

    def test_a_model_edited_to_run_code_is_refused_unrun(self):
        folder = Path(self.create_tempdir().full_path)
        marker = folder / "code-ran"

        # A lambda is saved as bytecode: what an attacker would edit into a model file.
        payload = eval(f"lambda x: (open({str(marker)!r}, 'w').write('ran'), x)[1]")  # noqa: S307
        model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(payload)])
        model.save(folder / "gru.keras")
        marker.unlink()
        with self.assertRaisesRegex(InputError, r"loads safely \(it holds Python code"):
            load_trained_model(folder / "gru.keras")
        self.assertFalse(marker.exists())


class TfliteFileTest(tf.test.TestCase):
    def test_random_bytes(self):
        path = Path(self.create_tempdir().full_path) / "model.tflite"
        path.write_bytes(np.random.default_rng(0).bytes(5000))
        result = run(str(TOOL), str(path))
        self.assertEqual(result.returncode, 1)
        self.assertRegex(last_line(result), f"benchmark_tflite: error: {path}: "
                                            "(not a TFLite model|truncated or damaged)")

    def test_manifest_whose_hashes_do_not_match(self):
        folder = Path(self.create_tempdir().full_path)
        shutil.copy(EXPORT / "gru_int8.tflite", folder)
        manifest = json.loads((EXPORT / "manifest.json").read_text())
        for entry in manifest["files"].values():
            entry["sha256"] = hashlib.sha256(b"another export").hexdigest()
        (folder / "manifest.json").write_text(json.dumps(manifest))
        write_wav(folder / "yes.wav", np.zeros(16000, np.float32), 16000)
        for label in manifest["labels"]:
            (folder / "clips" / label).mkdir(parents=True)
            shutil.copy(folder / "yes.wav", folder / "clips" / label / "a_nohash_0.wav")
        result = run(str(TOOL), str(folder / "gru_int8.tflite"), "--num_runs=1",
                     f"--data_dir={folder / 'clips'}")
        self.assertEqual(result.returncode, 1)
        self.assertRegex(last_line(result), "--manifest=.*manifest.json: the model's sha256 .* "
                                            "matches none of its files")

    def test_wav_header_that_lies_about_its_size(self):
        folder = Path(self.create_tempdir().full_path)
        for label in json.loads((EXPORT / "manifest.json").read_text())["labels"]:
            (folder / label).mkdir()
            (folder / label / "a_nohash_0.wav").write_bytes(
                fixtures.wav_bytes(b"\x00\x01" * 1000, 16000, data_size=32000))
        result = run(str(TOOL), str(EXPORT / "gru_int8.tflite"), "--num_runs=1",
                     f"--data_dir={folder}")
        self.assertEqual(result.returncode, 1)
        self.assertIn("truncated WAV file (its header promises 32,000 bytes", last_line(result))


class OutputFolderTest(tf.test.TestCase):
    def test_train_into_a_read_only_folder(self):
        folder = fixtures.read_only_folder(Path(self.create_tempdir().full_path))
        if folder is None:
            self.skipTest("no read-only folder here: this user may write everywhere")
        result = run("-m", "kws.train", f"--output_dir={folder / 'run'}", "--epochs=1",
                     "--clips_per_word=30", "--models=fc",
                     f"--cache_dir={self.create_tempdir().full_path}")
        self.assertNotEqual(result.returncode, 0)
        self.assertRegex(last_line(result), f"kws.train: error: --output_dir={folder / 'run'}: "
                                            "cannot write there")
        self.assertNotIn("Traceback", result.stderr)
        self.assertNotIn("Synthesising", result.stderr)  # refused before any data is made

    def test_benchmark_json_into_a_read_only_folder(self):
        folder = fixtures.read_only_folder(Path(self.create_tempdir().full_path))
        if folder is None:
            self.skipTest("no read-only folder here: this user may write everywhere")
        result = run(str(TOOL), str(EXPORT / "gru_int8.tflite"), "--num_runs=1",
                     f"--json={folder / 'out.json'}")
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"--json={folder / 'out.json'}: cannot write it", last_line(result))


# kws.train with every write of fc's finished-model record failing as a full disk does.
FULL_DISK_TRAIN = """
import errno, sys
from absl import app
from kws import fileio, train
real_write = fileio.write_text_atomic
def write(path, text):
    if path.name == "fc.result.json":
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    return real_write(path, text)
fileio.write_text_atomic = write
sys.argv[0] = "kws.train"
app.run(train.main)
"""


class DiskFullTest(tf.test.TestCase):
    def test_one_line_and_completed_epochs_are_kept(self):
        root = Path(self.create_tempdir().full_path)
        flags = [f"--output_dir={root / 'run'}", "--epochs=2", "--clips_per_word=20",
                 "--models=fc", "--batch_size=16", "--noexport", f"--cache_dir={root}",
                 "--room_frequency=0"]  # no room bank to simulate: not what this checks
        full = run("-c", FULL_DISK_TRAIN, *flags)
        self.assertEqual(full.returncode, 1)
        self.assertEqual(last_line(full), f"kws.train: error: {root / 'run'}/checkpoints/"
                         "fc.result.json: No space left on device; completed epochs are kept, "
                         "rerun the same flags to resume")
        self.assertNotIn("Traceback", full.stderr)
        again = run("-m", "kws.train", *flags)
        self.assertEqual(again.returncode, 0, again.stderr[-2000:])
        self.assertNotIn("Training fc", again.stderr)  # both epochs were kept: none again
        history = (root / "run" / "checkpoints" / "fc.history.csv").read_text().splitlines()
        self.assertLen(history, 3)  # the header and two epochs, each trained once
        report = json.loads((root / "run" / "report.json").read_text())
        self.assertEqual(report["models"]["fc"]["epochs"], 2)


if __name__ == "__main__":
    tf.test.main()
