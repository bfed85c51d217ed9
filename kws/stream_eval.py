"""Measures an export's detector on long streams: ``python -m kws.stream_eval``.

Builds two streams from one split of a labelled folder (its test split by default), as
TensorFlow's ``generate_streaming_test_wav.py`` does, seeded:

- keywords: a word in every 3 s slot at a random offset, 70 % keywords and 30 % other words,
  background noise from ``_background_noise_/`` throughout at a random level per slot;
- negatives: another word (never a keyword) every 1.5 s at a random offset, noise
  throughout, for ``--negative_hours`` (a small split's clips repeat, each time at a new
  offset and noise level).

The detector of ``tools/detect.py`` (the same code) runs on both, with the window model and
the streaming model (state carried for the whole stream, and reset in two staggered
streams). Detections are scored as TensorFlow's ``accuracy_utils.py`` does: a detection
within ``--tolerance_ms`` of a keyword of its label (from its start to that long after its
end) is a hit, once per keyword; every other detection is a false accept, a second firing on
one word included. Over thresholds 0.01 to 0.999 that gives the miss rate on the keywords
stream against false accepts per hour of the negatives stream (a DET curve).
Each false accept is put down to the other word spoken last before it, so the report says
which words the model takes for a keyword (for ``kws.train --unknown_word_weights``), and
which recordings: a small split's clips repeat in the negatives stream, so one recording the
model takes for a keyword can fire each time it is played.

Writes ``stream_eval.json``, ``stream_eval.md``, ``det.png`` and the streams (WAV and
label lists) to ``--output_dir``; ``--write_threshold`` records the operating point of the
best detector at ``--false_accepts_per_hour`` in the export's manifest, where
``tools/detect.py`` takes its default thresholds from. At each operating point it also
finds a threshold per keyword (``keyword_operating_points``), and it measures the
manifest's detector as it stands, so settings chosen on one split (``--split=validation
--write_threshold``) can be checked on another.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

from kws import benchmark_tflite as device
from kws import detect, fileio
from kws.config import FrontEnd
from kws.errors import InputError, describe_os_error

KEYWORD_SLOT_S = 3.0
NEGATIVE_SLOT_S = 1.5
KEYWORD_SHARE = 0.7
# Steps of 0.01, and of 0.001 above 0.9: under label smoothing the top scores sit just
# below 1 - smoothing (0.92 for five classes), where the fewest false accepts are.
THRESHOLDS = np.union1d(np.round(np.arange(1, 90) / 100, 2),
                        np.round(np.arange(900, 1000) / 1000, 3))
# Defaults of the command, also taken by tools/reference_export.py.
NEGATIVE_HOURS = 2.0
KEYWORD_REPEATS = 4
NOISE_VOLUME = 0.1
TOLERANCE_S = 0.75
DETECTOR = detect.DetectorSettings()  # frozen: safe as a default argument
REPORTED_RATES = (0.5, 1.0, 10.0)  # false accepts per hour of the operating points shown
STREAM_FILE = "gru_int8_stream.tflite"
WINDOW_FILE = "gru_int8.tflite"


@dataclasses.dataclass(frozen=True)
class Word:
    """One clip in a stream: the word spoken, where, and which recording it is."""

    label: str
    start_s: float
    end_s: float
    recording: str = ""


@dataclasses.dataclass(frozen=True)
class Stream:
    """Audio at the model's rate and the words in it."""

    samples: np.ndarray
    words: tuple[Word, ...]
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def build_stream(clips: list[np.ndarray], labels: list[str], slot_s: float, slots: int,
                 background: tuple[np.ndarray, ...], noise_volume: float, sample_rate: int,
                 rng: np.random.Generator, recordings: list[str] | None = None) -> Stream:
    """``slots`` slots of ``slot_s`` seconds, each holding one of ``clips`` (in the given
    order, repeating) at a random offset, over background noise at a random volume per
    slot (up to ``noise_volume``; none without recordings). ``recordings`` names each clip
    for the report."""
    recordings = recordings or [""] * len(clips)
    slot = round(slot_s * sample_rate)
    samples = np.zeros(slot * slots, np.float32)
    words = []
    for index in range(slots):
        clip = clips[index % len(clips)]
        start = index * slot + int(rng.integers(0, slot - len(clip) + 1))
        samples[start : start + len(clip)] += clip
        words.append(Word(labels[index % len(clips)], start / sample_rate,
                          (start + len(clip)) / sample_rate, recordings[index % len(clips)]))
        if background:
            recording = background[rng.integers(len(background))]
            at = int(rng.integers(0, max(1, len(recording) - slot + 1)))
            noise = recording[at : at + slot]
            samples[index * slot : index * slot + len(noise)] += \
                noise * rng.uniform(0, noise_volume)
    return Stream(np.clip(samples, -1, 1), tuple(words), sample_rate)


def test_streams(clips: np.ndarray, labels: list[str], keywords: list[str],
                 background: tuple[np.ndarray, ...], negative_hours: float,
                 keyword_repeats: int, noise_volume: float, sample_rate: int,
                 seed: int, max_keyword_clips: int = 0,
                 recordings: list[str] | None = None) -> dict[str, Stream]:
    """The keywords stream (each keyword clip ``keyword_repeats`` times, shuffled, with
    other words in 30 % of the slots; at most ``max_keyword_clips`` of them when not 0)
    and the negatives stream; ``recordings`` names each clip for the report."""
    rng = np.random.default_rng(seed)
    recordings = recordings or [""] * len(clips)
    is_keyword = np.array([label in keywords for label in labels])
    keyword_clips, other_clips = np.flatnonzero(is_keyword), np.flatnonzero(~is_keyword)
    if not len(keyword_clips):
        raise InputError(f"no clips of the keywords {', '.join(keywords)} in the split")
    if not len(other_clips):
        raise InputError("no clips of other words in the split for the negatives stream "
                         "(the data needs word folders besides the keywords)")
    if max_keyword_clips:
        keyword_clips = rng.permutation(keyword_clips)[:max_keyword_clips]
    chosen = np.tile(keyword_clips, keyword_repeats)
    others = round(len(chosen) * (1 - KEYWORD_SHARE) / KEYWORD_SHARE)
    chosen = rng.permutation(np.concatenate([chosen, rng.choice(other_clips, others)]))
    streams = {"keywords": build_stream([clips[i] for i in chosen], [labels[i] for i in chosen],
                                        KEYWORD_SLOT_S, len(chosen), background, noise_volume,
                                        sample_rate, rng, [recordings[i] for i in chosen])}
    slots = round(negative_hours * 3600 / NEGATIVE_SLOT_S)
    chosen = np.concatenate([rng.permutation(other_clips)
                             for _ in range(-(-slots // len(other_clips)))])[:slots]
    streams["negatives"] = build_stream([clips[i] for i in chosen],
                                        [labels[i] for i in chosen], NEGATIVE_SLOT_S, slots,
                                        background, noise_volume, sample_rate, rng,
                                        [recordings[i] for i in chosen])
    return streams


def score_series(model: device.SignatureModel, manifest: dict, stream: Stream,
                 window_stride_ms: float, reset_every_s: float,
                 chunk_s: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Times and class scores of the detector's model over the whole stream."""
    detector = detect.Detector(model, manifest, detect.DetectorSettings(), window_stride_ms,
                               reset_every_s)
    chunk = round(chunk_s * stream.sample_rate)
    parts = [detector.scores(stream.samples[start : start + chunk])
             for start in range(0, len(stream.samples), chunk)] + [detector.scores(None)]
    return np.concatenate([t for t, _ in parts]), np.concatenate([s for _, s in parts])


def match(detections: list[detect.Detection], words: tuple[Word, ...], keywords: list[str],
          tolerance_s: float) -> tuple[int, int]:
    """Hits and false accepts: a detection hits the first keyword of its label, not yet hit,
    that it falls within (start to end + ``tolerance_s``); anything else is a false accept."""
    targets = [word for word in words if word.label in keywords]
    starts = np.array([word.start_s for word in targets])
    longest = max((word.end_s - word.start_s for word in targets), default=0.0)
    hit = np.zeros(len(targets), bool)
    false_accepts = 0
    for detection in detections:
        first = np.searchsorted(starts, detection.time_s - longest - tolerance_s)
        last = np.searchsorted(starts, detection.time_s, side="right")
        index = next((i for i in range(first, last) if not hit[i]
                      and targets[i].label == detection.label
                      and detection.time_s <= targets[i].end_s + tolerance_s), None)
        if index is None:
            false_accepts += 1
        else:
            hit[index] = True
    return int(hit.sum()), false_accepts


def spoken_before(detections: list[detect.Detection], words: tuple[Word, ...]) -> list[Word]:
    """The word spoken last before each detection (the first word for one before it)."""
    starts = np.array([word.start_s for word in words])
    return [words[max(0, int(np.searchsorted(starts, detection.time_s, "right")) - 1)]
            for detection in detections]


def _most_first(keys) -> dict[str, int]:
    return dict(sorted(collections.Counter(keys).items(), key=lambda item: (-item[1], item[0])))


def false_accepts_by(detections: list[detect.Detection],
                     words: tuple[Word, ...]) -> dict[str, dict[str, int]]:
    """False accepts on the negatives stream, most first, by the word spoken last before
    each and the label it was taken for (``"left → yes"``), and by that word's recording
    (``Word.recording``): a recording that fires every time it is played shows as one line."""
    spoken = spoken_before(detections, words)
    return {
        "false_accepts_by_word": _most_first(
            f"{word.label} → {detection.label}"
            for detection, word in zip(detections, spoken, strict=True)),
        "false_accepts_by_recording": _most_first(word.recording for word in spoken),
    }


Averaged = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # stream: times, scores, counts


def averaged_series(series: dict[str, tuple[np.ndarray, np.ndarray]],
                    base: detect.DetectorSettings) -> Averaged:
    """Each stream's scores averaged as the detector averages them."""
    return {name: (times, *detect.Smoother(base.average_window_s).push(times, scores))
            for name, (times, scores) in series.items()}


def measure_point(averaged: Averaged, streams: dict[str, Stream], labels: list[str],
                  keywords: list[str], settings: detect.DetectorSettings,
                  tolerance_s: float) -> dict:
    """Miss rate (of ``keywords``, on the keywords stream) and false accepts per hour (on
    the negatives stream) of the detector with ``settings``."""
    found = {name: detect.Decider(labels, settings).push(*averaged[name]) for name in averaged}
    hits, keyword_stream_false = match(found["keywords"], streams["keywords"].words, keywords,
                                       tolerance_s)
    keyword_count = sum(word.label in keywords for word in streams["keywords"].words)
    negatives = len(found["negatives"])
    return {
        "threshold": settings.threshold,
        "hits": hits,
        "miss_rate": 1 - hits / keyword_count,
        "false_accepts_per_hour": negatives / (streams["negatives"].seconds / 3600),
        "negatives_false_accepts": negatives,
        "keywords_stream_false_accepts": keyword_stream_false,
        **false_accepts_by(found["negatives"], streams["negatives"].words),
    }


def det_curve(averaged: Averaged, streams: dict[str, Stream], labels: list[str],
              keywords: list[str], base: detect.DetectorSettings,
              tolerance_s: float) -> list[dict]:
    """Miss rate and false accepts per hour at each threshold of ``THRESHOLDS``."""
    return [measure_point(averaged, streams, labels, keywords,
                          dataclasses.replace(base, threshold=float(threshold)), tolerance_s)
            for threshold in THRESHOLDS]


def keyword_operating_points(averaged: Averaged, streams: dict[str, Stream],
                             labels: list[str], keywords: list[str],
                             base: detect.DetectorSettings, tolerance_s: float,
                             rates: tuple[float, ...]) -> dict[str, dict | None]:
    """At each false-accept rate of ``rates``, the fewest misses when each keyword has a
    threshold of its own (None where no thresholds get there).

    Each keyword alone is swept over ``THRESHOLDS`` (its hits on its own keywords, its
    false accepts); a knapsack over the keywords gives the thresholds that find the most
    keywords for each number of false accepts spent, and each of those is measured with
    all keywords together, since one keyword's score can hold the detector from re-arming
    for another: a rate gets the best measured point within it."""
    options = []  # per keyword: (false accepts, hits, threshold) at each threshold
    for keyword in keywords:
        alone = []
        for threshold in THRESHOLDS:
            settings = dataclasses.replace(base, threshold=np.inf,
                                           keyword_thresholds=((keyword, float(threshold)),))
            point = measure_point(averaged, streams, labels, [keyword], settings, tolerance_s)
            alone.append((point["negatives_false_accepts"], point["hits"], float(threshold)))
        options.append(alone)
    hours = streams["negatives"].seconds / 3600
    budget = int(np.floor(max(rates) * hours + 1e-9))
    # False accepts spent -> the most hits and their thresholds (higher thresholds win ties).
    best: dict[int, tuple[int, tuple[float, ...]]] = {0: (0, ())}
    for alone in options:
        grown: dict[int, tuple[int, tuple[float, ...]]] = {}
        for used, (hits, chosen) in best.items():
            for false_accepts, keyword_hits, threshold in alone:
                total = used + false_accepts
                candidate = (hits + keyword_hits, (*chosen, threshold))
                if total <= budget and (total not in grown or candidate > grown[total]):
                    grown[total] = candidate
        best = grown
    measured = []
    for _, chosen in sorted(best.values(), reverse=True):
        thresholds = dict(zip(keywords, chosen, strict=True))
        settings = dataclasses.replace(base, keyword_thresholds=tuple(thresholds.items()))
        point = measure_point(averaged, streams, labels, keywords, settings, tolerance_s)
        measured.append({**point, "threshold": None, "keyword_thresholds": thresholds})
    # Fewest misses within the rate; then the fewest false accepts.
    return {str(rate): min((point for point in measured
                            if point["false_accepts_per_hour"] <= rate),
                           key=lambda p: (p["miss_rate"], p["false_accepts_per_hour"]),
                           default=None)
            for rate in rates}


def operating_point(points: list[dict], per_hour: float) -> dict | None:
    """The point of fewest misses with at most ``per_hour`` false accepts (lowest threshold
    among ties), or None when no threshold gets there."""
    allowed = [point for point in points if point["false_accepts_per_hour"] <= per_hour]
    return min(allowed, key=lambda p: (p["miss_rate"], p["threshold"])) if allowed else None


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of running the detector's model."""

    name: str
    file: str
    window_stride_ms: float = 0.0
    reset_every_s: float = 0.0

    @property
    def key(self) -> tuple[str, float, float]:
        """What the model's scores depend on: variants with one key share their series."""
        return self.file, self.window_stride_ms, self.reset_every_s


def variants(reset_every_s: float, window_stride_ms: float) -> list[Variant]:
    return [
        Variant("stream, state never reset", STREAM_FILE),
        Variant(f"stream, reset every {reset_every_s:g} s (two staggered)", STREAM_FILE,
                reset_every_s=reset_every_s),
        Variant(f"window every {window_stride_ms:g} ms", WINDOW_FILE,
                window_stride_ms=window_stride_ms),
    ]


def variant_series(variant: Variant, export_dir: Path, manifest: dict,
                   streams: dict[str, Stream]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The times and class scores of ``variant``'s model over each stream."""
    model = device.SignatureModel(export_dir / variant.file)
    return {name: score_series(model, manifest, stream, variant.window_stride_ms,
                               variant.reset_every_s)
            for name, stream in streams.items()}


def evaluate_variant(variant: Variant, series: dict[str, tuple[np.ndarray, np.ndarray]],
                     manifest: dict, streams: dict[str, Stream], base: detect.DetectorSettings,
                     tolerance_s: float, rates: tuple[float, ...]) -> dict:
    """The DET curve of one threshold for every keyword, and the operating points at
    ``rates`` false accepts per hour with it and with a threshold per keyword."""
    labels = list(manifest["labels"])
    keywords = [labels[index] for index in device.keyword_indices(labels)]
    averaged = averaged_series(series, base)
    points = det_curve(averaged, streams, labels, keywords, base, tolerance_s)
    return {**dataclasses.asdict(variant), "points": points,
            "at": {str(rate): operating_point(points, rate) for rate in rates},
            "keyword_thresholds_at": keyword_operating_points(
                averaged, streams, labels, keywords, base, tolerance_s, rates)}


def manifest_detector(export_dir: Path, manifest: dict, streams: dict[str, Stream],
                      series_of: dict[tuple, dict], tolerance_s: float) -> dict | None:
    """The detector the manifest recommends (``tools/detect.py``'s default), measured on
    these streams as it stands: how settings chosen on other streams (another split) do on
    these; None when the manifest recommends none for its model file. ``series_of`` holds
    the series already computed, by ``Variant.key``."""
    model_file = (manifest.get(detect.DETECTOR_KEY) or {}).get("model")
    if not model_file or not (export_dir / model_file).is_file():
        return None
    chosen = detect.recommended((export_dir / model_file).read_bytes(), manifest)
    if not chosen:
        return None
    variant = Variant("the manifest's detector", model_file,
                      window_stride_ms=chosen.get("window_stride_ms") or 0.0,
                      reset_every_s=chosen.get("reset_every_s") or 0.0)
    if variant.key not in series_of:
        series_of[variant.key] = variant_series(variant, export_dir, manifest, streams)
    settings = detect.recommended_settings(chosen)
    labels = list(manifest["labels"])
    keywords = [labels[index] for index in device.keyword_indices(labels)]
    point = measure_point(averaged_series(series_of[variant.key], settings), streams, labels,
                          keywords, settings, tolerance_s)
    return {**point, "detector": chosen}


def plot_det(results: list[dict], path: Path) -> None:
    from kws.report import plt

    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    for result in results:
        points = result["points"]
        line, = axes.plot([max(p["false_accepts_per_hour"], 0.1) for p in points],
                          [100 * p["miss_rate"] for p in points], marker=".",
                          label=result["name"])
        own = [p for p in result["keyword_thresholds_at"].values() if p]
        axes.plot([max(p["false_accepts_per_hour"], 0.1) for p in own],
                  [100 * p["miss_rate"] for p in own], "x", color=line.get_color(),
                  markersize=8)
    axes.set_xscale("log")
    axes.set_xlabel("false accepts per hour (negatives stream; 0 drawn at 0.1)")
    axes.set_ylabel("keywords missed (%)")
    axes.set_title("Miss rate against false accepts, thresholds 0.01 to 0.999\n"
                   "(x: a threshold per keyword, at the operating points)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with fileio.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120)
    plt.close(figure)


def thresholds_text(point: dict) -> str:
    """A point's threshold, or its thresholds per keyword (``yes 0.9, no 0.8``)."""
    if point.get("keyword_thresholds"):
        return ", ".join(f"{label} {value:g}" for label, value in
                         point["keyword_thresholds"].items())
    return f"{point['threshold']:g}"


def _point(point: dict | None) -> str:
    if point is None:
        return "not reached"
    return (f"{100 * point['miss_rate']:.1f} % missed at threshold {thresholds_text(point)} "
            f"({point['false_accepts_per_hour']:.2f}/h)")


def _top(counts: dict[str, int], most: int) -> str:
    return ", ".join(f"{key} {count}" for key, count in list(counts.items())[:most])


def _fired(point: dict, most: int = 6) -> str:
    fired = point["false_accepts_by_word"]
    if not fired:
        return "none"
    return _top(fired, most) + (f" and {len(fired) - most} more" if len(fired) > most else "")


def _recordings(point: dict, most: int = 3) -> str:
    fired = point.get("false_accepts_by_recording", {})
    if not fired:
        return ""
    return (f"; from {len(fired)} recording{'s' * (len(fired) != 1)}, most: "
            + _top(fired, most))


def markdown(summary: dict) -> str:
    streams = summary["streams"]
    lines = [
        f"# Detection on streams: {summary['export_dir']}", "",
        f"`{summary['command']}`", "",
        f"Keywords stream: {streams['keywords']['minutes']:.1f} min, "
        f"{streams['keywords']['keywords']} keywords; negatives stream: "
        f"{streams['negatives']['hours']:.2f} h, {streams['negatives']['words']} other words. "
        f"From the {summary['split']} split of {summary['data_dir']}, seed {summary['seed']}. "
        f"Scores averaged over {1000 * summary['settings']['average_window_s']:.0f} ms, "
        f"at least {summary['settings']['minimum_count']} results, "
        f"{1000 * summary['settings']['suppression_s']:.0f} ms suppression after the score "
        "falls.", "",
        "| detector | at 0.5 false accepts/h | at 1/h | at 10/h | at threshold 0.5 | "
        "real-time factor |",
        "|---|---|---|---|---|---:|",
    ]
    fired = []  # the words behind each detector's false accepts, listed below the table
    for result in summary["variants"]:
        half = next(p for p in result["points"] if p["threshold"] == 0.5)
        ten = result["at"]["10.0"]
        lines.append(
            f"| {result['name']} | {_point(result['at']['0.5'])} | {_point(result['at']['1.0'])}"
            f" | {_point(ten)} | {100 * half['miss_rate']:.1f} % missed, "
            f"{half['false_accepts_per_hour']:.1f}/h | {result['real_time_factor']:.4f} |")
        own = result["keyword_thresholds_at"]
        lines.append(f"| {result['name']}, a threshold per keyword | {_point(own['0.5'])} | "
                     f"{_point(own['1.0'])} | {_point(own['10.0'])} | | |")
        at_ten = f"; at {thresholds_text(ten)}: {_fired(ten)}{_recordings(ten)}" if ten else ""
        fired.append(f"- {result['name']}: {_fired(half)}{at_ten}")
    lines += ["", "Other words that set the detectors off (the word spoken last before each "
              "false accept on the negatives stream → the keyword taken), at threshold 0.5 and "
              "at the operating point of at most 10 false accepts per hour, with the "
              "recordings behind the false accepts there:", "", *fired]
    negatives = streams["negatives"]
    if negatives.get("recordings"):
        lines += ["", f"The negatives stream plays each of its {negatives['recordings']} "
                  f"recordings about {negatives['words'] / negatives['recordings']:.0f} times, "
                  "each time at a new offset and noise level: a recording the model takes for "
                  "a keyword can fire again each time it is played, and a few such recordings "
                  "can decide the threshold at a low rate. The streams' CSV files say where "
                  "each recording is played."]
    lines += ["", "Words that fire often can be drawn more often into `_unknown_` in training "
              "(`python -m kws.train --unknown_word_weights=word:3,...`); check words outside "
              "the training data afterwards, the confusion can move to them "
              "(docs/measurements/hard-negatives.md)."]
    lines += ["", "A threshold per keyword: each keyword swept alone, then the false accepts "
              "allowed spent where they find the most keywords (a knapsack), and the "
              "thresholds chosen measured together. Chosen on these streams, as every "
              "operating point here is; `the manifest's detector` below shows settings "
              "chosen on other streams."]
    if summary.get("recommended"):
        chosen = summary["recommended"]
        lines += ["", f"Recommended: {chosen['model']} at threshold {thresholds_text(chosen)} "
                  f"({100 * chosen['miss_rate']:.1f} % missed, "
                  f"{chosen['false_accepts_per_hour']:.2f} false accepts per hour)."]
    if summary.get("manifest_detector"):
        measured = summary["manifest_detector"]
        lines += ["", f"The manifest's detector ({measured['detector']['model']} at threshold "
                  f"{thresholds_text(measured['detector'])}, chosen on the "
                  f"{measured['detector'].get('split', '?')} split's streams by "
                  f"`{measured['detector'].get('measured_by', '?')}`) on these streams: "
                  f"{100 * measured['miss_rate']:.1f} % missed, "
                  f"{measured['false_accepts_per_hour']:.2f} false accepts per hour."]
    return "\n".join(lines) + "\n"


def write_threshold(export_dir: Path, manifest: dict, recommended: dict | None) -> None:
    """Records the recommended detector in the export's manifest, or with ``None`` removes
    the one there (the manifest written whole, renamed)."""
    manifest = {key: value for key, value in manifest.items() if key != detect.DETECTOR_KEY}
    if recommended is not None:
        manifest[detect.DETECTOR_KEY] = recommended
    fileio.write_text_atomic(export_dir / device.MANIFEST, json.dumps(manifest, indent=2) + "\n")


def stream_eval(export_dir: Path, data_dir: Path, output_dir: Path, command: str,
                split: str = "testing", negative_hours: float = NEGATIVE_HOURS,
                keyword_repeats: int = KEYWORD_REPEATS, max_keyword_clips: int = 0,
                noise_volume: float = NOISE_VOLUME, seed: int = 0,
                base: detect.DetectorSettings = DETECTOR,
                tolerance_s: float = TOLERANCE_S, reset_every_s: float = detect.RESET_EVERY_S,
                window_stride_ms: float = detect.WINDOW_STRIDE_MS,
                false_accepts_per_hour: float = 1.0, save_streams: bool = True) -> dict:
    from kws.audio import write_wav
    from kws.data.folder import load_background
    from kws.evaluate import load_evaluation_clips

    if not (export_dir / device.MANIFEST).is_file():
        raise InputError(f"--export_dir={export_dir}: no {device.MANIFEST} (export a model "
                         "with python -m kws.export)")
    manifest = json.loads((export_dir / device.MANIFEST).read_text())
    front_end = FrontEnd.from_dict(manifest)
    # Words by their folder's name, so that the streams' lists and the false accepts say
    # which other word was spoken.
    clips, _, _, labels = load_evaluation_clips(data_dir, front_end, split)
    keywords = [front_end.labels[index] for index in device.keyword_indices(front_end.labels)]
    background = load_background(data_dir, front_end.features, [])
    # Word, speaker and place in the split: enough to find the file and listen to it.
    recordings = [f"{label}/{speaker} #{index}" if speaker else f"{label} #{index}"
                  for index, (label, speaker) in enumerate(zip(labels, clips.speakers,
                                                               strict=True))]
    streams = test_streams(list(clips.clips), list(labels), keywords, background, negative_hours,
                           keyword_repeats, noise_volume, front_end.features.sample_rate, seed,
                           max_keyword_clips, recordings)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, stream in streams.items() if save_streams else ():
        with fileio.atomic_path(output_dir / f"{name}.wav") as tmp:
            write_wav(tmp, stream.samples, stream.sample_rate)
        fileio.write_text_atomic(
            output_dir / f"{name}.csv", "label,start_s,end_s,recording\n" + "".join(
                f"{w.label},{w.start_s:.4f},{w.end_s:.4f},{w.recording}\n"
                for w in stream.words))
    results, series_of = [], {}
    audio_s = sum(stream.seconds for stream in streams.values())
    rates = tuple(sorted({*REPORTED_RATES, false_accepts_per_hour}))
    for variant in variants(reset_every_s, window_stride_ms):
        print(f"Running the detector: {variant.name} ...", flush=True)
        start = time.perf_counter()
        series_of[variant.key] = variant_series(variant, export_dir, manifest, streams)
        seconds = time.perf_counter() - start
        result = evaluate_variant(variant, series_of[variant.key], manifest, streams, base,
                                  tolerance_s, rates)
        result["real_time_factor"] = seconds / audio_s
        results.append(result)
    measured_manifest_detector = manifest_detector(export_dir, manifest, streams, series_of,
                                                   tolerance_s)
    recommended = None
    # Fewest misses at the rate, with one threshold or one per keyword (one wins ties).
    reached = [(result, point, kind) for result in results
               for kind, point in enumerate((result["at"][str(false_accepts_per_hour)],
                                             result["keyword_thresholds_at"][
                                                 str(false_accepts_per_hour)]))
               if point]
    if reached:
        result, point, _ = min(reached, key=lambda item: (item[1]["miss_rate"], item[2]))
        keyword_thresholds = point.get("keyword_thresholds") or {}
        recommended = {"model": result["file"],
                       # Every keyword has its own, or none has: the fallback is never used.
                       "threshold": point["threshold"] if point["threshold"] is not None
                       else max(keyword_thresholds.values()),
                       "keyword_thresholds": keyword_thresholds,
                       "reset_every_s": result["reset_every_s"],
                       "window_stride_ms": result["window_stride_ms"],
                       "average_window_s": base.average_window_s,
                       "minimum_count": base.minimum_count, "suppression_s": base.suppression_s,
                       "miss_rate": point["miss_rate"],
                       "false_accepts_per_hour": point["false_accepts_per_hour"],
                       "split": split, "measured_by": command}
    summary = {
        "command": command, "export_dir": str(export_dir), "data_dir": str(data_dir),
        "split": split, "seed": seed, "settings": dataclasses.asdict(base),
        "tolerance_s": tolerance_s,
        "streams": {
            "keywords": {"minutes": streams["keywords"].seconds / 60,
                         "keywords": sum(w.label in keywords for w in streams["keywords"].words),
                         "other_words": sum(w.label not in keywords
                                            for w in streams["keywords"].words)},
            "negatives": {"hours": streams["negatives"].seconds / 3600,
                          "words": len(streams["negatives"].words),
                          "recordings": len({w.recording for w in streams["negatives"].words})},
        },
        "variants": results, "recommended": recommended,
        "manifest_detector": measured_manifest_detector,
    }
    fileio.write_text_atomic(output_dir / "stream_eval.json", json.dumps(summary, indent=2) + "\n")
    fileio.write_text_atomic(output_dir / "stream_eval.md", markdown(summary))
    plot_det(results, output_dir / "det.png")
    return summary


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        sys.exit(f"kws.stream_eval: error: unexpected arguments {argv[1:]}")
    try:
        base = detect.DetectorSettings(average_window_s=_AVERAGE_WINDOW_MS.value / 1000,
                                       minimum_count=_MINIMUM_COUNT.value,
                                       suppression_s=_SUPPRESSION_MS.value / 1000)
        export_dir = Path(_EXPORT_DIR.value)
        summary = stream_eval(
            export_dir, Path(_DATA_DIR.value), Path(_OUTPUT_DIR.value),
            "python -m kws.stream_eval " + " ".join(sys.argv[1:]), _SPLIT.value,
            _NEGATIVE_HOURS.value, _KEYWORD_REPEATS.value, _MAX_KEYWORD_CLIPS.value,
            _NOISE_VOLUME.value, _SEED.value, base, _TOLERANCE_MS.value / 1000,
            _RESET_EVERY_S.value, _WINDOW_STRIDE_MS.value, _FALSE_ACCEPTS_PER_HOUR.value,
            _SAVE_STREAMS.value)
        if _WRITE_THRESHOLD.value:
            if summary["recommended"] is None:
                raise InputError(f"no detector reached {_FALSE_ACCEPTS_PER_HOUR.value} false "
                                 "accepts per hour; the manifest is left as it was")
            write_threshold(export_dir, json.loads((export_dir / device.MANIFEST).read_text()),
                            summary["recommended"])
    except (InputError, device.BenchmarkError) as error:
        sys.exit(f"kws.stream_eval: error: {error}")
    except OSError as error:
        sys.exit(f"kws.stream_eval: error: {describe_os_error(error)}")
    print(markdown(summary))
    print(f"Written to {_OUTPUT_DIR.value}/ (stream_eval.json, stream_eval.md, det.png, "
          "keywords.wav/.csv, negatives.wav/.csv)")


if __name__ == "__main__":
    _EXPORT_DIR = flags.DEFINE_string("export_dir", "export", "The export to measure: its "
                                      f"{STREAM_FILE}, {WINDOW_FILE} and manifest.json.")
    _DATA_DIR = flags.DEFINE_string("data_dir", "../shared/data/mini_speech_commands",
                                    "Labelled clips, DATA_DIR/<word>/*.wav, with "
                                    "_background_noise_/ for the noise.")
    _OUTPUT_DIR = flags.DEFINE_string("output_dir", "stream_eval", "Where the results and "
                                      "the streams go.")
    _SPLIT = flags.DEFINE_enum("split", "testing", ["all", "training", "validation", "testing"],
                               "Which clips of --data_dir the streams are built from.")
    _NEGATIVE_HOURS = flags.DEFINE_float(
        "negative_hours", NEGATIVE_HOURS, "Length of the negatives stream.", lower_bound=0.01)
    _KEYWORD_REPEATS = flags.DEFINE_integer(
        "keyword_repeats", KEYWORD_REPEATS, "Times each keyword clip is heard in the keywords "
        "stream (each at a new offset and noise).", lower_bound=1)
    _MAX_KEYWORD_CLIPS = flags.DEFINE_integer(
        "max_keyword_clips", 0, "Use at most this many keyword clips, drawn with --seed (0: "
        "all; fewer for a quick look).", lower_bound=0)
    _NOISE_VOLUME = flags.DEFINE_float(
        "noise_volume", NOISE_VOLUME, "Background noise volume, drawn up to this per slot (1 = "
        "as recorded).", lower_bound=0)
    _SEED = flags.DEFINE_integer("seed", 0, "Seed of the streams.")
    _AVERAGE_WINDOW_MS = flags.DEFINE_float(
        "average_window_ms", 1000 * detect.DetectorSettings.average_window_s,
        "Scores are averaged over this window.", lower_bound=1)
    _MINIMUM_COUNT = flags.DEFINE_integer(
        "minimum_count", detect.DetectorSettings.minimum_count,
        "Fewest results in the window for a detection.", lower_bound=1)
    _SUPPRESSION_MS = flags.DEFINE_float(
        "suppression_ms", 1000 * detect.DetectorSettings.suppression_s,
        "Quiet time after the score falls below the threshold.", lower_bound=0)
    _TOLERANCE_MS = flags.DEFINE_float(
        "tolerance_ms", 1000 * TOLERANCE_S, "A detection this long after a keyword's end "
        "still hits it.", lower_bound=0)
    _RESET_EVERY_S = flags.DEFINE_float("reset_every_s", detect.RESET_EVERY_S, "State reset "
                                        "period of the staggered streaming detector.",
                                        lower_bound=0.1)
    _WINDOW_STRIDE_MS = flags.DEFINE_float("window_stride_ms", detect.WINDOW_STRIDE_MS,
                                           "How often the window model runs.", lower_bound=10)
    _FALSE_ACCEPTS_PER_HOUR = flags.DEFINE_float(
        "false_accepts_per_hour", 1.0, "The operating point recommended: fewest misses with "
        "at most this many false accepts per hour, with one threshold or one per keyword.",
        lower_bound=0)
    _SAVE_STREAMS = flags.DEFINE_bool("save_streams", True, "Also write the streams (WAV) "
                                      "and their word lists (CSV) to --output_dir.")
    _WRITE_THRESHOLD = flags.DEFINE_bool("write_threshold", False, "Record the recommended "
                                         "detector in the export's manifest.json.")
    app.run(main)
