#!/usr/bin/env python3
"""Finds keywords in a recording or a live stream with a kws TFLite model.

Needs numpy and a LiteRT interpreter, and benchmark_tflite.py beside it (its front end and
model runner: the device computes features exactly as training did):

    python3 detect.py --model gru_int8_stream.tflite recording.wav
    arecord -t raw -f S16_LE -r 16000 -c 1 | python3 detect.py --model gru_int8_stream.tflite -

One line per detection: the time in seconds from the start of the audio, the label, the
averaged score (and, live, how long after the end of the audio that caused it). The export's
manifest.json beside the model gives the front end, the labels and, when the export was
measured on streams (``python -m kws.stream_eval``), the recommended thresholds.

How scores become detections (TensorFlow's RecognizeCommands, with a refractory time that
restarts only once the score has fallen): the model's class scores are averaged over the
last ``--average_window_ms``; a keyword fires when its average reaches its ``--threshold``
(one for every keyword, or one per keyword: a keyword that other words are often taken
for needs a higher one) with at least ``--minimum_count`` results in the window; after
that nothing fires until the averages have fallen below their thresholds and
``--suppression_ms`` more have passed, so one utterance fires once. ``_silence_`` and
``_unknown_`` are never reported.

Inside the kws package this file is also ``kws.detect``; ``python -m kws.stream_eval``
measures it on long streams with the same code.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

if __package__:
    from kws import benchmark_tflite as device
else:  # a script beside benchmark_tflite.py
    import benchmark_tflite as device

BenchmarkError = device.BenchmarkError
WINDOW_STRIDE_MS = 100.0
# Carried for minutes, the state of a GRU trained on one-second clips from a zero state
# drifts away from them (kws.stream_eval: 42 % of keywords missed at threshold 0.5, against
# 14 % with resets); one trained with --carried_state_ms is never reset.
RESET_EVERY_S = 2.0
DETECTOR_KEY = "detector"  # the manifest's recommended settings, written by kws.stream_eval


# ----------------------------------------------------------------------------- front end


class IncrementalFrontEnd:
    """Normalised log-mel frames of a stream, as its samples arrive.

    Each ``hop_samples`` of new audio gives one frame, the same frame the batch front end
    (``benchmark_tflite.log_mel``) computes on the whole signal: frame ``t`` is centred on
    sample ``t * hop_samples`` and needs half an FFT of audio after it, so a frame is out
    ``fft_length / 2`` samples (16 ms) after its centre, and nothing older than one FFT
    window is kept. The first frames use the batch front end's reflect padding at the start;
    ``finish()`` gives the last ones, padded at the end as it is. An adaptation (a running
    mean or PCEN, ``benchmark_tflite.Adaptation``) starts at the stream's first frame and is
    never reset.
    """

    def __init__(self, front_end: dict):
        self.front_end = front_end
        self.features = front_end["features"]
        self.half = self.features["fft_length"] // 2
        self.hop = self.features["hop_samples"]
        self.pending = np.zeros(0, np.float64)  # padded signal from the next frame's start
        self.started = False  # the reflect padding of the start is in ``pending``
        self.samples_in = 0
        self.frames_out = 0
        self.adaptation = device.Adaptation(self.features)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Frames ``(n, mel bins)`` completed by ``samples`` (float, mono, model's rate)."""
        self.pending = np.concatenate([self.pending, np.asarray(samples, np.float64)])
        self.samples_in += len(samples)
        if not self.started:
            if len(self.pending) <= self.half:
                return self._frames(0)
            # numpy's reflect: the samples after the first, mirrored in front of it.
            self.pending = np.concatenate([self.pending[self.half : 0 : -1], self.pending])
            self.started = True
        ready = max(0, (len(self.pending) - 2 * self.half) // self.hop + 1)
        return self._frames(ready)

    def finish(self) -> np.ndarray:
        """The frames left at the end of the stream, reflect-padded as the batch front end
        pads the end of a signal."""
        total = 1 + self.samples_in // self.hop
        if not self.started:  # shorter than half an FFT: the batch front end on all of it
            signal = self.pending
            self.pending = np.zeros(0, np.float64)
            frames = device.log_mel(signal, self.features)[self.frames_out :]
            self.frames_out = total
            return device.normalize(self.adaptation(frames), self.front_end)
        self.pending = np.concatenate([self.pending, self.pending[-2 : -self.half - 2 : -1]])
        return self._frames(total - self.frames_out)

    def _frames(self, count: int) -> np.ndarray:
        if count <= 0:
            return np.zeros((0, self.features["num_mel_bins"]), np.float32)
        frames = device.padded_log_mel(self.pending, count, self.features)
        self.pending = self.pending[count * self.hop :]
        self.frames_out += count
        return device.normalize(self.adaptation(frames), self.front_end)


# ----------------------------------------------------------------------------- models


class StreamScorer:
    """Class scores after every frame from a streaming model (one frame and the GRU states
    in, new states out), the states carried from frame to frame.

    States stay in the model's own integers between invokes: each new state is mapped to
    the state input's scale by a table made once (the exact ``quantize(dequantize(x))``),
    so a frame costs one invoke and a few tensor copies.

    Args:
        model: The streaming model.
        reset_every_frames: 0 carries the states for the whole stream. Otherwise two
            streams run side by side, each reset to zero every ``reset_every_frames``, half
            a period apart, and the one reset longer ago gives the scores: every score has
            between half a period and a period of context, as the model was trained on
            one-second clips that start from a zero state.
    """

    def __init__(self, model: device.SignatureModel, reset_every_frames: int = 0):
        self.interpreter = model.raw_interpreter()
        self.inputs, self.outputs = model.input_details, model.output_details
        self.state_names = [name for name in self.inputs if name.startswith("state_")]
        self.carry = {name: _requantizer(self.outputs[f"new_{name}"], self.inputs[name])
                      for name in self.state_names}
        self.zero = {name: device.quantize(np.zeros(self.inputs[name]["shape"], np.float32),
                                           self.inputs[name]) for name in self.state_names}
        self.reset_every = reset_every_frames
        self.streams = [dict(self.zero) for _ in range(2 if reset_every_frames else 1)]
        self.frame = 0

    def push(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices and class scores ``(n, classes)``, one per frame."""
        quantized = device.quantize(frames[:, None], self.inputs["frame"])
        raw_scores = []
        for frame in quantized:
            oldest = 0
            if self.reset_every:
                ages = [(self.frame + index * (self.reset_every // 2)) % self.reset_every
                        for index in range(2)]
                for index, age in enumerate(ages):
                    if age == 0:
                        self.streams[index] = dict(self.zero)
                oldest = int(np.argmax(ages))
            scores = [self._step(frame, states) for states in self.streams]
            raw_scores.append(scores[oldest])
            self.frame += 1
        indices = np.arange(self.frame - len(frames), self.frame)
        classes = self.outputs["scores"]["shape"][-1]
        return indices, device.dequantize(np.reshape(raw_scores, (len(frames), classes)),
                                          self.outputs["scores"])

    def _step(self, frame: np.ndarray, states: dict[str, np.ndarray]) -> np.ndarray:
        interpreter = self.interpreter
        interpreter.set_tensor(self.inputs["frame"]["index"], frame)
        for name in self.state_names:
            interpreter.set_tensor(self.inputs[name]["index"], states[name])
        interpreter.invoke()
        for name in self.state_names:
            states[name] = self.carry[name](
                interpreter.get_tensor(self.outputs[f"new_{name}"]["index"]))
        return interpreter.get_tensor(self.outputs["scores"]["index"])[0]


def _requantizer(source: dict, target: dict):
    """A function from a tensor of ``source``'s dtype and scale to ``target``'s."""
    if np.dtype(source["dtype"]).kind not in "iu":
        return lambda values: device.quantize(values, target)
    info = np.iinfo(source["dtype"])
    every = np.arange(info.min, info.max + 1).astype(source["dtype"])
    table = device.quantize(device.dequantize(every, source), target)
    return lambda values: table[values.astype(np.int64) - info.min]


class WindowScorer:
    """Class scores of the last window of frames (one second), every ``stride_frames``."""

    def __init__(self, model: device.SignatureModel, stride_frames: int):
        self.model = model
        self.stride = stride_frames
        self.window = np.zeros(tuple(model.input_details["features"]["shape"])[1:], np.float32)
        self.frame = 0

    def push(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indices, scores = [], []
        size = len(self.window)
        for frame in frames:
            self.window = np.concatenate([self.window[1:], frame[None]])
            self.frame += 1
            # The first score once a whole window has arrived, then every stride.
            if self.frame >= size and (self.frame - size) % self.stride == 0:
                scores.append(self.model(features=self.window[None])["scores"][0])
                indices.append(self.frame - 1)
        classes = self.model.output_details["scores"]["shape"][-1]
        return np.asarray(indices, np.int64), np.reshape(scores, (len(indices), classes))


# ----------------------------------------------------------------------------- posteriors


@dataclasses.dataclass(frozen=True)
class DetectorSettings:
    """How averaged scores become detections.

    Args:
        threshold: Averaged score a keyword must reach, 0 to 1.
        keyword_thresholds: ``(label, threshold)`` pairs: keywords whose score must reach a
            threshold of their own instead (a keyword that other words are often taken
            for needs a higher one than the rest).
        average_window_s: Scores are averaged over this many seconds of results.
        minimum_count: Fewest results in the window for a detection (the stream's start).
        suppression_s: After a detection, nothing fires until the averaged score has fallen
            below the threshold and this many seconds more have passed.
    """

    threshold: float = 0.5
    keyword_thresholds: tuple[tuple[str, float], ...] = ()
    average_window_s: float = 0.5
    minimum_count: int = 3
    suppression_s: float = 1.0

    def thresholds_of(self, labels: list[str]) -> np.ndarray:
        """The threshold each of ``labels`` must reach."""
        own = dict(self.keyword_thresholds)
        return np.array([own.get(label, self.threshold) for label in labels])


@dataclasses.dataclass(frozen=True)
class Detection:
    time_s: float  # end of the audio the detection has heard, from the stream's start
    label: str
    score: float


class Smoother:
    """Class scores averaged over the last ``window_s`` seconds of results, across calls."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self.times = np.zeros(0)
        self.scores = None

    def push(self, times: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Averaged scores ``(n, classes)`` at ``times`` and how many results each averages."""
        if self.scores is None:
            self.scores = np.zeros((0, scores.shape[1]))
        all_times = np.concatenate([self.times, times])
        all_scores = np.concatenate([self.scores, scores])
        sums = np.concatenate([np.zeros((1, all_scores.shape[1])), np.cumsum(all_scores, 0)])
        ends = np.arange(len(self.times), len(all_times)) + 1
        starts = np.searchsorted(all_times, all_times[ends - 1] - self.window_s, side="right")
        counts = ends - starts
        averaged = (sums[ends] - sums[starts]) / np.maximum(counts, 1)[:, None]
        kept = all_times > all_times[-1] - self.window_s if len(all_times) else \
            np.zeros(0, bool)
        self.times, self.scores = all_times[kept], all_scores[kept]
        return averaged, counts


def check_thresholds(settings: DetectorSettings, labels: list[str]) -> None:
    """Raises when ``settings`` give a threshold to a label that is not a keyword."""
    keywords = [labels[index] for index in device.keyword_indices(labels)]
    unknown = [label for label, _ in settings.keyword_thresholds if label not in keywords]
    if unknown:
        raise BenchmarkError(f"a threshold for {', '.join(map(repr, unknown))}, which is no "
                             f"keyword of the model (its keywords: {', '.join(keywords)})")


class Decider:
    """Detections from averaged scores: a keyword whose average reaches its threshold, then
    silence until every average has fallen below its threshold and the suppression time has
    passed. Where two keywords reach theirs at once, the one furthest above fires."""

    def __init__(self, labels: list[str], settings: DetectorSettings):
        self.labels = labels
        self.keywords = np.array(device.keyword_indices(labels))
        check_thresholds(settings, labels)
        self.thresholds = settings.thresholds_of([labels[index] for index in self.keywords])
        self.settings = settings
        self.waiting_for_fall = False
        self.armed_from = -np.inf

    def push(self, times: np.ndarray, averaged: np.ndarray,
             counts: np.ndarray) -> list[Detection]:
        if not len(times):
            return []
        margins = averaged[:, self.keywords] - self.thresholds
        above = (margins.max(axis=1) >= 0) & (counts >= self.settings.minimum_count)
        firing, falling = np.flatnonzero(above), np.flatnonzero(~above)
        detections, position = [], 0
        while True:  # one pass per detection: searches, not a loop over every result
            if self.waiting_for_fall:
                after = np.searchsorted(falling, position)
                if after == len(falling):
                    return detections
                position = falling[after]
                self.armed_from = times[position] + self.settings.suppression_s
                self.waiting_for_fall = False
            start = max(position, int(np.searchsorted(times, self.armed_from)))
            after = np.searchsorted(firing, start)
            if after == len(firing):
                return detections
            position = firing[after]
            best = self.keywords[np.argmax(margins[position])]
            detections.append(Detection(float(times[position]), self.labels[best],
                                        float(averaged[position, best])))
            self.waiting_for_fall = True
            position += 1


class Detector:
    """Audio in, detections out: the incremental front end, a model and the posterior rule.

    Args:
        model: A streaming model (frame and states in) or a window model (one second in).
        front_end: The export's manifest (features, normalization, labels).
        settings: The posterior rule.
        window_stride_ms: A window model runs this often (rounded to whole frames).
        reset_every_s: A streaming model's state reset period, 0 for never
            (``StreamScorer``, rounded to whole frames).
    """

    def __init__(self, model: device.SignatureModel, front_end: dict, settings: DetectorSettings,
                 window_stride_ms: float = WINDOW_STRIDE_MS, reset_every_s: float = 0.0):
        features = front_end["features"]
        frames_per_s = features["sample_rate"] / features["hop_samples"]
        self.front_end = IncrementalFrontEnd(front_end)
        self.scorer = StreamScorer(model, round(reset_every_s * frames_per_s)) \
            if model.is_streaming else \
            WindowScorer(model, max(1, round(window_stride_ms / 1000 * frames_per_s)))
        self.smoother = Smoother(settings.average_window_s)
        self.decider = Decider(list(front_end["labels"]), settings)
        self.frame_end_s = lambda index: (index * features["hop_samples"] +
                                          features["window_samples"] // 2) / \
            features["sample_rate"]

    def scores(self, samples: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Times (end of the audio each has heard) and class scores for new ``samples``;
        None ends the stream."""
        frames = self.front_end.finish() if samples is None else self.front_end.push(samples)
        indices, scores = self.scorer.push(frames)
        return self.frame_end_s(indices), scores

    def push(self, samples: np.ndarray | None) -> list[Detection]:
        times, scores = self.scores(samples)
        averaged, counts = self.smoother.push(times, scores)
        return self.decider.push(times, averaged, counts)


# ----------------------------------------------------------------------------- input


def pcm_chunks(stream, chunk_samples: int):
    """Float samples from raw 16-bit little-endian mono PCM, as they arrive, with the
    wall-clock time each chunk arrived."""
    leftover = b""
    while True:
        data = os.read(stream.fileno(), 2 * chunk_samples)
        if not data:
            if leftover:
                raise BenchmarkError(f"standard input: the stream ended inside a sample "
                                     f"({len(leftover)} odd byte); raw input must be 16-bit "
                                     "PCM (arecord -f S16_LE)")
            return
        data = leftover + data
        whole = len(data) // 2 * 2
        leftover = data[whole:]
        if whole:
            yield np.frombuffer(data[:whole], "<i2").astype(np.float32) / 32768, time.time()


def _until_interrupted(chunks):
    """``chunks`` until they end or Ctrl-C stops them: a live session ends that way, and
    what was heard is still finished and reported."""
    try:
        yield from chunks
    except KeyboardInterrupt:
        return


def wav_chunks(samples: np.ndarray, chunk_samples: int):
    for start in range(0, len(samples), chunk_samples):
        yield samples[start : start + chunk_samples], None


def read_manifest(path: Path, content: bytes) -> dict:
    """The manifest at ``path`` (``device.read_manifest``), whose detector, training and
    recipe entries, where present, must be objects."""
    read = device.read_manifest(path, content)
    training = read.get("training") or {}
    for key, entry in ((DETECTOR_KEY, read.get(DETECTOR_KEY)), ("training", training),
                       ("training.recipe", isinstance(training, dict) and training.get("recipe"))):
        if not isinstance(entry or {}, dict):
            raise BenchmarkError(f"--manifest={path}: {key!r} must be an object, got "
                                 f"{entry!r:.80}; export the model again with "
                                 "python -m kws.export")
    return read


def recommended(model_content: bytes, manifest: dict) -> dict:
    """The manifest's recommended detector settings when they were measured with this
    model file (by its sha256), else none."""
    chosen = manifest.get(DETECTOR_KEY) or {}
    measured = manifest.get("files", {}).get(str(chosen.get("model")), {}).get("sha256")
    return chosen if measured == hashlib.sha256(model_content).hexdigest() else {}


def default_reset_every_s(manifest: dict) -> float:
    """A streaming model's reset period when neither flag nor manifest says: never for a
    gru trained with ``--carried_state_ms``, whose state holds for hours
    (docs/measurements/carried-state/), else ``RESET_EVERY_S``."""
    recipe = (manifest.get("training") or {}).get("recipe") or {}
    return 0.0 if recipe.get("carried_state_ms") else RESET_EVERY_S


def recommended_settings(advice: dict) -> DetectorSettings:
    """The posterior rule a manifest recommends (``recommended``), the defaults where it
    says nothing."""
    return DetectorSettings(
        threshold=advice.get("threshold", DetectorSettings.threshold),
        keyword_thresholds=tuple((advice.get("keyword_thresholds") or {}).items()),
        **{key: advice.get(key, getattr(DetectorSettings, key))
           for key in ("average_window_s", "minimum_count", "suppression_s")})


def settings_from(args: argparse.Namespace, recommended: DetectorSettings) -> DetectorSettings:
    """The flags; where a flag is unset, the ``recommended`` setting (``recommended_settings``:
    the manifest's, else the default)."""
    changed = {key: getattr(args, flag) / scale
               for flag, key, scale in (("average_window_ms", "average_window_s", 1000),
                                        ("minimum_count", "minimum_count", 1),
                                        ("suppression_ms", "suppression_s", 1000))
               if getattr(args, flag) is not None}
    # One number for every keyword sets them all; label:value pairs change those keywords
    # and leave the others as recommended.
    every, own = args.threshold or (None, {})
    if every is None:
        every, own = recommended.threshold, {**dict(recommended.keyword_thresholds), **own}
    return dataclasses.replace(recommended, threshold=every,
                               keyword_thresholds=tuple(own.items()), **changed)


def detect(args: argparse.Namespace, out=sys.stdout) -> dict:
    model_path = Path(args.model)
    content = device.read_model(model_path)
    manifest_path = Path(args.manifest) if args.manifest else model_path.parent / device.MANIFEST
    manifest = read_manifest(manifest_path, content)
    advice = recommended(content, manifest)
    advised = recommended_settings(advice)
    settings = settings_from(args, advised)
    # A wrong label is named where it came from: the manifest's detector or the flag.
    for source, checked in ((f"{manifest_path} ({DETECTOR_KEY})", advised),
                            ("--threshold", settings)):
        try:
            check_thresholds(checked, list(manifest["labels"]))
        except BenchmarkError as error:
            raise BenchmarkError(f"{source}: {error}") from None
    features = manifest["features"]
    rate = features["sample_rate"]
    live = args.audio == "-"
    chunk = features["hop_samples"] * 10  # 100 ms
    chunks = pcm_chunks(sys.stdin.buffer, chunk) if live else \
        wav_chunks(device.read_wav(Path(args.audio), rate), chunk)
    # Bad audio fails before the model loads; live, the model waits for the first audio.
    first = next(chunks, None)
    if first is None:
        raise BenchmarkError("standard input: no audio arrived (expected raw 16-bit mono PCM "
                             f"at {rate} Hz)")
    model = device.SignatureModel(content, num_threads=args.num_threads)
    window_stride_ms = args.window_stride_ms or advice.get("window_stride_ms") or \
        WINDOW_STRIDE_MS
    reset_every_s = args.reset_every_s if args.reset_every_s is not None else \
        advice.get("reset_every_s", default_reset_every_s(manifest))
    detector = Detector(model, manifest, settings, window_stride_ms, reset_every_s)
    detections, samples_seen, arrivals, compute = [], 0, [], 0.0
    for samples, arrived in itertools.chain([first], _until_interrupted(chunks),
                                            [(None, None)]):
        if samples is not None:
            samples_seen += len(samples)
            arrivals.append((samples_seen / rate, arrived))
        start = time.perf_counter()
        found = detector.push(samples)
        compute += time.perf_counter() - start
        for detection in found:
            detections.append(detection)
            line = f"{detection.time_s:9.2f} s  {detection.label}  {detection.score:.3f}"
            if live:
                heard = next((wall for end, wall in arrivals if end >= detection.time_s),
                             arrivals[-1][1])
                line += f"  ({1000 * (time.time() - heard):.0f} ms after the audio)"
            print(line, file=out, flush=True)
        if live:  # only the arrivals a later detection can still name
            arrivals = arrivals[-20:]
    audio_s = samples_seen / rate
    return {
        "model": str(model_path), "audio": args.audio, "audio_seconds": audio_s,
        "settings": {**dataclasses.asdict(settings),
                     "keyword_thresholds": dict(settings.keyword_thresholds)},
        "window_stride_ms": None if model.is_streaming else window_stride_ms,
        "reset_every_s": reset_every_s if model.is_streaming else None,
        "recommended_settings_used": bool(advice),
        "detections": [dataclasses.asdict(d) for d in detections],
        "compute_seconds": compute, "real_time_factor": compute / audio_s if audio_s else None,
    }


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _thresholds(text: str) -> tuple[float | None, dict[str, float]]:
    """``0.9``, ``yes:0.95,no:0.9`` or both (``0.9,yes:0.95``): one threshold for every
    keyword and those of single keywords."""
    every, own = None, {}
    for item in text.split(","):
        label, _, value = item.rpartition(":")
        try:
            threshold = _probability(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{item!r} is neither a threshold (0.9) nor label:threshold (yes:0.95)") from None
        if not label:
            every = threshold
        else:
            own[label] = threshold
    return every, own


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", help="a WAV file (any rate and channels), or - for raw 16-bit "
                        "little-endian mono PCM at the model's rate on standard input")
    parser.add_argument("--model", required=True, help="a .tflite file made by kws.export: "
                        "gru_int8_stream.tflite (streaming) or gru_int8.tflite (window)")
    parser.add_argument("--manifest", help="manifest.json of the export (default: beside MODEL)")
    parser.add_argument("--threshold", type=_thresholds, default=None,
                        help="averaged score a keyword must reach: one for every keyword "
                        "(0.9), or label:value for single keywords (yes:0.95,no:0.9), or "
                        "both (default: the manifest's recommended ones, else "
                        f"{DetectorSettings.threshold})")
    parser.add_argument("--average_window_ms", type=_positive_float,
                        help="scores are averaged over this window (default: recommended, "
                        f"else {1000 * DetectorSettings.average_window_s:g})")
    parser.add_argument("--minimum_count", type=device._positive,
                        help="fewest results in the window for a detection (default: "
                        f"recommended, else {DetectorSettings.minimum_count})")
    parser.add_argument("--suppression_ms", type=_non_negative_float,
                        help="after a detection, quiet until the score falls below the "
                        "threshold and this long more (default: recommended, else "
                        f"{1000 * DetectorSettings.suppression_s:g})")
    parser.add_argument("--window_stride_ms", type=_positive_float,
                        help="a window model runs on the last second this often (default: "
                        f"recommended, else {WINDOW_STRIDE_MS:g})")
    parser.add_argument("--reset_every_s", type=_non_negative_float,
                        help="a streaming model: reset its state this often, in two staggered "
                        "streams; 0 never (default: recommended, else never for a model "
                        f"trained with --carried_state_ms, {RESET_EVERY_S:g} for others)")
    parser.add_argument("--num_threads", type=device._positive, default=1,
                        help="interpreter threads")
    parser.add_argument("--benchmark", action="store_true",
                        help="at the end, print the real-time factor: compute time of front "
                        "end, model and detector per second of audio")
    parser.add_argument("--json", help="also write the detections and settings to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        result = detect(args)
        if args.benchmark and result["real_time_factor"] is not None:
            print(f"real-time factor: {result['real_time_factor']:.4f} "
                  f"({1000 * result['real_time_factor']:.1f} ms of compute per second of "
                  f"audio, {result['audio_seconds']:.1f} s of audio, {args.num_threads} "
                  "thread(s))")
        if args.json:
            device.write_json(Path(args.json), result)
    except BenchmarkError as error:
        print(f"detect: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before any audio arrived
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
