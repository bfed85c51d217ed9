"""tools/detect.py: the incremental front end, the posterior rule, file and live input,
known words found at known times, and one-line errors."""

import dataclasses
import json
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from kws import benchmark_tflite, detect
from tests.fixtures import MINI_SPEECH_COMMANDS, MINI_SPEECH_COMMANDS_MISSING

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "detect.py"
EXPORT = ROOT / "export"
MANIFEST = json.loads((EXPORT / "manifest.json").read_text())
LABELS = ["_silence_", "_unknown_", "yes", "no"]

# Runs the tool with everything but numpy and LiteRT made unimportable, as on a device.
ISOLATED = """
import runpy, sys
for name in ("tensorflow", "keras", "scipy", "absl", "kws", "matplotlib", "tflite_runtime"):
    sys.modules[name] = None
sys.argv = sys.argv[1:]
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_tool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ISOLATED, str(TOOL), *args], input=stdin,
                          capture_output=True, timeout=300)


def write_pcm_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> bytes:
    pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return pcm


def scores_over_time(rows: list[tuple[float, list[float]]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([t for t, _ in rows]), np.array([s for _, s in rows], np.float64)


def run_rule(times, scores, settings, chunk=None):
    smoother, decider = detect.Smoother(settings.average_window_s), \
        detect.Decider(LABELS, settings)
    chunk = chunk or len(times)
    found = []
    for start in range(0, len(times), chunk):
        averaged, counts = smoother.push(times[start : start + chunk],
                                         scores[start : start + chunk])
        found += decider.push(times[start : start + chunk], averaged, counts)
    return [(round(d.time_s, 3), d.label) for d in found]


class IncrementalFrontEndTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.product(samples=[100, 257, 300, 16000, 40123], chunk=[1, 160, 999, 10**6])
    def test_equals_the_batch_front_end(self, samples, chunk):
        signal = np.random.default_rng(samples).standard_normal(samples) * 0.1
        front_end = detect.IncrementalFrontEnd(MANIFEST)
        frames = [front_end.push(signal[i : i + chunk]) for i in range(0, samples, chunk)]
        frames.append(front_end.finish())
        expected = benchmark_tflite.normalize(
            benchmark_tflite.log_mel(signal, MANIFEST["features"]), MANIFEST)
        self.assertAllClose(np.concatenate(frames), expected, atol=1e-5)

    @parameterized.product(chunk=(1, 160, 999), adaptation=("running_mean_frames",
                                                             "pcen_frames"))
    def test_an_adaptation_runs_on_across_chunks(self, chunk, adaptation):
        manifest = {**MANIFEST, "features": {**MANIFEST["features"], adaptation: 30.0}}
        signal = np.random.default_rng(1).standard_normal(20000) * np.linspace(0.01, 1, 20000)
        front_end = detect.IncrementalFrontEnd(manifest)
        frames = [front_end.push(signal[i : i + chunk]) for i in range(0, len(signal), chunk)]
        frames.append(front_end.finish())
        expected = benchmark_tflite.normalized_features(signal, manifest)
        self.assertAllClose(np.concatenate(frames), expected, atol=1e-5)

    def test_a_frame_is_out_half_an_fft_after_its_centre(self):
        front_end = detect.IncrementalFrontEnd(MANIFEST)
        # Frame 0 is samples -256 to 255, the first 256 reflected samples 1 to 256.
        self.assertLen(front_end.push(np.zeros(256)), 0)
        self.assertLen(front_end.push(np.zeros(1)), 1)
        # Frame 1 is samples -96 to 415.
        self.assertLen(front_end.push(np.zeros(158)), 0)
        self.assertLen(front_end.push(np.zeros(1)), 1)


class PosteriorRuleTest(tf.test.TestCase, parameterized.TestCase):
    settings = detect.DetectorSettings(threshold=0.5, average_window_s=0.05, minimum_count=1,
                                       suppression_s=0.3)

    def test_one_utterance_fires_once(self):
        # "yes" at 0.9 for 0.5 s: its 50 ms average passes 0.5 with the third result.
        rows = [(t / 100, [0.1, 0.1, 0.9 if 100 <= t < 150 else 0.1, 0.0])
                for t in range(300)]
        times, scores = scores_over_time(rows)
        self.assertEqual(run_rule(times, scores, self.settings), [(1.02, "yes")])

    def test_suppression_restarts_when_the_score_falls(self):
        # Three bursts: the second starts 0.2 s after the first, inside the suppression
        # that follows its fall; the third, 0.5 s after, fires.
        def score(t):
            return 0.9 if 100 <= t < 110 or 130 <= t < 140 or 160 <= t < 200 else 0.1
        rows = [(t / 100, [0.1, 0.0, score(t), 0.0]) for t in range(300)]
        times, scores = scores_over_time(rows)
        # The first burst's average falls below 0.5 at 1.12 s: quiet until 1.42 s.
        self.assertEqual(run_rule(times, scores, self.settings),
                         [(1.02, "yes"), (1.62, "yes")])

    def test_silence_and_unknown_never_fire(self):
        rows = [(t / 100, [0.95, 0.0, 0.05, 0.0] if t < 50 else [0.0, 0.99, 0.0, 0.01])
                for t in range(100)]
        times, scores = scores_over_time(rows)
        self.assertEqual(run_rule(times, scores, self.settings), [])

    def test_scores_are_averaged_and_counted(self):
        settings = detect.DetectorSettings(threshold=0.5, average_window_s=0.1,
                                           minimum_count=5, suppression_s=0.0)
        # One result in two above 0.5 averages 0.45: never. Counts below 5 at the start.
        rows = [(t / 100, [0.0, 0.0, 0.8 if t % 2 else 0.1, 0.0]) for t in range(50)]
        self.assertEqual(run_rule(*scores_over_time(rows), settings), [])
        rows = [(t / 100, [0.0, 0.0, 0.9, 0.0]) for t in range(50)]
        self.assertEqual(run_rule(*scores_over_time(rows), settings), [(0.04, "yes")])

    @parameterized.parameters(1, 7, 64)
    def test_chunks_give_the_detections_of_the_whole(self, chunk):
        rng = np.random.default_rng(0)
        scores = rng.dirichlet([0.3] * 4, size=500)
        times = np.arange(500) / 100
        settings = detect.DetectorSettings(threshold=0.4, average_window_s=0.08,
                                           minimum_count=3, suppression_s=0.1)
        whole = run_rule(times, scores, settings)
        self.assertNotEmpty(whole)
        self.assertEqual(run_rule(times, scores, settings, chunk), whole)


class KeywordThresholdsTest(tf.test.TestCase, parameterized.TestCase):
    settings = detect.DetectorSettings(threshold=0.5, average_window_s=0.05, minimum_count=1,
                                       suppression_s=0.3)

    def test_a_keyword_with_its_own_threshold(self):
        # "yes" at 0.7 for 0.5 s, then "no" at 0.7: with yes's threshold at 0.8 only "no"
        # fires; with no's at 0.8 only "yes"; the other keyword keeps 0.5.
        rows = [(t / 100, [0.1, 0.1, 0.7 if 100 <= t < 150 else 0.1,
                           0.7 if 200 <= t < 250 else 0.1]) for t in range(300)]
        times, scores = scores_over_time(rows)
        self.assertEqual(run_rule(times, scores, self.settings), [(1.03, "yes"), (2.03, "no")])
        strict_yes = dataclasses.replace(self.settings, keyword_thresholds=(("yes", 0.8),))
        self.assertEqual(run_rule(times, scores, strict_yes), [(2.03, "no")])
        strict_no = dataclasses.replace(self.settings, keyword_thresholds=(("no", 0.8),))
        self.assertEqual(run_rule(times, scores, strict_no), [(1.03, "yes")])

    def test_the_keyword_furthest_above_its_threshold_fires(self):
        # Both above their thresholds at once: "no" is 0.2 above 0.3, "yes" 0.1 above 0.4.
        rows = [(t / 100, [0.0, 0.0, 0.5, 0.5]) for t in range(10)]
        settings = dataclasses.replace(self.settings,
                                       keyword_thresholds=(("yes", 0.4), ("no", 0.3)))
        self.assertEqual(run_rule(*scores_over_time(rows), settings), [(0.0, "no")])

    def test_a_threshold_for_a_label_that_is_no_keyword(self):
        settings = dataclasses.replace(self.settings, keyword_thresholds=(("_unknown_", 0.9),))
        with self.assertRaisesRegex(detect.BenchmarkError, "a threshold for '_unknown_', "
                                    "which is no keyword of the model "
                                    r"\(its keywords: yes, no\)"):
            detect.Decider(LABELS, settings)

    @parameterized.named_parameters(
        ("one_for_all", "0.9", (0.9, {})),
        ("per_keyword", "yes:0.95,no:0.9", (None, {"yes": 0.95, "no": 0.9})),
        ("both", "0.8,yes:0.95", (0.8, {"yes": 0.95})))
    def test_the_threshold_flag(self, text, expected):
        self.assertEqual(detect.parse_args(["-", "--model=m", f"--threshold={text}"]).threshold,
                         expected)

    def test_recommended_thresholds_and_the_flag(self):
        advice = {"threshold": 0.9, "keyword_thresholds": {"yes": 0.95, "no": 0.85}}

        def settings(*flags):
            return detect.settings_from(detect.parse_args(["-", "--model=m", *flags]),
                                        detect.recommended_settings(advice))

        # Unset, the manifest's; one number sets every keyword; a pair changes one keyword.
        self.assertEqual(settings().thresholds_of(["yes", "no", "up"]).tolist(),
                         [0.95, 0.85, 0.9])
        self.assertEqual(settings("--threshold=0.5").thresholds_of(["yes", "no"]).tolist(),
                         [0.5, 0.5])
        self.assertEqual(settings("--threshold=yes:0.7").thresholds_of(["yes", "no"]).tolist(),
                         [0.7, 0.85])

    def test_a_manifest_threshold_for_no_keyword_names_the_manifest(self):
        folder = Path(self.create_tempdir().full_path)
        (folder / "gru_int8.tflite").write_bytes((EXPORT / "gru_int8.tflite").read_bytes())
        detector = {**MANIFEST[detect.DETECTOR_KEY], "keyword_thresholds": {"left": 0.9}}
        (folder / "manifest.json").write_text(json.dumps({**MANIFEST,
                                                          detect.DETECTOR_KEY: detector}))
        write_pcm_wav(folder / "in.wav", np.zeros(16000))
        result = run_tool("--model", str(folder / "gru_int8.tflite"), str(folder / "in.wav"))
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.decode().strip().splitlines()[-1],
                         f"detect: error: {folder / 'manifest.json'} (detector): a threshold "
                         "for 'left', which is no keyword of the model (its keywords: yes, "
                         "no, up)")

    @parameterized.named_parameters(
        ("not_a_number", "--threshold=yes=0.9",
         "argument --threshold: 'yes=0.9' is neither a threshold (0.9) nor label:threshold "
         "(yes:0.95)"),
        ("out_of_range", "--threshold=yes:1.5",
         "argument --threshold: must be between 0 and 1, got 1.5"),
        ("not_a_keyword", "--threshold=left:0.9",
         "detect: error: --threshold: a threshold for 'left', which is no keyword of the "
         "model (its keywords: yes, no, up)"))
    def test_bad_thresholds_are_one_line(self, flag, message):
        wav = Path(self.create_tempdir().full_path) / "in.wav"
        write_pcm_wav(wav, np.zeros(16000))
        result = run_tool("--model", str(EXPORT / "gru_int8.tflite"), flag, str(wav))
        stderr = result.stderr.decode().strip()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(message, stderr.splitlines()[-1])


class StreamScorerTest(tf.test.TestCase):
    def test_staggered_streams_take_the_older_state(self):
        model = benchmark_tflite.SignatureModel(EXPORT / "gru_int8_stream.tflite")
        frames = np.random.default_rng(0).standard_normal((60, 40)).astype(np.float32)
        _, carried = detect.StreamScorer(model).push(frames)
        _, staggered = detect.StreamScorer(model, reset_every_frames=20).push(frames)
        # Up to frame 20 the older stream has never been reset: the same as carrying.
        self.assertAllClose(staggered[:20], carried[:20])
        # At frame 25 the older stream was reset at frame 10 (15 frames ago).
        fresh = benchmark_tflite.stream_scores(model, frames[10:26])
        self.assertAllClose(staggered[25], fresh[-1])
        self.assertNotAllClose(staggered[40:], carried[40:])


class CommandTest(tf.test.TestCase, parameterized.TestCase):
    def setUp(self):
        super().setUp()
        self.dir = Path(self.create_tempdir().full_path)

    def test_file_and_standard_input_give_the_same_detections(self):
        # Tones and noise: whatever the model calls them, both modes must agree.
        rng = np.random.default_rng(1)
        signal = rng.standard_normal(16000 * 6) * 0.05
        signal[16000:24000] += 0.5 * np.sin(np.arange(8000) * 0.2)
        pcm = write_pcm_wav(self.dir / "in.wav", signal)
        for model in ("gru_int8_stream.tflite", "gru_int8.tflite"):
            args = ["--model", str(EXPORT / model), "--threshold=0.2"]
            from_file = run_tool(*args, f"--json={self.dir / 'out.json'}",
                                 str(self.dir / "in.wav"))
            self.assertEqual(from_file.returncode, 0, from_file.stderr)
            live = run_tool(*args, "-", stdin=pcm)
            self.assertEqual(live.returncode, 0, live.stderr)
            strip = [line.split("  (")[0] for line in live.stdout.decode().splitlines()]
            self.assertEqual(strip, from_file.stdout.decode().splitlines())
            result = json.loads((self.dir / "out.json").read_text())
            self.assertAlmostEqual(result["audio_seconds"], 6.0)
            self.assertLen(result["detections"], len(strip))

    def test_other_rates_and_channels_are_converted(self):
        rng = np.random.default_rng(2)
        signal = rng.standard_normal(8000 * 3) * 0.1
        stereo = np.repeat(np.clip(np.round(signal * 32768), -32768, 32767)
                           .astype("<i2")[:, None], 2, axis=1)
        with wave.open(str(self.dir / "in.wav"), "wb") as writer:
            writer.setnchannels(2)
            writer.setsampwidth(2)
            writer.setframerate(8000)
            writer.writeframes(stereo.tobytes())
        args = ["--model", str(EXPORT / "gru_int8.tflite"), f"--json={self.dir / 'o.json'}"]
        result = subprocess.run([sys.executable, str(TOOL), *args, str(self.dir / "in.wav")],
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        output = json.loads((self.dir / "o.json").read_text())
        self.assertAlmostEqual(output["audio_seconds"], 3.0)
        # No --threshold: the shipped manifest's thresholds, one per keyword.
        self.assertTrue(output["recommended_settings_used"])
        self.assertEqual(output["settings"]["keyword_thresholds"],
                         MANIFEST[detect.DETECTOR_KEY]["keyword_thresholds"])
        self.assertLen(output["settings"]["keyword_thresholds"], 3)

    def test_known_words_at_known_times(self):
        if not MINI_SPEECH_COMMANDS.is_dir():
            self.skipTest(MINI_SPEECH_COMMANDS_MISSING)
        # Clips the shipped model gets right, each alone in a 2 s slot of silence.
        words = ["yes", "no", "up", "yes"]
        signal = np.zeros(16000 * 2 * len(words))
        for slot, word in enumerate(words):
            clip = benchmark_tflite.read_wav(
                sorted((MINI_SPEECH_COMMANDS / word).glob("*.wav"))[1], 16000)
            signal[slot * 32000 + 8000 : slot * 32000 + 8000 + len(clip)] = clip
        write_pcm_wav(self.dir / "words.wav", signal)
        result = run_tool("--model", str(EXPORT / "gru_int8.tflite"), "--threshold=0.5",
                          str(self.dir / "words.wav"))
        self.assertEqual(result.returncode, 0, result.stderr)
        found = [line.split() for line in result.stdout.decode().splitlines()]
        self.assertEqual([label for _, _, label, _ in found], words)
        for slot, (time_s, _, _, _) in enumerate(found):  # heard during or just after it
            self.assertBetween(float(time_s), slot * 2 + 0.5, slot * 2 + 2.0)

    @parameterized.named_parameters(
        ("not_a_wav", b"hello", "not a readable PCM WAV file"),
        ("truncated", "truncate", "truncated WAV file"),
    )
    def test_bad_audio_is_one_line(self, content, message):
        path = self.dir / "bad.wav"
        if content == "truncate":
            write_pcm_wav(path, np.zeros(16000))
            content = path.read_bytes()[:2000]
        path.write_bytes(content)
        result = run_tool("--model", str(EXPORT / "gru_int8.tflite"), str(path))
        self.assertEqual(result.returncode, 1)
        stderr = result.stderr.decode().strip()
        self.assertEqual(stderr.count("\n"), 0, stderr)
        self.assertIn(f"detect: error: {path}: {message}", stderr)

    def test_ctrl_c_ends_a_live_session_and_keeps_what_was_heard(self):
        out = self.dir / "live.json"
        live = subprocess.Popen([sys.executable, "-c", ISOLATED, str(TOOL), "--model",
                                 str(EXPORT / "gru_int8.tflite"), f"--json={out}", "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        live.stdin.write(np.zeros(16000 * 2, "<i2").tobytes())  # 2 s, the pipe stays open
        live.stdin.flush()
        # The model loads once the first audio has arrived; LiteRT says so on stderr.
        while b"XNNPACK" not in live.stderr.readline():
            self.assertIsNone(live.poll(), "the detector ended before the signal")
        time.sleep(1)  # and reads the rest of what there is
        live.send_signal(signal.SIGINT)
        _, stderr = live.communicate(timeout=120)
        self.assertEqual(live.returncode, 0, stderr.decode()[-2000:])
        self.assertAlmostEqual(json.loads(out.read_text())["audio_seconds"], 2.0)

    def test_an_empty_stream_is_one_line(self):
        result = run_tool("--model", str(EXPORT / "gru_int8.tflite"), "-", stdin=b"")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.decode().strip(),
                         "detect: error: standard input: no audio arrived (expected raw 16-bit "
                         "mono PCM at 16000 Hz)")

    def test_a_model_without_its_manifest_is_one_line(self):
        model = self.dir / "gru_int8.tflite"
        model.write_bytes((EXPORT / "gru_int8.tflite").read_bytes())
        write_pcm_wav(self.dir / "in.wav", np.zeros(16000))
        result = run_tool("--model", str(model), str(self.dir / "in.wav"))
        self.assertEqual(result.returncode, 1)
        stderr = result.stderr.decode().strip()
        self.assertEqual(stderr.count("\n"), 0, stderr)
        self.assertIn(f"detect: error: --manifest={self.dir / 'manifest.json'}: cannot read "
                      "the front end", stderr)

    @parameterized.named_parameters(
        ("files_a_list", {"files": ["gru_int8.tflite"]}, "cannot read the front end ('files' "
         "must map file names to objects, got ['gru_int8.tflite'])"),
        ("a_file_a_string", {"files": {"gru_int8.tflite": "0674"}}, "cannot read the front end "
         "('files' must map file names to objects, got {'gru_int8.tflite': '0674'})"),
        ("detector_a_list", {"detector": [0.5]}, "'detector' must be an object, got [0.5]"),
        ("training_a_string", {"training": "gru"}, "'training' must be an object, got 'gru'"),
        ("recipe_a_list", {"training": {"recipe": [1000]}},
         "'training.recipe' must be an object, got [1000]"))
    def test_a_malformed_manifest_names_the_entry(self, changed, message):
        path = self.dir / "manifest.json"
        path.write_text(json.dumps({**MANIFEST, **changed}))
        content = (EXPORT / "gru_int8.tflite").read_bytes()
        with self.assertRaises(benchmark_tflite.BenchmarkError) as raised:
            detect.read_manifest(path, content)
        self.assertStartsWith(str(raised.exception), f"--manifest={path}: {message}")

    @parameterized.parameters((0, 2.0), (1000, 0.0))
    def test_a_gru_trained_for_a_carried_state_is_never_reset(self, carried_state_ms, reset):
        manifest = json.loads(json.dumps(MANIFEST))
        manifest["training"]["recipe"]["carried_state_ms"] = carried_state_ms
        (self.dir / "manifest.json").write_text(json.dumps(manifest))
        model = self.dir / "gru_int8_stream.tflite"
        model.write_bytes((EXPORT / "gru_int8_stream.tflite").read_bytes())
        write_pcm_wav(self.dir / "in.wav", np.zeros(16000))
        result = run_tool("--model", str(model), f"--json={self.dir / 'out.json'}",
                          str(self.dir / "in.wav"))
        self.assertEqual(result.returncode, 0, result.stderr.decode()[-2000:])
        self.assertEqual(json.loads((self.dir / "out.json").read_text())["reset_every_s"], reset)
        if not carried_state_ms:
            self.assertEqual(reset, detect.RESET_EVERY_S)

    @parameterized.named_parameters(("no_training", {}), ("null_training", {"training": None}),
                                    ("null_recipe", {"training": {"recipe": None}}))
    def test_a_manifest_without_a_recipe_resets_as_before(self, manifest):
        self.assertEqual(detect.default_reset_every_s(manifest), detect.RESET_EVERY_S)

    def test_the_recommended_settings_follow_the_model_file(self):
        content = (EXPORT / "gru_int8.tflite").read_bytes()
        manifest = {**MANIFEST, detect.DETECTOR_KEY: {"model": "gru_int8.tflite",
                                                      "threshold": 0.8, "reset_every_s": 0.0}}
        self.assertEqual(detect.recommended(content, manifest)["threshold"], 0.8)
        other = (EXPORT / "gru_int8_stream.tflite").read_bytes()
        self.assertEqual(detect.recommended(other, manifest), {})


if __name__ == "__main__":
    tf.test.main()
