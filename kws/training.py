"""Training the study's models on one data source, and writing the run folder."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
from absl import logging

from kws import collective, distribute, fileio, report
from kws.config import (
    DEFAULT_CACHE_DIR,
    DISTRIBUTIONS,
    FEATURE_PLACEMENTS,
    MODEL_NAMES,
    PRECISIONS,
    FeatureConfig,
    FrontEnd,
    check_choice,
    check_model_names,
)
from kws.data.augment import AugmentConfig
from kws.data.dataset import LabelledClips
from kws.data.download import check_data_sources, words_folder
from kws.data.folder import SILENCE, UNKNOWN, ExtraClasses, load_folder
from kws.data.pipeline import (
    TrainingFeatures,
    check_data_service,
    make_augmented_dataset,
    make_dataset,
    on_data_service,
    waveform_batches,
)
from kws.data.prepared import PreparedClips, load_prepared
from kws.data.split import TESTING, TRAINING, VALIDATION, SplitSpec
from kws.data.synthetic import SyntheticSpec, load_other_words, load_synthetic
from kws.errors import InputError
from kws.models import build_model
from kws.recipe import Recipe

if TYPE_CHECKING:
    import tensorflow as tf

SYNTHETIC_WORDS = ("yes", "no", "up")
SKIPPED_SHOWN = 5
SYNTHETIC_WORDS_FILE = "synthetic_unknown_words.txt"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Args:
        output_dir: Run folder to create; it must not hold anything yet.
        data_dir: Folder of ``<label>/*.wav`` recordings; None trains on synthetic speech
            (or on ``dataset`` or ``prepared_dir``).
        dataset: A published dataset to download once and train on, a key of
            ``kws.data.download.DATASETS``; None for ``data_dir`` or synthetic speech.
        prepared_dir: A folder written by ``python -m kws.prepare``, streamed from disk:
            its labels, clips and split replace the data settings here.
        wanted_words: Labels to train on; None means every label folder of ``data_dir``,
            the ten command words for a Speech Commands ``dataset``, or ``yes, no, up`` for
            synthetic speech.
        silence_percentage: Size of the ``_silence_`` class, as a percentage of the wanted
            words' clips in each split (folders and datasets only).
        unknown_percentage: Size of the ``_unknown_`` class (clips of other words), likewise.
        unknown_redraw: Training keeps every clip of the other words and draws the
            ``_unknown_`` share afresh each epoch (``ExtraClasses.unknown_redraw``).
        synthetic_unknown_words: This many everyday English words (never a wanted word or
            one that sounds like it) spoken by eSpeak NG join the training split's
            ``_unknown_`` clips; 0 for none. Folders and datasets only.
        synthetic_unknown_clips: Clips of each of those words, in random synthetic voices.
        augmentation: What happens to training clips.
        data_service: Address of a tf.data service dispatcher (``host:port``) whose
            workers compute the training batches; needs ``prepared_dir`` on storage the
            workers can read.
        distribution: ``default``, ``mirrored`` or ``multi_worker`` (see
            ``kws.distribute``).
        mixed_precision: Keras dtype policy: ``float32``, ``mixed_float16`` or
            ``mixed_bfloat16``.
        features_on: Where augmented training features are computed: ``pipeline``
            (tf.data), ``accelerator`` (in the train step) or ``auto`` (the accelerator
            when there is a GPU); ``train`` records which it chose, so a run resumes alike.
        models: Which of ``fc``, ``cnn``, ``gru`` to train, in order.
        epochs: Passes over the training split.
        batch_size: Clips per training step.
        recipe: How the weights are fitted: learning rate and its schedule, weight decay,
            label smoothing, dropout (``kws.recipe``).
        seed: Fixes the synthetic data, weight initialisation and shuffling.
        clips_per_word: Synthetic clips per word.
        cache_dir: Where synthetic speech is cached between runs.
        split: How clips are assigned to training, validation and testing.
        features: The front end.
        verbose: Keras progress output: "auto", 0, 1 or 2.
        overwrite: Start afresh in an ``output_dir`` that holds an earlier kws run, instead
            of resuming it.
        export: Export the trained gru to TFLite at the end (``kws.export``'s files and
            manifest beside ``gru.keras``).
    """

    output_dir: Path
    data_dir: Path | None = None
    dataset: str | None = None
    prepared_dir: Path | None = None
    wanted_words: tuple[str, ...] | None = None
    silence_percentage: float = 10.0
    unknown_percentage: float = 10.0
    unknown_redraw: bool = True
    synthetic_unknown_words: int = 0
    synthetic_unknown_clips: int = 10
    augmentation: AugmentConfig = AugmentConfig()
    models: tuple[str, ...] = MODEL_NAMES
    epochs: int = 50
    batch_size: int = 64
    recipe: Recipe = Recipe()
    seed: int = 0
    clips_per_word: int = 1000
    cache_dir: Path = DEFAULT_CACHE_DIR
    split: SplitSpec = SplitSpec()
    features: FeatureConfig = FeatureConfig()
    verbose: int | str = "auto"
    overwrite: bool = False
    distribution: str = "default"
    mixed_precision: str = "float32"
    data_service: str | None = None
    features_on: str = "auto"
    export: bool = True

    def __post_init__(self) -> None:
        check_model_names(self.models)
        for name in ("epochs", "batch_size", "clips_per_word", "synthetic_unknown_clips"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name} must be at least 1, got {getattr(self, name)!r}")
        check_data_sources(data_dir=self.data_dir, dataset=self.dataset,
                           prepared_dir=self.prepared_dir)
        if self.data_service is not None and self.prepared_dir is None:
            raise InputError("--data_service needs --prepared_dir: the service's workers "
                             "read the prepared shards themselves")
        if self.data_service is not None and self.distribution == "multi_worker":
            raise InputError("--data_service with --distribution=multi_worker is not "
                             "supported: each worker reads its share of every batch itself")
        if self.prepared_dir is not None and self.wanted_words is not None:
            raise InputError("--wanted_words with --prepared_dir: the words are chosen when "
                             "preparing (python -m kws.prepare --wanted_words=...)")
        ExtraClasses(self.silence_percentage, self.unknown_percentage)  # raises when out of range
        if self.synthetic_unknown_words < 0:
            raise InputError("--synthetic_unknown_words must not be negative, got "
                             f"{self.synthetic_unknown_words!r}")
        if self.synthetic_unknown_words and (self.unknown_percentage == 0 or (
                self.data_dir is None and self.dataset is None)):
            raise InputError("--synthetic_unknown_words adds to the _unknown_ class of "
                             "--data_dir or --dataset: it needs one of them and "
                             "--unknown_percentage above 0")
        check_choice("distribution", self.distribution, DISTRIBUTIONS)
        check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        check_choice("features_on", self.features_on, FEATURE_PLACEMENTS)

    @property
    def features_in_train_step(self) -> bool:
        """Whether the train step computes the training features (augmented ones only:
        features that never change are computed once, by the pipeline)."""
        return self.features_on == "accelerator" and self.augmentation.active

    @property
    def extra_classes(self) -> ExtraClasses:
        return ExtraClasses(self.silence_percentage, self.unknown_percentage, self.seed,
                            self.unknown_redraw)


_NESTED = {"split": SplitSpec, "features": FeatureConfig, "augmentation": AugmentConfig,
           "recipe": Recipe}
_PATHS = ("output_dir", "data_dir", "prepared_dir", "cache_dir")


def config_from_report(run_report: dict) -> TrainConfig:
    """The ``TrainConfig`` of a finished run, from its ``report.json`` (settings an older
    run did not record keep their defaults)."""
    def value_of(name, value):
        if name in _NESTED:
            return _NESTED[name](**{key: tuple(item) if isinstance(item, list) else item
                                    for key, item in value.items()})
        if name in _PATHS:
            return Path(value) if value else None
        return tuple(value) if isinstance(value, list) else value

    names = {field.name for field in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{name: value_of(name, value)
                          for name, value in run_report["config"].items() if name in names})


RUN_FILE = "run.json"
# Settings that do not change what a run computes (up to floating-point order), so a
# resumed run may differ in them: a run pre-empted on two GPUs may finish on one.
_PRESENTATION = ("verbose", "overwrite", "distribution", "data_service", "export")


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


def check_writable(output_dir: Path) -> None:
    """Raises ``InputError`` unless a folder can be made where ``output_dir`` will be: a
    read-only path is refused before any data is loaded or synthesised, and nothing is
    left behind."""
    existing = output_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        Path(tempfile.mkdtemp(prefix=".kws-write-probe-", dir=existing)).rmdir()
    except OSError as error:
        raise InputError(f"--output_dir={output_dir}: cannot write there ({error.strerror})") \
            from None


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


def load_data(config: TrainConfig) -> LabelledClips | PreparedClips:
    if config.prepared_dir is not None:
        return load_prepared(config.prepared_dir)
    if config.dataset is not None or config.data_dir is not None:
        data = load_folder(*words_folder(config.data_dir, config.dataset, config.wanted_words,
                                         config.cache_dir),
                           config.features, config.split, config.extra_classes)
        if not config.synthetic_unknown_words:
            return data
        if UNKNOWN not in data.labels:
            raise InputError(f"--synthetic_unknown_words: {data.source} has no other words, "
                             f"so no {UNKNOWN} class to add them to")
        wanted = tuple(label for label in data.labels if label not in (SILENCE, UNKNOWN))
        words, clips, speakers = load_other_words(
            wanted, config.synthetic_unknown_words, config.synthetic_unknown_clips,
            config.seed, config.features, config.cache_dir)
        return data.with_training_clips(clips, UNKNOWN, speakers, words)
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


class EpochSeconds(keras.callbacks.Callback):
    """Adds each epoch's wall time to its logs, so the CSV history keeps it and a resumed
    run still knows how long the whole training took."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["seconds"] = time.monotonic() - self.start


class BestWeights(keras.callbacks.Callback):
    """Saves the weights of each epoch that beats the best validation accuracy so far, or
    ties it when ``ties`` is ``last``: a few hundred validation clips tie often, and the
    last of the tied epochs is the one the decaying learning rate has trained furthest
    (the first kept epoch 17 to 27 of 50 on real voices).

    Like ``ModelCheckpoint(save_best_only=True)``, but written to a temporary name and
    renamed (ModelCheckpoint writes in place; a kill during the write left a torn file
    that the resumed run could not load), and with the accuracy of the saved weights kept
    beside them, so a resumed run compares against what is really on disk.

    Args:
        path: Where the weights go; must end in ``.weights.h5``.
        model: The model whose weights are saved (the one fitted may wrap it).
        ties: ``first`` or ``last``: which of the epochs that tie on the best validation
            accuracy to keep.
    """

    def __init__(self, path: Path, model: keras.Model, ties: str = "first"):
        super().__init__()
        self.path = path
        self.weights_of = model
        self.better = (lambda new, best: new >= best) if ties == "last" else \
            (lambda new, best: new > best)
        self.record = path.with_name(path.name.removesuffix(".weights.h5") + ".json")
        self.best = -np.inf
        if path.is_file() and self.record.is_file():
            self.best = json.loads(self.record.read_text())["val_accuracy"]

    def saved(self) -> dict:
        """Epoch (from 1) and validation accuracy of the weights on disk."""
        return json.loads(self.record.read_text())

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        accuracy = (logs or {}).get("val_accuracy")
        if accuracy is not None and self.better(accuracy, self.best):
            self.best = accuracy
            with fileio.atomic_path(self.path, suffix=".weights.h5") as tmp:
                self.weights_of.save_weights(tmp)
            fileio.write_text_atomic(self.record, json.dumps(
                {"epoch": epoch + 1, "val_accuracy": float(accuracy)}))


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


def on_waveforms(model: keras.Model, training_features: TrainingFeatures,
                 clip_samples: int) -> keras.Model:
    """``model`` behind ``training_features``: trained on ``((waveforms, seeds), labels)``
    batches (``waveform_batches``), so the accelerator computes the features; it shares
    ``model``'s weights and compiled loss, metrics and optimizer."""
    waveforms = keras.Input((clip_samples,), name="waveforms")
    seeds = keras.Input((), dtype="int64", name="seeds")
    fitted = keras.Model([waveforms, seeds], model(training_features([waveforms, seeds])),
                         name=f"{model.name}_on_waveforms")
    fitted.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"])
    return fitted


def steps_per_epoch(data: LabelledClips | PreparedClips, batch_size: int) -> int:
    """Training steps in one epoch (the learning-rate schedule counts steps)."""
    clips = data.splits[TRAINING].epoch_size if isinstance(data, LabelledClips) \
        else data.split_sizes()[TRAINING]
    return -(-clips // batch_size)


def train_one(name: str, config: TrainConfig, front_end: FrontEnd,
              data: LabelledClips | PreparedClips, datasets: dict,
              strategy: tf.distribute.Strategy,
              training_features: TrainingFeatures | None = None,
              ) -> tuple[keras.Model, dict, dict]:
    """Trains one model, resuming from its last completed epoch when an earlier run of the
    same settings was stopped; returns it with its best-validation weights, its results
    and its whole per-epoch history. With ``training_features`` the training batches are
    waveforms, and the features are computed in the train step (on the accelerator)."""
    checkpoints = config.output_dir / "checkpoints"
    history_path = checkpoints / f"{name}.history.csv"
    earlier = read_history(history_path)
    done = len(earlier.get("loss", []))
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():  # variables mirrored on every replica
        model = build_model(name, len(front_end.labels), front_end.features.feature_shape,
                            dropout=config.recipe.dropout)
        model.compile(optimizer=config.recipe.optimizer(config.epochs,
                                                       steps_per_epoch(data, config.batch_size)),
                      loss=config.recipe.loss(), metrics=["accuracy"])
        fitted = model if training_features is None else \
            on_waveforms(model, training_features, front_end.features.clip_samples)
    best_weights = BestWeights(checkpoints / f"{name}.best.weights.h5", model,
                               config.recipe.best_of_ties)
    if done < config.epochs:
        if done:
            logging.info("Resuming %s after epoch %d of %d", name, done, config.epochs)
        else:
            logging.info("Training %s (%s parameters) for %d epochs", name,
                         f"{model.count_params():,}", config.epochs)
        callbacks = [  # in this order: a kill between them re-runs one epoch, loses none
            collective.Validation(model, datasets["validation"]),
            EpochSeconds(),
            keras.callbacks.CSVLogger(str(history_path), append=True),
            best_weights,
        ]
        if config.distribution == "multi_worker":
            collective.fit(fitted, datasets["training"], config.epochs, callbacks, strategy,
                           config.batch_size, config.recipe.loss(reduction=None))
        else:
            # Weights, optimizer state and epoch, kept twice so a torn file is survivable.
            callbacks.append(keras.callbacks.BackupAndRestore(
                str(checkpoints / f"{name}.backup"), double_checkpoint=True))
            fitted.fit(datasets["training"], epochs=config.epochs, callbacks=callbacks,
                       verbose=config.verbose,
                       shuffle=False)  # the dataset reshuffles itself every epoch
    model.load_weights(best_weights.path)
    scores, test_labels = collective.scores_and_labels(collective.compiled_forward(model),
                                                       datasets["testing"])
    predictions = np.argmax(scores, axis=-1)
    history = read_history(history_path)
    best = best_weights.saved()
    results = {
        "params": model.count_params(),
        "test_accuracy": float(np.mean(predictions == test_labels)),
        "val_accuracy": best["val_accuracy"],
        "epochs": len(history["loss"]),
        "best_epoch": best["epoch"],
        "resumed_after_epoch": done,
        "train_seconds": round(sum(history["seconds"]), 1),  # every session's epochs
        "confusion_matrix": report.confusion_matrix(
            test_labels, predictions, len(front_end.labels)).tolist(),
    }
    return model, results, history


def _local_datasets(config: TrainConfig, data: LabelledClips | PreparedClips,
                    front_end: FrontEnd) -> dict:
    """The pipelines as this process computes them."""
    datasets = {name: make_dataset(data.clip_source(name), front_end, config.batch_size)
                for name in (VALIDATION, TESTING)}
    augmentation = config.augmentation
    if not augmentation.active:
        datasets[TRAINING] = make_dataset(data.clip_source(TRAINING), front_end,
                                          config.batch_size, shuffle_seed=config.seed)
        return datasets
    if augmentation.background_frequency > 0 and not data.background:
        logging.info("No _background_noise_ recordings: training clips get no noise mixed in")
    logging.info("Augmenting training clips: %s", augmentation)
    logging.info("Augmented training features are computed %s (--features_on=%s)",
                 "in the train step" if config.features_in_train_step
                 else "by the input pipeline", config.features_on)
    if config.features_in_train_step:
        datasets[TRAINING] = waveform_batches(data.clip_source(TRAINING), config.batch_size,
                                              config.seed)
        return datasets
    datasets[TRAINING] = make_augmented_dataset(
        data.clip_source(TRAINING), front_end, config.batch_size, config.seed, augmentation,
        data.background)
    return datasets


def make_datasets(config: TrainConfig, data: LabelledClips | PreparedClips,
                  front_end: FrontEnd) -> dict:
    """A ``tf.data`` pipeline per split; only the training split is augmented, and
    computed by the tf.data service when ``config.data_service`` names one."""
    datasets = _local_datasets(config, data, front_end)
    if config.data_service is not None:
        logging.info("Training batches come from the tf.data service at %s",
                     config.data_service)
        datasets[TRAINING] = on_data_service(datasets[TRAINING], config.data_service)
    return datasets


def train(config: TrainConfig) -> dict | None:
    """Loads the data, trains every model of ``config.models``, writes the run folder.

    Returns the report that ``report.json`` holds. In a multi-worker run every worker
    calls this with the same flags; only the chief writes ``output_dir`` and gets the
    report, the others train in step with it in a scratch folder deleted at the end and
    get None.
    """
    strategy = distribute.make_strategy(config.distribution)
    distribute.set_precision(config.mixed_precision)
    config = dataclasses.replace(config,
                                 features_on=distribute.place_features(config.features_on))
    if distribute.is_chief(strategy):
        run_report = train_with(config, strategy, export=config.export)
    else:
        logging.info("Not the chief: training in step with it; the chief writes the run")
        with tempfile.TemporaryDirectory(prefix="kws-worker-") as scratch:
            train_with(dataclasses.replace(config, output_dir=Path(scratch) / "run"),
                       strategy, export=False)
        run_report = None
    if config.distribution == "multi_worker":
        collective.barrier(strategy)  # no worker leaves while the chief still exports
    return run_report


def train_with(config: TrainConfig, strategy: tf.distribute.Strategy, export: bool) -> dict:
    """``train``'s work under ``strategy``; ``export`` also writes the gru's TFLite files."""
    resuming = check_run_folder(config)
    if resuming and config.distribution == "multi_worker":
        raise InputError(
            f"--output_dir={config.output_dir} holds an earlier run, and multi-worker runs "
            "do not resume: pass --overwrite or a new folder to the chief (stop the other "
            "workers, which wait for it)")
    check_writable(config.output_dir)
    if config.data_service is not None:
        check_data_service(config.data_service)
    data = load_data(config)
    _log_skipped(data)
    data.check_splits_not_empty()
    start_run_folder(config, resuming)  # only now: bad input leaves no empty run folder
    if data.synthetic_words:
        fileio.write_text_atomic(config.output_dir / SYNTHETIC_WORDS_FILE,
                                 "\n".join(data.synthetic_words) + "\n")
        logging.info("Training %s adds %d synthetic words (listed in %s)", UNKNOWN,
                     len(data.synthetic_words), SYNTHETIC_WORDS_FILE)
    if resuming:
        logging.info("Resuming the run in %s (--overwrite starts it afresh)", config.output_dir)
    logging.info("Data: %s; labels %s; clips %s", data.source, ", ".join(data.labels),
                 data.split_sizes())
    distribute.log_strategy(strategy, config.batch_size,
                           config.recipe.learning_rate)

    front_end = FrontEnd(features=config.features,
                         normalization=data.training_normalization(config.features),
                         labels=data.labels)
    front_end.save(config.output_dir)
    # The datasets' shuffles take TensorFlow's global seed too: the same for every run of
    # the same --seed, not whatever an earlier run in this process left.
    keras.utils.set_random_seed(config.seed)
    datasets = make_datasets(config, data, front_end)
    training_features = TrainingFeatures(front_end, config.augmentation, data.background) \
        if config.features_in_train_step else None

    run_report = {
        "run": config.output_dir.name,
        "data": {
            "source": data.source,
            "labels": list(data.labels),
            "split_sizes": data.split_sizes(),
            "skipped": [dataclasses.asdict(item) for item in data.skipped],
            "synthetic_unknown_words": list(data.synthetic_words),
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
        model, results, histories[name] = train_one(name, config, front_end, data, datasets,
                                                    strategy, training_features)
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
    distribute.set_precision("float32")  # the export computes in float32 whatever trained
    if export and "gru" in config.models:
        from kws.export import export_run

        run_report["export"] = export_run(
            config.output_dir / "gru.keras", data, front_end,
            run_report["models"]["gru"]["test_accuracy"], run_report["config"])["files"]
        report.write_report(config.output_dir, run_report)
    return run_report
