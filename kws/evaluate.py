"""Evaluates a trained model on any labelled folder: ``python -m kws.evaluate``.

The model's own ``features.json`` (beside it) gives the front end and the label order, so
the clips are seen exactly as in training. Writes accuracy, per-class precision and
recall and the confusion matrix as ``evaluation.json``, ``evaluation.md`` and
``confusion.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from absl import app, flags

from kws import fileio
from kws.config import FrontEnd
from kws.errors import InputError, describe_os_error

# Every clip is evaluated: these two settings put all of them in one split.
_ALL_CLIPS_SPLIT = {"validation_percentage": 0.0, "testing_percentage": 0.0}
ALL_SPLITS = "all"


def class_metrics(matrix: np.ndarray, labels: tuple[str, ...]) -> dict[str, dict]:
    """Per class: clips, precision (right among those predicted as it) and recall."""
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    correct = np.diag(matrix)
    return {
        label: {
            "clips": int(actual[i]),
            "precision": float(correct[i] / predicted[i]) if predicted[i] else None,
            "recall": float(correct[i] / actual[i]) if actual[i] else None,
        }
        for i, label in enumerate(labels)
    }


def load_evaluation_clips(data_dir: Path, front_end: FrontEnd, split: str = ALL_SPLITS,
                          words: tuple[str, ...] = ()):
    """The clips of ``data_dir`` (of one ``split`` of it, or all) with labels indexed in
    the model's order, the files skipped, the folders counted as ``_unknown_``, and each
    clip's folder (the word spoken).

    Word folders the model does not know count as ``_unknown_`` when the model has that
    class (anything else is an error); a folder may hold only some of the model's classes.
    ``words``, when given, are the only folders read (a 3-word model on a folder of more).
    """
    from kws.data.dataset import ClipSet
    from kws.data.folder import NONE, SILENCE, UNKNOWN, find_labels, load_folder, wav_files
    from kws.data.split import SplitSpec

    if not data_dir.is_dir():
        raise InputError(f"--data_dir={data_dir}: no such folder")
    folders = set(find_labels(data_dir)) | {name for name in (SILENCE, UNKNOWN)
                                            if wav_files(data_dir / name)}
    if words:
        missing = [word for word in words if word not in folders]
        if missing:
            raise InputError(f"--words={','.join(words)}: no clips of {', '.join(missing)} in "
                             f"{data_dir} (it has: {', '.join(sorted(folders))})")
        folders = set(words)
    others = sorted(folders - set(front_end.labels))
    if others and UNKNOWN not in front_end.labels:
        known = ",".join(label for label in front_end.labels if label in folders)
        raise InputError(f"--data_dir={data_dir} has labels the model does not know: "
                         f"{', '.join(others)} (model labels: {', '.join(front_end.labels)}, "
                         f"no {UNKNOWN} class to count them in)"
                         + (f"; to evaluate only its words: --words={known}" if known else ""))
    if not folders & set(front_end.labels) and not others:
        raise InputError(f"--data_dir={data_dir} has no clips of any of the model's labels "
                         f"({', '.join(front_end.labels)})")
    words = tuple(label for label in front_end.labels
                  if label in folders and label not in (SILENCE, UNKNOWN)) + tuple(others)
    split_spec = SplitSpec() if split != ALL_SPLITS else SplitSpec(**_ALL_CLIPS_SPLIT)
    data = load_folder(data_dir, words, front_end.features, split_spec, NONE)
    model_index = np.array([front_end.labels.index(UNKNOWN if label in others else label)
                            for label in data.labels])
    parts = list(data.splits.values()) if split == ALL_SPLITS else [data.splits[split]]
    clips = ClipSet(np.concatenate([part.clips for part in parts]),
                    model_index[np.concatenate([part.labels for part in parts])],
                    tuple(s for part in parts for s in part.speakers))
    spoken = tuple(data.labels[i] for part in parts for i in part.labels)
    return clips, data.skipped, others, spoken


def false_keyword_rate(matrix: np.ndarray, labels: tuple[str, ...]) -> float | None:
    """Share of the ``_silence_`` and ``_unknown_`` clips that the model called a keyword:
    what a detector would fire on (None without such clips)."""
    from kws.data.folder import SILENCE, UNKNOWN

    rejecting = [i for i, label in enumerate(labels) if label in (SILENCE, UNKNOWN)]
    others = matrix[rejecting].sum()
    if not others:
        return None
    return float(others - matrix[np.ix_(rejecting, rejecting)].sum()) / float(others)


def evaluate(model_path: Path, data_dir: Path, output_dir: Path,
             split: str = ALL_SPLITS, words: tuple[str, ...] = ()) -> dict:
    """Evaluates ``model_path`` on ``data_dir`` (one ``split`` of it, or all; only the
    ``words`` folders when given) and writes the results to ``output_dir``."""
    from kws import report
    from kws.data.pipeline import features_array
    from kws.models import load_trained_model

    model = load_trained_model(model_path)
    front_end = FrontEnd.load(model_path.parent)
    clips, skipped, others, _ = load_evaluation_clips(data_dir, front_end, split, words)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--output_dir={output_dir}: cannot write there ({error.strerror})") \
            from None
    scores = model.predict(features_array(clips, front_end), verbose=0)
    predictions = np.argmax(scores, axis=-1)
    matrix = report.confusion_matrix(clips.labels, predictions, len(front_end.labels))
    results = {
        "model": str(model_path),
        "data_dir": str(data_dir),
        "split": split,
        "words": list(words) or None,
        "counted_as_unknown": others,
        "clips": len(clips),
        "accuracy": float(np.mean(predictions == clips.labels)),
        "false_keyword_rate": false_keyword_rate(matrix, front_end.labels),
        "classes": class_metrics(matrix, front_end.labels),
        "labels": list(front_end.labels),
        "confusion_matrix": matrix.tolist(),
        "skipped": [{"path": item.path, "reason": item.reason} for item in skipped],
    }
    fileio.write_text_atomic(output_dir / "evaluation.json", json.dumps(results, indent=2) + "\n")
    fileio.write_text_atomic(output_dir / "evaluation.md", markdown(results))
    report.plot_confusion({model_path.stem: matrix}, front_end.labels,
                          output_dir / report.CONFUSION_FILENAME)
    return results


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def markdown(results: dict) -> str:
    """The evaluation as text: accuracy, a per-class table and the confusion matrix."""
    labels = results["labels"]
    split = "" if results["split"] == ALL_SPLITS else f" ({results['split']} split)"
    lines = [f"# {results['model']} on {results['data_dir']}{split}", "",
             f"Accuracy: {_percent(results['accuracy'])} of {results['clips']:,} clips."]
    if results["words"]:
        lines.append(f"Only the folders {', '.join(results['words'])}.")
    if results["counted_as_unknown"]:
        lines.append(f"Counted as _unknown_: {', '.join(results['counted_as_unknown'])}.")
    if results["false_keyword_rate"] is not None:
        lines.append("Called a keyword although _silence_ or _unknown_: "
                     f"{_percent(results['false_keyword_rate'])}.")
    lines += ["",
             "| class | clips | precision | recall |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {entry['clips']:,} | {_percent(entry['precision'])} "
              f"| {_percent(entry['recall'])} |" for label, entry in results["classes"].items()]
    lines += ["", "Confusion matrix (rows: true class, columns: predicted):", "",
              "| true \\ predicted | " + " | ".join(labels) + " |",
              "|---|" + "---:|" * len(labels)]
    lines += [f"| {label} | " + " | ".join(str(count) for count in row) + " |"
              for label, row in zip(labels, results["confusion_matrix"], strict=True)]
    lines += ["", "![confusion matrix](confusion.png)"]
    if results["skipped"]:
        lines += ["", f"Skipped {len(results['skipped'])} unreadable files:", ""]
        lines += [f"- `{item['path']}`: {item['reason']}" for item in results["skipped"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        sys.exit(f"kws.evaluate: error: unexpected arguments {argv[1:]}")
    try:
        if not _MODEL.value or not _DATA_DIR.value:
            raise InputError("--model and --data_dir are required, e.g. "
                             "--model=export/runs/<run>/gru.keras --data_dir=my_words")
        model_path, data_dir = Path(_MODEL.value), Path(_DATA_DIR.value)
        output_dir = Path(_OUTPUT_DIR.value) if _OUTPUT_DIR.value else (
            model_path.parent / "evaluation" / f"{model_path.stem}-{data_dir.resolve().name}")
        results = evaluate(model_path, data_dir, output_dir, _SPLIT.value,
                           tuple(_WORDS.value or ()))
    except InputError as error:
        sys.exit(f"kws.evaluate: error: {error}")
    except OSError as error:  # a full disk, a folder made read-only mid-run
        sys.exit(f"kws.evaluate: error: {describe_os_error(error)}")
    print(markdown(results))
    print(f"Written to {output_dir}/ (evaluation.json, evaluation.md, confusion.png)")


if __name__ == "__main__":
    # Defined only when run: kws.export, importable beside this module, also has --model.
    _MODEL = flags.DEFINE_string("model", None, "A trained model, <run>/<name>.keras; its "
                                 "features.json must lie beside it.")
    _DATA_DIR = flags.DEFINE_string(
        "data_dir", None, "Labelled clips, DATA_DIR/<label>/*.wav: some or all of the model's "
        "labels; other word folders count as _unknown_ when the model has that class.")
    _OUTPUT_DIR = flags.DEFINE_string(
        "output_dir", None, "Where to write the results. Default: "
        "<run>/evaluation/<model name>-<data folder name>/.")
    _SPLIT = flags.DEFINE_enum(
        "split", ALL_SPLITS, [ALL_SPLITS, "training", "validation", "testing"],
        "Evaluate every clip, or one split of the folder as training splits it (its "
        "validation_list.txt and testing_list.txt, else the speaker hash).")
    _WORDS = flags.DEFINE_list(
        "words", None, "Only these folders of --data_dir, e.g. yes,no,up (a model without "
        "an _unknown_ class on a folder of more words). Default: every folder.")
    app.run(main)
