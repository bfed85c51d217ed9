"""Training the study's models on one data source, and writing the run folder
(its configuration and data: ``kws.run``)."""

from __future__ import annotations

import csv
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
from absl import logging

from kws import collective, distribute, fileio, mixup, report
from kws.config import (
    FrontEnd,
)
from kws.data.dataset import LabelledClips
from kws.data.folder import UNKNOWN
from kws.data.pipeline import (
    ClipSource,
    TrainingFeatures,
    check_data_service,
    labels_twice,
    make_augmented_dataset,
    make_dataset,
    on_data_service,
    waveform_batches,
    worth_compiling,
)
from kws.data.prepared import PreparedClips
from kws.data.rooms import ROOM_COUNT, room_bank
from kws.data.split import TESTING, TRAINING, VALIDATION
from kws.errors import InputError
from kws.models import build_model
from kws.run import (
    SYNTHETIC_WORDS_FILE,
    TrainConfig,
    check_run_folder,
    check_writable,
    load_data,
    saved_config,
    start_run_folder,
)

if TYPE_CHECKING:
    import tensorflow as tf

SKIPPED_SHOWN = 5


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
    (the first kept epoch 17 to 27 of 50 on real voices). With ``kept`` ``last`` every
    epoch replaces the one before, so the run ends with the final epoch's weights.

    Like ``ModelCheckpoint(save_best_only=True)``, but a kill at any moment leaves a record
    (``NAME.best.json``: epoch, validation accuracy, weights file) that names complete
    weights of that very epoch: each epoch's weights go to a file of their own
    (``NAME.best-epoch-N.weights.h5``, written to a temporary name and renamed), the
    record is then replaced in one rename, and only then is the previous file deleted.
    (ModelCheckpoint writes in place; a kill during the write left a torn file that the
    resumed run could not load. Writing weights and record one after the other in place
    left, killed between the two, weights of one epoch under the record of another.)

    Args:
        folder: Where the weights and the record go.
        name: The model's name, which starts every file name.
        model: The model whose weights are saved (the one fitted may wrap it).
        ties: ``first`` or ``last``: which of the epochs that tie on the best validation
            accuracy to keep.
        kept: ``best`` (by validation accuracy and ``ties``) or ``last`` (every epoch).
    """

    def __init__(self, folder: Path, name: str, model: keras.Model, ties: str = "first",
                 kept: str = "best"):
        super().__init__()
        self.folder, self.name = folder, name
        self.weights_of = model
        self.better = (lambda new, best: True) if kept == "last" else \
            (lambda new, best: new >= best) if ties == "last" else \
            (lambda new, best: new > best)
        self.record = folder / f"{name}.best.json"
        self.best = -np.inf
        if self.record.is_file():  # a resumed run
            self.best = self.saved()["val_accuracy"]
            self._remove_unnamed()

    def saved(self) -> dict:
        """Epoch (from 1), validation accuracy and weights file of the weights on disk."""
        return json.loads(self.record.read_text())

    @property
    def path(self) -> Path:
        """The saved weights."""
        return self.folder / self.saved()["weights"]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        accuracy = (logs or {}).get("val_accuracy")
        if accuracy is None or not self.better(accuracy, self.best):
            return
        self.best = accuracy
        weights = self.folder / f"{self.name}.best-epoch-{epoch + 1}.weights.h5"
        with fileio.atomic_path(weights, suffix=".weights.h5") as tmp:
            self.weights_of.save_weights(tmp)
        fileio.write_text_atomic(self.record, json.dumps(
            {"epoch": epoch + 1, "val_accuracy": float(accuracy), "weights": weights.name}))
        self._remove_unnamed()

    def _remove_unnamed(self) -> None:
        """Deletes earlier epochs' weights and what a kill left half written: whatever
        the record does not name."""
        named = self.path
        for stale in [*self.folder.glob(f"{self.name}.best-epoch-*.weights.h5"),
                      *self.folder.glob(f".{self.name}.best-epoch-*")]:
            if stale != named:
                stale.unlink(missing_ok=True)


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


def compiled_like(fitted: keras.Model, model: keras.Model) -> keras.Model:
    """``fitted``, a model around ``model``, compiled with ``model``'s optimizer and loss
    and an accuracy that reads plain and mixed targets (``kws.mixup``)."""
    fitted.compile(optimizer=model.optimizer, loss=model.loss, metrics=[mixup.accuracy()])
    return fitted


def fitted_model(model: keras.Model, training_features: TrainingFeatures | None,
                 mixup_alpha: float, clip_samples: int) -> keras.Model:
    """``model`` as the train step fits it. With ``training_features`` it takes
    ``(waveforms, seeds)`` batches (``waveform_batches``), so the accelerator computes the
    features; with ``mixup_alpha`` it mixes the features in pairs (``kws.mixup.Mixup``),
    taking ``(features, seeds)`` when the input pipeline computes them. It shares
    ``model``'s weights and compiled loss and optimizer."""
    if training_features is None and not mixup_alpha:
        return model
    seeds = keras.Input((), dtype="int64", name="seeds")
    if training_features is None:
        clips = features = keras.Input(model.input_shape[1:], name="features")
    else:
        clips = keras.Input((clip_samples,), name="waveforms")
        features = training_features([clips, seeds])
    if mixup_alpha:
        features = mixup.Mixup(mixup_alpha)([features, seeds])
    return compiled_like(keras.Model([clips, seeds], model(features),
                                     name=f"{model.name}_fitted"), model)


def carried_state_frames(model: keras.Model, recipe_ms: float, front_end: FrontEnd) -> int:
    """Frames of the clip before that ``with_carried_state`` runs first: ``recipe_ms`` at
    the front end's hop for a model with a recurrent layer, 0 for one without a state."""
    if not any(isinstance(layer, keras.layers.RNN) for layer in model.layers):
        return 0
    return min(round(recipe_ms / front_end.features.hop_ms), front_end.features.num_frames)


def with_carried_state(model: keras.Model, frames: int) -> keras.Model:
    """``model`` scoring each clip twice: from a zero state, as the window model runs it,
    and after the last ``frames`` frames of the clip before it in the batch, as a stream's
    never-reset state carries earlier audio in. Gives ``(batch, 2, classes)`` for labels
    ``(batch, 2)`` (``labels_twice``); it shares ``model``'s weights, loss and optimizer."""
    def scores(features):
        for layer in model.layers:  # the recurrent layers take any length
            features = layer(features)
        return features

    clips = keras.Input(model.input_shape[1:], name="features")
    earlier = keras.ops.roll(clips, 1, axis=0)[:, -frames:]
    both = [scores(clips), scores(keras.ops.concatenate([earlier, clips], axis=1))]
    return compiled_like(keras.Model(clips, keras.ops.stack(both, axis=1),
                                     name=f"{model.name}_with_carried_state"), model)


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
    same settings was stopped; returns it with the weights ``Recipe.kept_epoch`` keeps, its
    results and its whole per-epoch history. With ``training_features`` the training
    batches are waveforms, and the features are computed in the train step (on the
    accelerator)."""
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
        carried_frames = carried_state_frames(model, config.recipe.carried_state_ms, front_end)
        trained = with_carried_state(model, carried_frames) if carried_frames else model
        fitted = fitted_model(trained, training_features, config.augmentation.mixup_alpha,
                              front_end.features.clip_samples)
    training = labels_twice(datasets["training"]) if carried_frames else datasets["training"]
    best_weights = BestWeights(checkpoints, name, model, config.recipe.best_of_ties,
                               config.recipe.kept_epoch)
    forward = collective.compiled_forward(model)  # scores validation, then the test split
    if done < config.epochs:
        if carried_frames:
            logging.info("%s also learns each clip after %d frames of the clip before it "
                         "(--carried_state_ms)", name, carried_frames)
        if done:
            logging.info("Resuming %s after epoch %d of %d", name, done, config.epochs)
        else:
            logging.info("Training %s (%s parameters) for %d epochs", name,
                         f"{model.count_params():,}", config.epochs)
        callbacks = [  # in this order: a kill between them re-runs one epoch, loses none
            collective.Validation(forward, datasets["validation"]),
            EpochSeconds(),
            keras.callbacks.CSVLogger(str(history_path), append=True),
            best_weights,
        ]
        if config.distribution == "multi_worker":
            collective.fit(fitted, training, config.epochs, callbacks, strategy,
                           config.batch_size * (2 if carried_frames else 1),
                           config.recipe.loss(reduction=None))
        else:
            # Weights, optimizer state and epoch, kept twice so a torn file is survivable.
            callbacks.append(keras.callbacks.BackupAndRestore(
                str(checkpoints / f"{name}.backup"), double_checkpoint=True))
            fitted.fit(training, epochs=config.epochs, callbacks=callbacks,
                       verbose=config.verbose,
                       shuffle=False)  # the dataset reshuffles itself every epoch
    # Restored from the backup on resume, so a stopped run ends where an unstopped one does.
    optimizer_steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations)) \
        if done < config.epochs else None
    model.load_weights(best_weights.path)
    scores, test_labels = collective.scores_and_labels(forward, datasets["testing"])
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
        "optimizer_steps": optimizer_steps,
        "train_seconds": round(sum(history["seconds"]), 1),  # every session's epochs
        "confusion_matrix": report.confusion_matrix(
            test_labels, predictions, len(front_end.labels)).tolist(),
    }
    return model, results, history


def room_responses(config: TrainConfig) -> np.ndarray | None:
    """The simulated rooms the augmentation draws from, or None when it uses none."""
    if not (config.augmentation.active and config.augmentation.room_frequency):
        return None
    # Half a second of each room: its tail at 0.8 s RT60 is 37 dB down by then.
    return room_bank(ROOM_COUNT, 0, config.features.sample_rate,
                     config.features.clip_samples // 2, config.cache_dir)


def make_evaluation_datasets(config: TrainConfig, data: LabelledClips | PreparedClips,
                             front_end: FrontEnd) -> dict:
    """The validation and test pipelines, never augmented: the same for every model."""
    return {VALIDATION: make_dataset(data.clip_source(VALIDATION), front_end,
                                     config.batch_size, epochs=config.epochs),
            TESTING: make_dataset(data.clip_source(TESTING), front_end, config.batch_size)}


def make_training_dataset(config: TrainConfig, front_end: FrontEnd, training: ClipSource,
                          features: TrainingFeatures | None) -> tf.data.Dataset:
    """The training batches of ``training`` from the seed's first epoch on, augmented by
    ``features`` (``build_training_features``; None without augmentation) in the input
    pipeline, or left to the train step when it computes them; with mixup, the clips' seeds
    beside them and mixed targets (``kws.mixup``); by the tf.data service when
    ``config.data_service`` names one."""
    if not config.augmentation.active:
        dataset = make_dataset(training, front_end, config.batch_size,
                               shuffle_seed=config.seed, epochs=config.epochs)
    elif config.features_in_train_step:
        dataset = waveform_batches(training, config.batch_size, config.seed)
    else:
        dataset = make_augmented_dataset(training, features, config.batch_size, config.seed,
                                         keep_seeds=bool(config.augmentation.mixup_alpha))
    if config.augmentation.mixup_alpha:
        dataset = mixup.with_mixed_targets(dataset, config.augmentation.mixup_alpha)
    if config.data_service is not None:
        return on_data_service(dataset, config.data_service)
    return dataset


def build_training_features(config: TrainConfig, data: LabelledClips | PreparedClips,
                            front_end: FrontEnd, training: ClipSource,
                            ) -> TrainingFeatures | None:
    """The run's augmented training features (None without augmentation), built here alone
    so that the input pipeline and the train step compute the same ones (the pipeline once
    left the rooms out): ``training``, the run's training clips, decides whether XLA
    compiles them, which pays when the run computes enough of them to win the compile time
    back."""
    augmentation = config.augmentation
    if not augmentation.active:
        return None
    if augmentation.background_frequency > 0 and not data.background:
        logging.info("No _background_noise_ recordings: no recorded noise is mixed in")
    xla = worth_compiling(training.shuffled_size * config.epochs)
    logging.info("Augmenting training clips: %s", augmentation)
    logging.info("Augmented training features are computed %s (--features_on=%s), %s",
                 "in the train step" if config.features_in_train_step
                 else "by the input pipeline", config.features_on,
                 "compiled by XLA" if xla
                 else "not compiled by XLA (too few clips to win its compile time back)")
    return TrainingFeatures(front_end, augmentation, data.background, room_responses(config),
                            xla)


def make_datasets(config: TrainConfig, data: LabelledClips | PreparedClips,
                  front_end: FrontEnd, training: ClipSource) -> dict:
    """A ``tf.data`` pipeline per split, ``training`` being ``data``'s training clips; only
    the training split is augmented (``make_training_dataset``)."""
    features = build_training_features(config, data, front_end, training)
    return {**make_evaluation_datasets(config, data, front_end),
            TRAINING: make_training_dataset(config, front_end, training, features)}


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
    # One source of the training clips (in memory, a copy of the split) and one set of
    # augmented features serve the input pipeline or the train step of every model.
    training = data.clip_source(TRAINING)
    features = build_training_features(config, data, front_end, training)
    evaluation = make_evaluation_datasets(config, data, front_end)
    if config.data_service is not None:
        logging.info("Training batches come from the tf.data service at %s",
                     config.data_service)

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
        # Each model's batches start at the seed's first epoch (the training dataset's
        # shuffles take TensorFlow's global seed too), whatever trained before it:
        # --models=gru trains the gru of a run of all three, and a run resumed after its fc
        # finished trains the cnn of an unstopped one.
        keras.utils.set_random_seed(config.seed)
        datasets = {**evaluation,
                    TRAINING: make_training_dataset(config, front_end, training, features)}
        model, results, histories[name] = train_one(
            name, config, front_end, data, datasets, strategy,
            features if config.features_in_train_step else None)
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
