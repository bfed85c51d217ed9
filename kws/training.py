"""Training the study's models on one data source, and writing the run folder."""

from __future__ import annotations

import dataclasses
import json
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


def check_output_dir_is_new(output_dir: Path) -> None:
    """An existing folder with anything in it is an error: a run never overwrites another."""
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise InputError(
            f"--output_dir={output_dir} already exists and is not empty; "
            "choose a new folder, or leave the flag out for a fresh one under export/runs/"
        )


def create_output_dir(output_dir: Path) -> None:
    try:
        (output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--output_dir={output_dir}: cannot create it ({error.strerror})") \
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


def train_one(name: str, config: TrainConfig, front_end: FrontEnd, datasets: dict,
              test_labels: np.ndarray) -> tuple[keras.Model, dict, dict]:
    """Trains one model; returns it with its best-validation weights, results and history."""
    keras.utils.set_random_seed(config.seed)
    model = build_model(name, len(front_end.labels), front_end.features.feature_shape)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    best_weights = config.output_dir / "checkpoints" / f"{name}.best.weights.h5"
    checkpoint = keras.callbacks.ModelCheckpoint(
        best_weights, monitor="val_accuracy", mode="max", save_best_only=True,
        save_weights_only=True,
    )
    logging.info("Training %s (%s parameters) for %d epochs", name, f"{model.count_params():,}",
                 config.epochs)
    start = time.monotonic()
    history = model.fit(datasets["training"], validation_data=datasets["validation"],
                        epochs=config.epochs, callbacks=[checkpoint], verbose=config.verbose,
                        shuffle=False)  # the dataset reshuffles itself every epoch
    train_seconds = time.monotonic() - start
    model.load_weights(best_weights)
    predictions = np.argmax(model.predict(datasets["testing"], verbose=0), axis=-1)
    history = {key: [float(v) for v in values] for key, values in history.history.items()}
    best_epoch = int(np.argmax(history["val_accuracy"]))
    results = {
        "params": model.count_params(),
        "test_accuracy": float(np.mean(predictions == test_labels)),
        "val_accuracy": history["val_accuracy"][best_epoch],
        "epochs": len(history["loss"]),
        "best_epoch": best_epoch + 1,
        "train_seconds": round(train_seconds, 1),
        "confusion_matrix": report.confusion_matrix(
            test_labels, predictions, len(front_end.labels)).tolist(),
    }
    return model, results, history


def train(config: TrainConfig) -> dict:
    """Loads the data, trains every model of ``config.models``, writes the run folder.

    Returns the report that ``report.json`` holds.
    """
    check_output_dir_is_new(config.output_dir)
    data = load_data(config)
    _log_skipped(data)
    data.check_splits_not_empty()
    create_output_dir(config.output_dir)  # only now: bad input leaves no empty run folder
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
        "config": {key: value for key, value in json.loads(json.dumps(
            dataclasses.asdict(config), default=str)).items() if key != "verbose"},
        "models": {},
    }
    histories = {}
    for name in config.models:
        model, results, histories[name] = train_one(
            name, config, front_end, datasets, data.splits["testing"].labels)
        with fileio.atomic_path(config.output_dir / f"{name}.keras") as tmp:
            model.save(tmp)
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
