import dataclasses
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws.audio import to_int16, write_wav
from kws.config import FeatureConfig, FrontEnd
from kws.data import prepared
from kws.data.augment import NO_AUGMENTATION
from kws.data.folder import SILENCE, UNKNOWN, ExtraClasses, load_folder
from kws.data.pipeline import (
    ClipSource,
    check_data_service,
    features_and_labels,
    fit_normalization,
    memory_source,
)
from kws.data.prepared import PrepareConfig, load_prepared, prepare
from kws.data.split import SPLITS, SplitSpec
from kws.errors import InputError
from kws.run import TrainConfig
from kws.training import make_datasets, train
from tests import fixtures

SPEAKERS = [f"spk{i:02d}" for i in range(20)]
WORDS = {"yes": 300.0, "no": 500.0, "left": 700.0}
# 16-bit storage rounds each sample to the nearest 1/32768.
INT16_STEP = 1 / 32768


def read_all(source: ClipSource, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    clips, labels = zip(*[(clips.numpy(), labels.numpy())
                          for clips, labels in source.batches(13, seed)], strict=True)
    return np.concatenate(clips), np.concatenate(labels)


class PrepareTest(tf.test.TestCase, parameterized.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        temp = Path(tempfile.mkdtemp(dir=tf.compat.v1.test.get_temp_dir()))
        cls.root = fixtures.write_word_folder(temp / "words", WORDS, SPEAKERS, takes=2,
                                              sample_rate=8000)  # resampled to 16 kHz
        noise = cls.root / "_background_noise_"
        noise.mkdir()
        write_wav(noise / "hiss.wav", (np.random.default_rng(0).standard_normal(40000) * 0.1)
                  .astype(np.float32), 16000)
        (cls.root / "yes" / "broken_nohash_0.wav").write_bytes(b"RIFF....WAVE")
        cls.config = PrepareConfig(out=temp / "prepared", data_dir=cls.root,
                                   wanted_words=("yes", "no"), unknown_percentage=50.0,
                                   clips_per_shard=7)
        cls.manifest = prepare(cls.config)
        cls.prepared = load_prepared(cls.config.out)
        cls.in_memory = load_folder(cls.root, ("yes", "no"), FeatureConfig(), SplitSpec(),
                                    ExtraClasses(unknown_percentage=50.0))

    def test_same_clips_labels_and_order_as_the_folder_loader(self):
        self.assertEqual(self.prepared.labels, (SILENCE, UNKNOWN, "yes", "no"))
        self.assertEqual(self.prepared.labels, self.in_memory.labels)
        self.assertEqual(self.prepared.split_sizes(), self.in_memory.split_sizes())
        for name in SPLITS:
            clips, labels = read_all(self.prepared.clip_source(name))
            self.assertAllEqual(labels, self.in_memory.splits[name].labels, msg=name)
            self.assertAllClose(clips, self.in_memory.splits[name].clips, rtol=0,
                                atol=INT16_STEP / 2 + 1e-7, msg=name)
        self.assertLen(self.prepared.background, 1)
        self.assertAllEqual(self.prepared.background[0], self.in_memory.background[0])
        self.assertEqual(self.prepared.skipped, self.in_memory.skipped)
        self.assertIn("broken_nohash_0.wav", self.prepared.skipped[0].path)

    def test_shards_hold_at_most_clips_per_shard(self):
        for name in SPLITS:
            split = self.manifest["splits"][name]
            self.assertEqual(sum(shard["clips"] for shard in split["shards"]), split["clips"])
            self.assertLessEqual(max(shard["clips"] for shard in split["shards"]), 7)
            self.assertEqual(sum(split["label_counts"]), split["clips"])

    def test_normalization_is_the_training_split_statistics(self):
        # Of the clips as stored: 16-bit rounding lifts near-silent mel bins (here those
        # above the 8 kHz recordings' 4 kHz) by up to 0.07 in log power.
        training = self.in_memory.splits["training"]
        stored = dataclasses.replace(training, clips=to_int16(training.clips) / 32768.0)
        expected = fit_normalization(memory_source(stored), FeatureConfig())
        self.assertAllClose(self.prepared.normalization.mean, expected.mean, atol=1e-4)
        self.assertAllClose(self.prepared.normalization.std, expected.std, atol=1e-4)

    def test_shuffled_epochs_hold_every_clip_once_in_a_new_order(self):
        source = self.prepared.clip_source("training")
        ordered, _ = read_all(source)
        dataset = source.batches(13, 3)
        first, second = [np.concatenate([clips.numpy() for clips, _ in dataset])
                         for _ in range(2)]
        key = lambda clips: sorted(map(bytes, np.round(clips * 32768).astype(np.int16)))  # noqa: E731
        self.assertEqual(key(first), key(ordered))
        self.assertEqual(key(second), key(ordered))
        self.assertNotAllEqual(first, second)
        again = read_all(source, seed=3)[0]
        self.assertAllEqual(again, first)  # the seed fixes the order

    def test_sample_draws_distinct_clips_in_split_order(self):
        source = self.prepared.clip_source("training")
        ordered, _ = read_all(source)
        sample = source.sample(10, seed=0)
        self.assertEqual(sample.size, 10)
        drawn, _ = read_all(sample)
        rows = [int(np.flatnonzero(np.all(ordered == clip, axis=1))[0]) for clip in drawn]
        self.assertEqual(rows, sorted(set(rows)))
        self.assertLen(rows, 10)

    def test_out_folder_that_is_not_empty_is_refused(self):
        with self.assertRaisesRegex(InputError, r"--out=.*prepared already exists and is not "
                                                "empty; choose a new folder"):
            prepare(self.config)

    def test_interrupted_prepare_leaves_nothing(self):
        out = self.config.out.parent / "interrupted"
        with mock.patch.object(prepared, "clip_record", side_effect=KeyboardInterrupt), \
                self.assertRaises(KeyboardInterrupt):
            prepare(dataclasses.replace(self.config, out=out))
        self.assertFalse(out.exists())
        self.assertEmpty([p for p in out.parent.iterdir() if p.name.startswith(".interrupted")])

    @parameterized.named_parameters(
        ("missing_shard", lambda folder: (folder / "testing-00000.tfrecord").unlink(),
         r"testing-00000.tfrecord: missing; the prepared folder is damaged, prepare it again"),
        ("truncated_shard", lambda folder: (folder / "training-00001.tfrecord").write_bytes(
            b"x"), r"training-00001.tfrecord: 1 bytes, not [\d,]+; the prepared folder is "
                   "damaged"),
        ("no_manifest", lambda folder: (folder / prepared.MANIFEST).unlink(),
         r"--prepared_dir=.*: no prepared.json; write the folder with python -m kws.prepare"),
        ("not_json", lambda folder: (folder / prepared.MANIFEST).write_text("{"),
         r"prepared.json: not a readable kws.prepare manifest"),
    )
    def test_damaged_folder_is_named(self, damage, message):
        folder = Path(self.create_tempdir().full_path) / "copy"
        subprocess.run(["cp", "-r", str(self.config.out), str(folder)], check=True)
        damage(folder)
        with self.assertRaisesRegex(InputError, message):
            load_prepared(folder)

    @parameterized.parameters(({"num_mel_bins": 32},), ({"running_mean_frames": 50.0},))
    def test_other_features_need_preparing_again(self, features):
        (changed,) = features
        with self.assertRaisesRegex(InputError, rf"prepared for other features \({changed}\); "
                                                "prepare it again"):
            self.prepared.training_normalization(FeatureConfig(**features))

    def test_trains_from_the_prepared_folder(self):
        run_dir = Path(self.create_tempdir().full_path) / "run"
        report = train(TrainConfig(output_dir=run_dir, prepared_dir=self.config.out,
                                   models=("fc",), epochs=1, batch_size=16, verbose=0))
        self.assertEqual(report["data"]["labels"], list(self.prepared.labels))
        self.assertEqual(report["data"]["split_sizes"], self.prepared.split_sizes())
        self.assertStartsWith(report["data"]["source"], f"folder {self.root}")
        self.assertLen(report["data"]["skipped"], 1)
        matrix = np.asarray(report["models"]["fc"]["confusion_matrix"])
        self.assertEqual(matrix.sum(axis=1).tolist(),
                         self.manifest["splits"]["testing"]["label_counts"])
        features = json.loads((run_dir / "features.json").read_text())
        self.assertEqual(features["normalization"], self.manifest["normalization"])


    def serve(self, *flags: str) -> None:
        """Runs ``python -m kws.data_service`` in another process until the test ends."""
        server = subprocess.Popen([sys.executable, "-m", "kws.data_service", *flags],
                                  cwd=fixtures.ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        self.addCleanup(server.wait, 30)
        self.addCleanup(server.kill)

    def test_the_data_service_computes_every_training_clip_once(self):
        dispatcher_port, worker_port = fixtures.free_ports(2)
        address = f"127.0.0.1:{dispatcher_port}"
        self.serve(f"--port={dispatcher_port}")
        deadline = time.monotonic() + 120
        while True:  # the dispatcher's process takes a few seconds to import TensorFlow
            try:
                check_data_service(address)
                break
            except InputError:
                self.assertLess(time.monotonic(), deadline, "no dispatcher came up")
                time.sleep(0.5)
        # Without augmentation each clip's features are fixed, so they name the clip.
        config = TrainConfig(output_dir=Path("unused"), prepared_dir=self.config.out,
                             batch_size=16, data_service=address, augmentation=NO_AUGMENTATION)
        front_end = FrontEnd(FeatureConfig(), self.prepared.normalization, self.prepared.labels)
        training = make_datasets(config, self.prepared, front_end,
                                 self.prepared.clip_source("training"))["training"]
        batches = []
        reader = threading.Thread(target=lambda: batches.extend(training), daemon=True)
        reader.start()
        reader.join(timeout=10)
        # No worker yet, and nothing is computed in this process: no batch arrives.
        self.assertTrue(reader.is_alive())
        self.assertEmpty(batches)
        self.serve(f"--dispatcher={address}", f"--port={worker_port}")
        reader.join(timeout=300)
        self.assertFalse(reader.is_alive(), "the worker sent no epoch")
        served = np.concatenate([features.numpy() for features, _ in batches])
        local, labels = features_and_labels(self.prepared.clip_source("training"), front_end)
        distances = np.linalg.norm(served.reshape(len(served), 1, -1)
                                   - local.reshape(1, len(local), -1), axis=-1)
        clip_ids = np.argmin(distances, axis=1)
        self.assertAllClose(distances[np.arange(len(served)), clip_ids], np.zeros(len(served)),
                            atol=1e-3)
        self.assertEqual(sorted(clip_ids), list(range(len(local))))  # each clip once
        served_labels = np.concatenate([batch_labels.numpy() for _, batch_labels in batches])
        self.assertAllEqual(served_labels, labels[clip_ids])

        # And a whole short run trains from it.
        run_dir = Path(self.create_tempdir().full_path) / "run"
        result = subprocess.run(
            [sys.executable, "-m", "kws.train", f"--prepared_dir={self.config.out}",
             f"--data_service={address}", "--models=fc", "--epochs=1", "--batch_size=16",
             "--noexport", f"--output_dir={run_dir}"],
            capture_output=True, text=True, timeout=600, cwd=fixtures.ROOT)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn(f"Training batches come from the tf.data service at {address}",
                      result.stderr)
        self.assertTrue((run_dir / "report.json").is_file())

    def test_no_dispatcher_is_one_clear_error(self):
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        with self.assertRaisesRegex(InputError, rf"--data_service=127.0.0.1:{port}: no "
                                                "dispatcher answers there .*; start one with "
                                                "python -m kws.data_service"):
            check_data_service(f"127.0.0.1:{port}")


class PrepareConfigTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("no_source", {}, "give --data_dir \\(or --dataset\\); synthetic speech needs no "
                          "preparing"),
        ("both", {"data_dir": Path("x"), "dataset": "speech_commands_v1"},
         "--data_dir and --dataset given; pass one of them"),
        ("unknown_dataset", {"dataset": "timit"}, "--dataset=timit: unknown; choose from "
                                                   "speech_commands_v1, speech_commands_v2"),
        ("shard", {"data_dir": Path("x"), "clips_per_shard": 0},
         "--clips_per_shard must be at least 1, got 0"),
        ("silence", {"data_dir": Path("x"), "silence_percentage": -1.0},
         "--silence_percentage must be between 0"),
    )
    def test_rejects_bad_values(self, overrides, message):
        with self.assertRaisesRegex(InputError, message):
            PrepareConfig(out=Path("unused"), **overrides)

    def test_command_line_error_is_one_line(self):
        missing = Path(self.create_tempdir().full_path) / "nowhere"
        result = subprocess.run(
            [sys.executable, "-m", "kws.prepare", f"--data_dir={missing}", "--out=unused"],
            cwd=fixtures.ROOT, capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.strip().splitlines()[-1],
                         f"kws.prepare: error: --data_dir={missing}: no such folder")
        self.assertFalse((fixtures.ROOT / "unused").exists())


if __name__ == "__main__":
    tf.test.main()
