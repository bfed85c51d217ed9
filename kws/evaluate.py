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


def load_evaluation_clips(data_dir: Path, front_end: FrontEnd):
    """Every clip of ``data_dir`` with labels indexed in the model's order."""
    from kws.data.dataset import ClipSet
    from kws.data.folder import NONE, SILENCE, UNKNOWN, find_labels, load_folder, wav_files
    from kws.data.split import SplitSpec

    if not data_dir.is_dir():
        raise InputError(f"--data_dir={data_dir}: no such folder")
    folders = set(find_labels(data_dir)) | {name for name in (SILENCE, UNKNOWN)
                                            if wav_files(data_dir / name)}
    unknown = sorted(folders - set(front_end.labels))
    missing = [label for label in front_end.labels if label not in folders]
    if unknown:
        hint = f"; move other words' clips into {UNKNOWN}/" if UNKNOWN in front_end.labels else ""
        raise InputError(f"--data_dir={data_dir} has labels the model does not know: "
                         f"{', '.join(unknown)} (model labels: {', '.join(front_end.labels)})"
                         + hint)
    if missing:
        raise InputError(f"--data_dir={data_dir} has no clips for the model's labels "
                         f"{', '.join(missing)}")
    words = tuple(label for label in front_end.labels if label not in (SILENCE, UNKNOWN))
    data = load_folder(data_dir, words, front_end.features, SplitSpec(**_ALL_CLIPS_SPLIT), NONE)
    model_index = np.array([front_end.labels.index(label) for label in data.labels])
    parts = data.splits.values()
    clips = ClipSet(np.concatenate([part.clips for part in parts]),
                    model_index[np.concatenate([part.labels for part in parts])],
                    tuple(s for part in parts for s in part.speakers))
    return clips, data.skipped


def evaluate(model_path: Path, data_dir: Path, output_dir: Path) -> dict:
    """Evaluates ``model_path`` on ``data_dir`` and writes the results to ``output_dir``."""
    from kws import report
    from kws.data.pipeline import features_array
    from kws.models import load_trained_model

    model = load_trained_model(model_path)
    front_end = FrontEnd.load(model_path.parent)
    clips, skipped = load_evaluation_clips(data_dir, front_end)
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
        "clips": len(clips),
        "accuracy": float(np.mean(predictions == clips.labels)),
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
    lines = [f"# {results['model']} on {results['data_dir']}", "",
             f"Accuracy: {_percent(results['accuracy'])} of {results['clips']:,} clips.", "",
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
        results = evaluate(model_path, data_dir, output_dir)
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
    _DATA_DIR = flags.DEFINE_string("data_dir", None, "Labelled clips, DATA_DIR/<label>/*.wav, "
                                    "with exactly the model's labels.")
    _OUTPUT_DIR = flags.DEFINE_string(
        "output_dir", None, "Where to write the results. Default: "
        "<run>/evaluation/<model name>-<data folder name>/.")
    app.run(main)
