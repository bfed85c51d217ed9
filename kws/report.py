"""The run's report: report.json, report.md, learning curves and confusion matrices."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: training machines have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kws import fileio  # noqa: E402
from kws.models import STUDY  # noqa: E402

REPORT_FILENAME = "report.json"
CURVES_FILENAME = "curves.png"
CONFUSION_FILENAME = "confusion.png"


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows the true class and columns the predicted one."""
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def study_table(report: dict) -> str:
    """The study-style table of this run beside the study's figures, as Markdown."""
    rows = [
        "| model | params | test accuracy | val accuracy | epochs | train s "
        "| study params | study test accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in report["models"].items():
        study = STUDY[name]
        rows.append(
            f"| {name} | {result['params']:,} | {100 * result['test_accuracy']:.2f} % "
            f"| {100 * result['val_accuracy']:.2f} % | {result['epochs']} "
            f"| {result['train_seconds']:.0f} | {study.params:,} "
            f"| {study.test_accuracy_percent:.2f} % |"
        )
    return "\n".join(rows)


def _markdown(report: dict) -> str:
    data = report["data"]
    sizes = ", ".join(f"{name} {count:,}" for name, count in data["split_sizes"].items())
    lines = [
        f"# kws training run {report['run']}",
        "",
        f"Data: {data['source']}. Labels: {', '.join(data['labels'])}. Clips: {sizes}.",
        "",
        study_table(report),
        "",
        f"![learning curves]({CURVES_FILENAME})",
        "",
        f"![confusion matrices]({CONFUSION_FILENAME})",
    ]
    if data["skipped"]:
        lines += ["", f"## Skipped files ({len(data['skipped'])})", ""]
        lines += [f"- `{item['path']}`: {item['reason']}" for item in data["skipped"]]
    return "\n".join(lines) + "\n"


def plot_curves(histories: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Training (solid) and validation (dashed) loss and accuracy of every model."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for (name, history), color in zip(histories.items(), plt.cm.tab10.colors, strict=False):
        epochs = np.arange(1, len(history["loss"]) + 1)
        for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
            axis.plot(epochs, history[metric], color=color, label=f"{name} training")
            axis.plot(epochs, history[f"val_{metric}"], color=color, linestyle="--",
                      label=f"{name} validation")
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize="small")
    with fileio.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


def plot_confusion(matrices: dict[str, np.ndarray], labels: tuple[str, ...], path: Path) -> None:
    """One test-split confusion matrix per model, counts in the cells."""
    # Room for the longest name under the matrix, where it runs at 45 degrees.
    longest = max(len(label) for label in labels)
    size = 1.2 + 0.5 * len(labels) + 0.06 * longest
    figure, axes = plt.subplots(1, len(matrices), figsize=(size * len(matrices), size + 0.6),
                                constrained_layout=True, squeeze=False)
    for axis, (name, matrix) in zip(axes[0], matrices.items(), strict=True):
        axis.imshow(matrix, cmap="Blues")
        axis.set_title(f"{name}: {np.trace(matrix) / max(matrix.sum(), 1):.1%}")
        ticks = np.arange(len(labels))
        axis.set_xticks(ticks, labels, rotation=45, ha="right", rotation_mode="anchor")
        axis.set_yticks(ticks, labels)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        if len(labels) <= 12:
            for (row, column), count in np.ndenumerate(matrix):
                axis.text(column, row, str(count), ha="center", va="center",
                          color="white" if count > matrix.max() / 2 else "black")
    with fileio.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


def write_report(run_dir: Path, report: dict) -> None:
    """``report.json`` and ``report.md``; both are complete or absent, never torn."""
    fileio.write_text_atomic(run_dir / REPORT_FILENAME, json.dumps(report, indent=2) + "\n")
    fileio.write_text_atomic(run_dir / "report.md", _markdown(report))
