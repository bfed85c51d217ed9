"""Training the study's models on one data source, and writing the run folder."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np
from absl import logging

from kws import fileio, report
from kws.config import FeatureConfig, FrontEnd
from kws.data.dataset import LabelledClips
from kws.data.folder import load_folder
from kws.data.pipeline import fit_normalization, make_dataset
from kws.data.split import SplitSpec
from kws.data.synthetic import SyntheticSpec, load_synthetic
from kws.errors import InputError
from kws.models import MODEL_NAMES, build_model, check_model_names

SYNTHETIC_WORDS = ("yes", "no", "up")
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "kws"
SKIPPED_SHOWN = 5


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Args:
        output_dir: Run folder to create; it must not hold anything yet.
        data_dir: Folder of ``<label>/*.wav`` recordings; None trains on synthetic speech.
        wanted_words: Labels to train on; None means every label folder of ``data_dir``,
            or ``yes, no, up`` for synthetic speech.
        models: Which of ``fc``, ``cnn``, ``gru`` to train, in order.
        epochs: Passes over the training split.
        batch_size: Clips per training step.
        learning_rate: Adam's learning rate.
        seed: Fixes the synthetic data, weight initialisation and shuffling.
        clips_per_word: Synthetic clips per word.
        cache_dir: Where synthetic speech is cached between runs.
        split: How clips are assigned to training, validation and testing.
        features: The front end.
        verbose: Keras progress output: "auto", 0, 1 or 2.
        overwrite: Start afresh in an ``output_dir`` that holds an earlier kws run, instead
            of resuming it.
    """

    output_dir: Path
    data_dir: Path | None = None
    wanted_words: tuple[str, ...] | None = None
    models: tuple[str, ...] = MODEL_NAMES
    epochs: int = 50
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    clips_per_word: int = 1000
    cache_dir: Path = DEFAULT_CACHE_DIR
    split: SplitSpec = SplitSpec()
    features: FeatureConfig = FeatureConfig()
    verbose: int | str = "auto"
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.models:
            raise InputError("--models is empty; choose from " + ", ".join(MODEL_NAMES))
        check_model_names(self.models)
        for name in ("epochs", "batch_size", "clips_per_word"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name} must be at least 1, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise InputError(f"--learning_rate must be positive, got {self.learning_rate!r}")


def config_from_report(run_report: dict) -> TrainConfig:
    """The ``TrainConfig`` of a finished run, from its ``report.json``."""
    saved = run_report["config"]

    def optional_path(value):
        return Path(value) if value else None

    return TrainConfig(
        output_dir=Path(saved["output_dir"]),
        data_dir=optional_path(saved["data_dir"]),
        wanted_words=tuple(saved["wanted_words"]) if saved["wanted_words"] else None,
        models=tuple(saved["models"]),
        epochs=saved["epochs"],
        batch_size=saved["batch_size"],
        learning_rate=saved["learning_rate"],
        seed=saved["seed"],
        clips_per_word=saved["clips_per_word"],
        cache_dir=Path(saved["cache_dir"]),
        split=SplitSpec(**{key: tuple(value) if isinstance(value, list) else value
                           for key, value in saved["split"].items()}),
        features=FeatureConfig(**saved["features"]),
    )


RUN_FILE = "run.json"
# Settings that do not change what a run computes, so a resumed run may differ in them.
_PRESENTATION = ("verbose", "overwrite")


def saved_config(config: TrainConfig) -> dict:
    """The run's settings as JSON values: written to ``run.json`` and ``report.json``."""
    as_json = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    return {key: value for key, value in as_json.items() if key not in _PRESENTATION}


def check_run_folder(config: TrainConfig) -> bool:
    """Whether to resume the kws run in ``output_dir``; False for a new or empty folder.

    A folder holding a run with other settings, or anything that is not a kws run, is
    an error: a run never overwrites what it did not write. ``--overwrite`` starts a
    kws run's folder afresh.
    """
    output_dir = config.output_dir
    if not output_dir.exists() or (output_dir.is_dir() and not any(output_dir.iterdir())):
        return False
    run_file = output_dir / RUN_FILE
    if not run_file.is_file():
        raise InputError(
            f"--output_dir={output_dir} already exists, is not empty and holds no kws run; "
            "choose a new folder, or leave the flag out for a fresh one under export/runs/")
    if config.overwrite:
        return False
    try:
        saved = json.loads(run_file.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{run_file}: unreadable ({error}); pass --overwrite to start "
                         "afresh") from None
    wanted = saved_config(config)
    differences = sorted(key for key in set(saved) | set(wanted)
                         if saved.get(key) != wanted.get(key))
    if differences:
        raise InputError(
            f"--output_dir={output_dir} holds a run with other settings "
            f"({', '.join(differences)}); rerun with the same flags to resume it, pass "
            "--overwrite to start it afresh, or choose a new folder")
    return True


def start_run_folder(config: TrainConfig, resuming: bool) -> None:
    output_dir = config.output_dir
    try:
        if output_dir.exists() and not resuming and config.overwrite:
            shutil.rmtree(output_dir)
        (output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        fileio.write_text_atomic(output_dir / RUN_FILE,
                                 json.dumps(saved_config(config), indent=2) + "\n")
    except OSError as error:
        raise InputError(f"--output_dir={output_dir}: cannot write there ({error.strerror})") \
            from None


def load_data(config: TrainConfig) -> LabelledClips:
    if config.data_dir is not None:
        return load_folder(config.data_dir, config.wanted_words, config.features, config.split)
    spec = SyntheticSpec(words=config.wanted_words or SYNTHETIC_WORDS,
                         clips_per_word=config.clips_per_word, seed=config.seed)
    logging.info(
        "No --data_dir: training on SYNTHETIC speech from eSpeak NG, a quick offline check that "
        "everything works. For a real keyword spotter, record your words as "
        "DATA_DIR/<word>/<speaker>_nohash_<n>.wav and pass --data_dir=DATA_DIR."
    )
    return load_synthetic(spec, config.features, config.split, config.cache_dir)


def _log_skipped(data: LabelledClips) -> None:
    if data.skipped:
        shown = "; ".join(f"{item.path} ({item.reason})" for item in data.skipped[:SKIPPED_SHOWN])
        more = f" and {len(data.skipped) - SKIPPED_SHOWN} more" \
            if len(data.skipped) > SKIPPED_SHOWN else ""
        logging.warning("Skipped %d unreadable files: %s%s (all are listed in report.md)",
                        len(data.skipped), shown, more)


def read_history(path: Path) -> dict[str, list[float]]:
    """Per-epoch metrics from a CSVLogger file; an epoch run twice keeps its last row."""
    if not path.is_file():
        return {}
    with path.open(newline="") as file:
        rows = {int(row["epoch"]): row for row in csv.DictReader(file)
                if None not in row.values() and "" not in row.values()}  # a torn last row
    epochs = sorted(rows)
    metrics = [key for key in rows[epochs[0]] if key != "epoch"] if epochs else []
    return {key: [float(rows[epoch][key]) for epoch in epochs] for key in metrics}


def train_one(name: str, config: TrainConfig, front_end: FrontEnd, datasets: dict,
              test_labels: np.ndarray) -> tuple[keras.Model, dict, dict]:
    """Trains one model, resuming from its last completed epoch when an earlier run of the
    same settings was stopped; returns it with its best-validation weights, its results
    and its whole per-epoch history."""
    checkpoints = config.output_dir / "checkpoints"
    history_path = checkpoints / f"{name}.history.csv"
    best_weights = checkpoints / f"{name}.best.weights.h5"
    earlier = read_history(history_path)
    done = len(earlier.get("loss", []))
    keras.utils.set_random_seed(config.seed)
    model = build_model(name, len(front_end.labels), front_end.features.feature_shape)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.monotonic()
    if done < config.epochs:
        if done:
            logging.info("Resuming %s after epoch %d of %d", name, done, config.epochs)
        else:
            logging.info("Training %s (%s parameters) for %d epochs", name,
                         f"{model.count_params():,}", config.epochs)
        callbacks = [  # in this order: a kill between them re-runs one epoch, loses none
            keras.callbacks.CSVLogger(str(history_path), append=True),
            keras.callbacks.ModelCheckpoint(
                best_weights, monitor="val_accuracy", mode="max", save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=max(earlier["val_accuracy"]) if done else None),
            # Weights, optimizer state and epoch, kept twice so a torn file is survivable.
            keras.callbacks.BackupAndRestore(str(checkpoints / f"{name}.backup"),
                                             double_checkpoint=True),
        ]
        model.fit(datasets["training"], validation_data=datasets["validation"],
                  epochs=config.epochs, callbacks=callbacks, verbose=config.verbose,
                  shuffle=False)  # the dataset reshuffles itself every epoch
    train_seconds = time.monotonic() - start
    model.load_weights(best_weights)
    predictions = np.argmax(model.predict(datasets["testing"], verbose=0), axis=-1)
    history = read_history(history_path)
    best_epoch = int(np.argmax(history["val_accuracy"]))
    results = {
        "params": model.count_params(),
        "test_accuracy": float(np.mean(predictions == test_labels)),
        "val_accuracy": history["val_accuracy"][best_epoch],
        "epochs": len(history["loss"]),
        "best_epoch": best_epoch + 1,
        "resumed_after_epoch": done,
        "train_seconds": round(train_seconds, 1),
        "confusion_matrix": report.confusion_matrix(
            test_labels, predictions, len(front_end.labels)).tolist(),
    }
    return model, results, history


def train(config: TrainConfig) -> dict:
    """Loads the data, trains every model of ``config.models``, writes the run folder.

    Returns the report that ``report.json`` holds.
    """
    resuming = check_run_folder(config)
    data = load_data(config)
    _log_skipped(data)
    data.check_splits_not_empty()
    start_run_folder(config, resuming)  # only now: bad input leaves no empty run folder
    if resuming:
        logging.info("Resuming the run in %s (--overwrite starts it afresh)", config.output_dir)
    logging.info("Data: %s; labels %s; clips %s", data.source, ", ".join(data.labels),
                 data.split_sizes())

    front_end = FrontEnd(features=config.features,
                         normalization=fit_normalization(data.splits["training"], config.features),
                         labels=data.labels)
    front_end.save(config.output_dir)
    datasets = {
        name: make_dataset(clips, front_end, config.batch_size,
                           shuffle_seed=config.seed if name == "training" else None)
        for name, clips in data.splits.items()
    }

    run_report = {
        "run": config.output_dir.name,
        "data": {
            "source": data.source,
            "labels": list(data.labels),
            "split_sizes": data.split_sizes(),
            "skipped": [dataclasses.asdict(item) for item in data.skipped],
        },
        "config": saved_config(config),
        "models": {},
    }
    histories = {}
    for name in config.models:
        finished = config.output_dir / "checkpoints" / f"{name}.result.json"
        if resuming and finished.is_file() and (config.output_dir / f"{name}.keras").is_file():
            logging.info("Skipping %s: it finished before the run stopped", name)
            run_report["models"][name], histories[name] = json.loads(finished.read_text())
            continue
        model, results, histories[name] = train_one(
            name, config, front_end, datasets, data.splits["testing"].labels)
        with fileio.atomic_path(config.output_dir / f"{name}.keras") as tmp:
            model.save(tmp)
        fileio.write_text_atomic(finished, json.dumps([results, histories[name]]))
        run_report["models"][name] = results
        logging.info("%s: test accuracy %.2f %%", name, 100 * results["test_accuracy"])

    fileio.write_text_atomic(config.output_dir / "history.json",
                             json.dumps(histories, indent=2) + "\n")
    report.plot_curves(histories, config.output_dir / report.CURVES_FILENAME)
    report.plot_confusion({name: np.asarray(results["confusion_matrix"])
                           for name, results in run_report["models"].items()},
                          data.labels, config.output_dir / report.CONFUSION_FILENAME)
    report.write_report(config.output_dir, run_report)
    if "gru" in config.models:
        from kws.export import export_run

        run_report["export"] = export_run(
            config.output_dir / "gru.keras", data, front_end,
            run_report["models"]["gru"]["test_accuracy"], run_report["config"])["files"]
        report.write_report(config.output_dir, run_report)
    return run_report
