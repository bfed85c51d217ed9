"""kws.micro: the C arrays compile and hold the model, the arena is the smallest that runs,
and TensorFlow Lite Micro decides as LiteRT does on real clips."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws import benchmark_tflite, export, micro
from tests.fixtures import MINI_SPEECH_COMMANDS, MINI_SPEECH_COMMANDS_MISSING

EXPORT = Path(__file__).resolve().parents[1] / "export"
MANIFEST = json.loads((EXPORT / export.MANIFEST).read_text())
COMPILER = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")

MAIN = """
#include <cstdio>
#include "{stem}.h"

int main() {{
  unsigned long sum = 0;
  for (unsigned int i = 0; i < g_{stem}_model_len; ++i) sum += g_{stem}_model[i];
  std::printf("%u %lu %u %d %d\\n", g_{stem}_model_len, sum, k{camel}ArenaBytes,
              k{camel}OpCount,
              static_cast<int>(reinterpret_cast<unsigned long>(g_{stem}_model) % 16));
  return 0;
}}
"""


class CArrayTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(export.STREAM_INT8, export.WINDOW_INT8)
    def test_the_array_holds_the_model_and_compiles(self, name):
        flatbuffer = (EXPORT / name).read_bytes()
        header, source = micro.c_files(flatbuffer, name, arena=12345)
        stem = micro.c_identifier(name)
        array = bytes(int(value, 16) for value in re.findall(r"0x([0-9a-f]{2})", source))
        self.assertEqual(array, flatbuffer)
        ops = {op for subgraph in benchmark_tflite.model_ops(flatbuffer) for op in subgraph}
        self.assertIn(f"OpCount = {len(ops)};", header)
        self.assertIn("resolver.AddFullyConnected()", header)
        if COMPILER is None:
            self.skipTest("no C++ compiler on this machine (c++, g++ or clang++)")
        folder = Path(self.create_tempdir().full_path)
        (folder / f"{stem}.h").write_text(header)
        (folder / f"{stem}.cc").write_text(source)
        camel = "".join(part.capitalize() for part in stem.split("_"))
        (folder / "main.cc").write_text(MAIN.format(stem=stem, camel=camel))
        build = subprocess.run([COMPILER, "-std=c++17", "-Wall", "-Werror", "-o",
                                str(folder / "main"), str(folder / "main.cc"),
                                str(folder / f"{stem}.cc")], capture_output=True, text=True,
                               timeout=300)
        self.assertEqual(build.returncode, 0, build.stderr)
        run = subprocess.run([str(folder / "main")], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.stdout.split(), [str(len(flatbuffer)), str(sum(flatbuffer)),
                                              "12345", str(len(ops)), "0"])


class ArenaTest(tf.test.TestCase):
    def test_the_smallest_arena_that_runs(self):
        flatbuffer = (EXPORT / export.STREAM_INT8).read_bytes()
        arena = micro.arena_bytes(flatbuffer)
        self.assertEqual(arena % micro.ARENA_ALIGNMENT, 0)
        self.assertBetween(arena, 1024, 64 * 1024)
        probe = "from tflite_micro import runtime; import sys; runtime.Interpreter.from_bytes(" \
            "open(sys.argv[1], 'rb').read(), arena_size=int(sys.argv[2])).invoke()"
        for size, runs in ((arena, True), (arena - micro.ARENA_ALIGNMENT, False)):
            result = subprocess.run([sys.executable, "-c", probe,
                                     str(EXPORT / export.STREAM_INT8), str(size)],
                                    capture_output=True, timeout=120)
            self.assertEqual(result.returncode == 0, runs, size)

    def test_the_manifest_records_arena_and_flash(self):
        for name in export.MICRO_FILES:
            entry = MANIFEST["files"][name]["micro"]
            self.assertEqual(entry["flash_bytes"], MANIFEST["files"][name]["bytes"])
            self.assertEqual(entry["arena_bytes"],
                             micro.arena_bytes((EXPORT / name).read_bytes()))
            for file_name in entry["files"]:
                self.assertTrue((EXPORT / file_name).is_file(), file_name)
            self.assertIn(f"ArenaBytes = {entry['arena_bytes']};",
                          (EXPORT / entry["files"][0]).read_text())


class MicroAgainstLiteRTTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(export.STREAM_INT8, export.WINDOW_INT8)
    def test_the_same_decisions_on_real_test_clips(self, name):
        if not MINI_SPEECH_COMMANDS.is_dir():
            self.skipTest(MINI_SPEECH_COMMANDS_MISSING)
        # A third of the test speakers' clips: TFLM's int8 kernels round differently from
        # LiteRT's, so near-ties (top two within a few hundredths) may go the other way.
        listed = (MINI_SPEECH_COMMANDS / "testing_list.txt").read_text().split()[::3]
        self.assertGreaterEqual(len(listed), 200)
        features = np.stack([benchmark_tflite.normalized_features(benchmark_tflite.fit_to_clip(
            benchmark_tflite.read_wav(MINI_SPEECH_COMMANDS / entry, 16000), 16000), MANIFEST)
            for entry in listed])
        flatbuffer = (EXPORT / name).read_bytes()
        # The streaming model runs frame by frame with the states carried, in both.
        lite = benchmark_tflite.clip_scores(benchmark_tflite.SignatureModel(flatbuffer), features)
        tflm = benchmark_tflite.clip_scores(micro.MicroModel(flatbuffer), features)
        agreement = np.mean(np.argmax(lite, -1) == np.argmax(tflm, -1))
        print(f"{name}: TFLM picks LiteRT's class on {100 * agreement:.1f} % of "
              f"{len(listed)} clips; largest score difference {np.abs(lite - tflm).max():.4f}")
        self.assertGreaterEqual(agreement, 0.99)


if __name__ == "__main__":
    tf.test.main()
