#!/usr/bin/env python3
"""Trains the same recipe with several seeds and reports each model's mean and spread.

One seed moves a test accuracy on real voices by about a point, so a recipe is judged by
the mean of several. Each seed is one ``python -m kws.train`` run in ``OUT/seed-N`` (a
stopped sweep resumes where it stopped: finished seeds are read back, a stopped run
resumes), then ``OUT/seeds.json`` and ``OUT/seeds.md`` summarise them:

    python tools/seeds.py --out=sweeps/cosine --seeds=0,1,2 -- \\
        --data_dir=../shared/data/mini_speech_commands --wanted_words=yes,no,up \\
        --lr_schedule=cosine

``--evaluate=FOLDER`` also evaluates each seed's models on another labelled folder
(``python -m kws.evaluate``), and summarises accuracy, recall per class and the share of
other words called a keyword there: a model trained from text alone, judged on people:

    python tools/seeds.py --out=sweeps/synthetic \
        --evaluate=../shared/data/mini_speech_commands -- --models=gru \
        --synthetic_unknown_words=300

``--evaluate_words=yes,no,up`` evaluates only those folders of it (a model without an
``_unknown_`` class, such as ``make train``'s, on a folder of more words).

``--table`` puts several finished sweeps side by side, one row each (an ablation table):

    python tools/seeds.py --table sweeps/default sweeps/cosine --json=ablation.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from kws import fileio  # noqa: E402  (after the path is set)
from kws.errors import InputError, describe_os_error  # noqa: E402
from kws.provenance import git_commit  # noqa: E402

SUMMARY_JSON, SUMMARY_MD = "seeds.json", "seeds.md"
# kws.train settings this tool owns: each run gets its own seed and folder.
OWN_FLAGS = ("--seed", "--output_dir")


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(item) for item in text.split(",")]
    except ValueError:
        raise InputError(f"--seeds={text}: not a comma-separated list of integers") from None
    if len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds={text}: a seed is listed twice")
    return seeds


def check_train_flags(train_flags: list[str]) -> None:
    for flag in train_flags:
        if flag.split("=")[0] in OWN_FLAGS:
            raise InputError(f"{flag}: seeds.py sets --seed and --output_dir of each run "
                             "itself; use --seeds and --out")


def run_seed(out: Path, seed: int, train_flags: list[str]) -> dict:
    """One seed's ``report.json``: trained now, resumed, or read back when finished."""
    run_dir = out / f"seed-{seed}"
    report_path = run_dir / "report.json"
    if report_path.is_file():
        print(f"seed {seed}: finished earlier, reading {report_path}", flush=True)
    else:
        print(f"seed {seed}: training in {run_dir}", flush=True)
        command = [sys.executable, "-m", "kws.train", f"--seed={seed}",
                   f"--output_dir={run_dir}", *train_flags]
        if subprocess.run(command, cwd=ROOT).returncode != 0:
            raise InputError(f"seed {seed}: kws.train failed (its log is above); rerun the "
                             "same command to resume")
    return json.loads(report_path.read_text())


def evaluate_seed(run_dir: Path, models: list[str], folder: Path,
                  words: list[str]) -> dict[str, dict]:
    """Each model's ``evaluation.json`` on ``folder`` (only its ``words`` folders, when
    given): evaluated now, or read back."""
    results = {}
    for model in models:
        out = run_dir / "-".join(["evaluate", folder.name, *words]) / model
        if not (out / "evaluation.json").is_file():
            command = [sys.executable, "-m", "kws.evaluate", f"--model={run_dir / model}.keras",
                       f"--data_dir={folder}", f"--output_dir={out}",
                       *([f"--words={','.join(words)}"] if words else [])]
            if subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL).returncode != 0:
                raise InputError(f"{run_dir}: kws.evaluate of {model} on {folder} failed (its "
                                 "log is above)")
        results[model] = json.loads((out / "evaluation.json").read_text())
    return results


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), lowest and highest."""
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": values}


def evaluation_spreads(evaluations: list[dict]) -> dict:
    """Accuracy, each class's recall and the share of other words called a keyword, over
    the seeds (of what the folder has: a folder of keywords alone has no other words)."""
    classes = [name for name, figures in evaluations[0]["classes"].items()
               if figures["recall"] is not None]
    spreads = {"data_dir": evaluations[0]["data_dir"], "clips": evaluations[0]["clips"],
               "accuracy": spread([e["accuracy"] for e in evaluations]),
               "recall": {name: spread([e["classes"][name]["recall"] for e in evaluations])
                          for name in classes}}
    if evaluations[0]["false_keyword_rate"] is not None:
        spreads["false_keyword_rate"] = spread([e["false_keyword_rate"] for e in evaluations])
    return spreads


def summarize(reports: dict[int, dict], name: str, train_flags: list[str],
              evaluations: dict[int, dict] | None = None) -> dict:
    """Per model: test and validation accuracy and best epoch over the seeds, and with
    ``evaluations`` (per seed, per model) the figures on the other folder."""
    models = next(iter(reports.values()))["models"]
    summary = {
        "name": name,
        "date": datetime.date.today().isoformat(),
        "commit": git_commit(),
        "train_flags": train_flags,
        "seeds": list(reports),
        "labels": next(iter(reports.values()))["data"]["labels"],
        "models": {model: {metric: spread([report["models"][model][metric]
                                           for report in reports.values()])
                           for metric in ("test_accuracy", "val_accuracy", "best_epoch")}
                   for model in models},
    }
    if evaluations:
        for model in models:
            summary["models"][model]["evaluation"] = evaluation_spreads(
                [evaluations[seed][model] for seed in reports])
    return summary


def percent(figure: dict) -> str:
    return f"{100 * figure['mean']:.2f} ± {100 * figure['std']:.2f}"


def markdown_table(summaries: list[dict]) -> str:
    """A row per sweep: each model's test accuracy, mean ± standard deviation over seeds."""
    models = list(dict.fromkeys(model for summary in summaries for model in summary["models"]))
    lines = ["| recipe | seeds | " + " | ".join(f"{model} test %" for model in models) + " |",
             "|---|---:|" + "---:|" * len(models)]
    for summary in summaries:
        cells = [percent(summary["models"][model]["test_accuracy"])
                 if model in summary["models"] else "" for model in models]
        lines.append(f"| {summary['name']} | {len(summary['seeds'])} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines) + "\n\nTest accuracy, mean ± sample standard deviation over " \
        "the seeds.\n"


def evaluation_table(summary: dict) -> str:
    """Per model, the figures on the evaluated folder: mean ± std and each seed's value."""
    lines = []
    for model, figures in summary["models"].items():
        evaluation = figures.get("evaluation")
        if not evaluation:
            continue
        lines += [f"{model} on {evaluation['data_dir']} ({evaluation['clips']:,} clips):", "",
                  "| figure | mean ± sample std (%) | each seed (%) |", "|---|---:|---|"]
        rows = [*((f"recall of {name}", figure)
                  for name, figure in evaluation["recall"].items()),
                *([("other words called a keyword", evaluation["false_keyword_rate"])]
                  if "false_keyword_rate" in evaluation else []),
                ("accuracy", evaluation["accuracy"])]
        for label, figure in rows:
            lines.append(f"| {label} | {percent(figure)} | "
                         + " / ".join(f"{100 * v:.2f}" for v in figure["values"]) + " |")
        lines.append("")
    return "\n".join(lines)


def read_summary(folder: Path) -> dict:
    path = folder / SUMMARY_JSON
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; run seeds.py --out={folder} first") from None
    except ValueError as error:
        raise InputError(f"{path}: not a seeds.py summary ({error})") from None


def sweep(out: Path, seeds: list[int], name: str, train_flags: list[str],
          evaluate: Path | None = None, evaluate_words: list[str] | None = None) -> dict:
    check_train_flags(train_flags)
    if evaluate is not None and not evaluate.is_dir():
        raise InputError(f"--evaluate={evaluate}: no such folder")
    out.mkdir(parents=True, exist_ok=True)
    reports = {seed: run_seed(out, seed, train_flags) for seed in seeds}
    evaluations = {seed: evaluate_seed(out / f"seed-{seed}", list(report["models"]), evaluate,
                                       evaluate_words or [])
                   for seed, report in reports.items()} if evaluate else None
    summary = summarize(reports, name, train_flags, evaluations)
    fileio.write_text_atomic(out / SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")
    table = markdown_table([summary]) + "\n" + evaluation_table(summary)
    fileio.write_text_atomic(out / SUMMARY_MD, f"# {name}\n\n`python -m kws.train "
                             f"{' '.join(train_flags)}`, seeds {seeds}; summarised on "
                             f"{summary['date']} at commit {summary['commit']}\n\n{table}")
    print(table)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="seeds.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="Folder of the sweep: OUT/seed-N per seed, "
                        "OUT/seeds.json and OUT/seeds.md.")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds (default "
                        "0,1,2).")
    parser.add_argument("--name", help="The recipe's name in tables (default: OUT's name).")
    parser.add_argument("--table", nargs="+", type=Path, metavar="SWEEP",
                        help="Print finished sweeps side by side instead of training.")
    parser.add_argument("--json", type=Path, help="With --table: also write the rows here.")
    parser.add_argument("--evaluate", type=Path, metavar="FOLDER",
                        help="Also evaluate each seed's models on this labelled folder "
                        "(python -m kws.evaluate) and summarise the figures there.")
    parser.add_argument("--evaluate_words", metavar="WORDS",
                        help="With --evaluate: only these comma-separated word folders of "
                        "FOLDER (kws.evaluate --words), e.g. yes,no,up for models without an "
                        "_unknown_ class.")
    parser.add_argument("train_flags", nargs="*", help="kws.train flags, after --.")
    args = parser.parse_args(argv)
    try:
        if args.table:
            summaries = [read_summary(folder) for folder in args.table]
            print(markdown_table(summaries))
            if args.json:
                fileio.write_text_atomic(args.json, json.dumps(summaries, indent=2) + "\n")
            return 0
        if args.out is None:
            parser.error("--out is required (or --table)")
        sweep(args.out, parse_seeds(args.seeds), args.name or args.out.name, args.train_flags,
              args.evaluate, args.evaluate_words.split(",") if args.evaluate_words else None)
    except InputError as error:
        print(f"seeds.py: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"seeds.py: error: {describe_os_error(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
