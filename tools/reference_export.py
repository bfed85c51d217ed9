#!/usr/bin/env python3
"""Makes export/, the keyword spotter the project ships, and records how: ``make
reference-export``.

Trains the gru on the real voices of ``mini_speech_commands`` (yes, no, up, with
``_silence_`` and ``_unknown_``) by ``python -m kws.train`` with the flags below, copies
its TFLite files and manifest into ``export/``, and measures each file on the device
runtime with the device's own front end (``tools/benchmark_tflite.py``):

- recall of every class on the test speakers of ``testing_list.txt``, the clips of the
  data's other words counting as ``_unknown_``;
- the share of those other words' clips called a keyword;
- the share of clips of words no run ever heard (the words of the Speech Commands sample
  that are not in the training data) called a keyword;
- the detector on long streams (``kws.stream_eval``): its settings (the model, a
  threshold per keyword) chosen at ``FALSE_ACCEPTS_PER_HOUR`` on streams of the
  validation speakers and recorded in the manifest, then measured on streams of the test
  speakers, which chose nothing; the DET curves of both in
  ``docs/measurements/stream-eval/``.

``export/reference.json`` and ``export/reference.md`` keep the command, the commit, the
date, each file's sha256 and these figures. A finished run folder (``--run_dir``) is not
trained again: kws.train finds it finished and exports it. ``--streams_only`` measures
the streams of the shipped ``export/`` again and changes nothing else.

    python tools/reference_export.py --run_dir=export/runs/reference
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from kws import benchmark_tflite, fileio, stream_eval  # noqa: E402  (after the path is set)
from kws.errors import InputError, describe_os_error  # noqa: E402
from kws.export import MANIFEST  # noqa: E402
from kws.provenance import git_commit  # noqa: E402

DATA = Path("..") / "shared" / "data"  # relative to the project: the manifest keeps it so
TRAINING_DATA = DATA / "mini_speech_commands"
UNSEEN_WORDS_DATA = DATA / "speech_commands_v0.01_sample"
TRAIN_FLAGS = (f"--data_dir={TRAINING_DATA}", "--wanted_words=yes,no,up", "--models=gru",
               "--unknown_percentage=200", "--synthetic_unknown_words=500",
               "--synthetic_unknown_clips=20", "--unknown_word_weights=left:3,go:3",
               "--synthetic_keyword_clips=1000", "--silence_percentage=50",
               "--best_of_ties=last", "--carried_state_ms=1000", "--seed=1")
MODEL_FILES = ("gru_float32.tflite", "gru_int8.tflite", "gru_int8_stream.tflite")
STREAM_EVAL_DIR = Path("docs") / "measurements" / "stream-eval"
# The recommended operating point: fewest misses with at most this many false accepts per
# hour of nonstop other speech (under one a minute). At 10 per hour the shipped model
# misses most keywords (stream_eval.md has every point).
FALSE_ACCEPTS_PER_HOUR = 50.0


def keyword_share(labels: np.ndarray, predictions: np.ndarray, names: list[str]) -> float:
    """Share of the clips whose prediction is a keyword (not _silence_ or _unknown_)."""
    return float(np.mean(np.isin(predictions, benchmark_tflite.keyword_indices(names))))


def measure(export_dir: Path, manifest: dict) -> dict:
    """Per file: recall per class on the test speakers, and the keyword shares."""
    names = list(manifest["labels"])
    words = {folder.name for folder in (ROOT / TRAINING_DATA).iterdir() if folder.is_dir()}
    testing = benchmark_tflite.read_list(ROOT / TRAINING_DATA / "testing_list.txt")
    test_features, test_labels = benchmark_tflite.labelled_features(
        ROOT / TRAINING_DATA, manifest, testing)
    unseen = {f"{folder.name}/{path.name}"
              for folder in sorted((ROOT / UNSEEN_WORDS_DATA).iterdir())
              if folder.is_dir() and folder.name not in words
              for path in folder.glob("*.wav")}
    unseen_features, _ = benchmark_tflite.labelled_features(ROOT / UNSEEN_WORDS_DATA,
                                                            manifest, unseen)
    unknown = names.index("_unknown_")
    figures = {"unseen_words": sorted({entry.split("/")[0] for entry in unseen}),
               "unseen_clips": len(unseen), "files": {}}
    others = test_labels == unknown
    for name in MODEL_FILES:
        model = benchmark_tflite.SignatureModel(export_dir / name)
        predictions = np.argmax(benchmark_tflite.clip_scores(model, test_features), axis=-1)
        unseen_predictions = np.argmax(benchmark_tflite.clip_scores(model, unseen_features),
                                       axis=-1)
        figures["files"][name] = {
            "test_speakers_recall": benchmark_tflite.recall_per_class(test_labels, predictions,
                                                                      names),
            "other_words_called_keyword": keyword_share(test_labels[others],
                                                        predictions[others], names),
            "unseen_words_called_keyword": keyword_share(
                np.full(len(unseen_predictions), unknown), unseen_predictions, names),
        }
    return figures


def measure_streams(export_dir: Path) -> dict:
    """``kws.stream_eval`` with its defaults, first on the validation speakers, whose
    recommended detector goes into the manifest, then on the test speakers, where that
    detector is measured as chosen; the DET curves go to ``STREAM_EVAL_DIR``."""
    relative = Path(os.path.relpath(export_dir, ROOT))
    chosen = stream_eval.stream_eval(
        relative, TRAINING_DATA, STREAM_EVAL_DIR / "validation",
        "python tools/reference_export.py", split="validation",
        false_accepts_per_hour=FALSE_ACCEPTS_PER_HOUR, save_streams=False)
    # With none recommended, a detector chosen earlier (for other files, or on other
    # streams) goes too: tools/detect.py would otherwise apply what the record disowns.
    stream_eval.write_threshold(export_dir, json.loads((export_dir / MANIFEST).read_text()),
                                chosen["recommended"])
    tested = stream_eval.stream_eval(
        relative, TRAINING_DATA, STREAM_EVAL_DIR, "python tools/reference_export.py",
        false_accepts_per_hour=FALSE_ACCEPTS_PER_HOUR, save_streams=False)
    return {"recommended": chosen["recommended"],
            "recommended_on_test_speakers": tested["manifest_detector"],
            "operating_points": {variant["name"]: {
                "one threshold": variant["at"],
                "a threshold per keyword": variant["keyword_thresholds_at"]}
                for variant in tested["variants"]}}


def remeasure_streams(export_dir: Path, commit: str) -> None:
    """The streams of an export already measured, again: reference.json/.md keep the rest."""
    path = export_dir / "reference.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read the export's record ({error}); make it with "
                         "python tools/reference_export.py") from None
    record["streams"] = measure_streams(export_dir)
    record["streams_measured"] = {"commit": commit, "date": datetime.date.today().isoformat()}
    write_record(export_dir, record)


def write_record(export_dir: Path, record: dict) -> None:
    """``reference.json`` and ``reference.md`` (printed too), each written whole."""
    fileio.write_text_atomic(export_dir / "reference.json", json.dumps(record, indent=2) + "\n")
    text = markdown(record)
    fileio.write_text_atomic(export_dir / "reference.md", text)
    print(text)


def markdown(record: dict) -> str:
    test = next(iter(record["measured"]["files"].values()))["test_speakers_recall"]
    names = [name for name in record["manifest_labels"] if name in test]
    lines = [f"Made by `{record['command']}` at commit {record['commit']} on "
             f"{record['date']}.", "",
             "| file | bytes | " + " | ".join(f"{name} recall" for name in names)
             + " | other words called a keyword | unseen words called a keyword |",
             "|---|---:|" + "---:|" * (len(names) + 2)]
    for name, figures in record["measured"]["files"].items():
        recall = figures["test_speakers_recall"]
        lines.append(
            f"| `{name}` | {record['files'][name]['bytes']:,} | "
            + " | ".join(f"{100 * recall[label]['recall']:.2f} %" for label in names)
            + f" | {100 * figures['other_words_called_keyword']:.2f} % "
            f"| {100 * figures['unseen_words_called_keyword']:.2f} % |")
    lines += ["", "Test speakers' clips per class: " + ", ".join(
        f"{label} {entry['clips']}" for label, entry in test.items())
        + f"; unseen words: {record['measured']['unseen_clips']} clips of "
        + ", ".join(record["measured"]["unseen_words"]) + "."]
    chosen = record["streams"]["recommended"]
    tested = record["streams"]["recommended_on_test_speakers"]
    if not chosen:
        return "\n".join([*lines, "", f"No detector reached {FALSE_ACCEPTS_PER_HOUR:g} false "
                           "accepts per hour on streams of the validation speakers; the "
                           "manifest recommends none."]) + "\n"
    lines += ["", f"The detector the manifest recommends to tools/detect.py: "
              f"`{chosen['model']}` at threshold {stream_eval.thresholds_text(chosen)}, "
              f"chosen as the fewest misses with at most {FALSE_ACCEPTS_PER_HOUR:g} false "
              f"accepts per hour on streams of the validation speakers "
              f"({100 * chosen['miss_rate']:.1f} % missed, "
              f"{chosen['false_accepts_per_hour']:.1f} per hour; "
              f"{STREAM_EVAL_DIR}/validation/stream_eval.md). On streams of the test speakers "
              f"({STREAM_EVAL_DIR}/stream_eval.md) it misses "
              f"{100 * tested['miss_rate']:.1f} % of the keywords with "
              f"{tested['false_accepts_per_hour']:.1f} false accepts per hour of other words."]
    if "streams_measured" in record:
        lines += ["", f"Streams measured again at commit {record['streams_measured']['commit']} "
                  f"on {record['streams_measured']['date']} "
                  "(`python tools/reference_export.py --streams_only`)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reference_export.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", type=Path, default=Path("export/runs/reference"),
                        help="the training run's folder (resumed or reused when it holds "
                        "this run)")
    parser.add_argument("--export_dir", type=Path, default=Path("export"),
                        help="where the shipped files go")
    parser.add_argument("--streams_only", action="store_true",
                        help="train nothing: measure the detector of the files in "
                        "--export_dir on streams again (the manifest's recommended "
                        "detector, reference.json/.md's streams)")
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # paths in the records are the project's own
    command = [sys.executable, "-m", "kws.train", *TRAIN_FLAGS, f"--output_dir={args.run_dir}"]
    commit = git_commit()  # before this run changes export/
    try:
        missing = [str(path) for path in (TRAINING_DATA, UNSEEN_WORDS_DATA)
                   if not (ROOT / path).is_dir()]
        if missing:
            raise InputError(f"{', '.join(missing)}: no such folder (the real recordings "
                             "live beside the project; see ../shared/data/README.md)")
        if args.streams_only:
            remeasure_streams(ROOT / args.export_dir, commit)
            return 0
        if subprocess.run(command, cwd=ROOT).returncode != 0:
            raise InputError(f"kws.train failed (its log is above); rerun to resume {args.run_dir}")
        export_dir = ROOT / args.export_dir
        manifest = json.loads((ROOT / args.run_dir / MANIFEST).read_text())
        micro_files = [name for entry in manifest["files"].values()
                       for name in entry.get("micro", {}).get("files", [])]
        for name in (*MODEL_FILES, *micro_files, MANIFEST):  # the manifest last
            with fileio.atomic_path(export_dir / name) as tmp:
                shutil.copyfile(ROOT / args.run_dir / name, tmp)
        record = {
            "command": " ".join(["python -m kws.train", *TRAIN_FLAGS]),
            "commit": commit,
            "date": datetime.date.today().isoformat(),
            "manifest_labels": manifest["labels"],
            "keras_test_accuracy": manifest["keras_test_accuracy"],
            "files": {name: {key: entry[key] for key in ("bytes", "sha256", "test_accuracy")}
                      for name, entry in manifest["files"].items()},
            "measured": measure(export_dir, manifest),
            "streams": measure_streams(export_dir),
        }
        write_record(export_dir, record)
    except (InputError, benchmark_tflite.BenchmarkError) as error:
        print(f"reference_export.py: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"reference_export.py: error: {describe_os_error(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
