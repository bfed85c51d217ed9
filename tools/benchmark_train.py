"""Where training time goes: the input pipeline alone, the train step alone, and both.

For each model it prints clips per second of
  - the input pipeline alone: the real training pipeline (augmentation, log-mel features,
    SpecAugment, batching) iterated without a model;
  - the train step alone: ``model.fit`` on one batch already in memory, over and over;
  - the two together: ``model.fit`` on the pipeline.
With ``--rounds`` above 1 each figure is the median of that many measurements, taken in
turn, so a machine whose speed wanders (shared cloud cores) hits them all alike.
A pipeline slower than the step starves the accelerator. With ``--data_dir`` and/or
``--prepared_dir`` it also prints how fast clips are read: decoded from the WAV folder, or
streamed from the TFRecord files of ``python -m kws.prepare``.

    python tools/benchmark_train.py --models=fc,cnn,gru --batch_size=64
    python tools/benchmark_train.py --data_dir=my_words --json=train_speed.json
    python tools/benchmark_train.py --data_dir=my_words --prepared_dir=my_words_prepared
    python tools/benchmark_train.py --features_on=accelerator   # features in the step
    python tools/benchmark_train.py --backend=jax   # random clips in memory, no TensorFlow

With ``--backend=jax`` only the train step is measured (the pipeline is tf.data).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

# noqa: E402 below: kws.config loads no Keras, whose backend main() chooses later.
from kws.config import FEATURE_PLACEMENTS, MODEL_NAMES  # noqa: E402

_MODELS = flags.DEFINE_list("models", list(MODEL_NAMES), "Models to measure.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Clips per step.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps (batches) per measurement.",
                              lower_bound=1)
_WARMUP_STEPS = flags.DEFINE_integer(
    "warmup_steps", 30, "Untimed steps first: tracing, XLA compiling the features (the first "
    "batches of a process streaming records took seconds), shuffle buffers.", lower_bound=1)
_BACKEND = flags.DEFINE_enum("backend", "tensorflow", ["tensorflow", "jax"],
                             "Keras backend for the model.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Measure the pipeline on the clips of this "
                                "labelled folder instead (TensorFlow backend), and how fast "
                                "its WAV files decode.")
_PREPARED_DIR = flags.DEFINE_string(
    "prepared_dir", None, "Measure the pipeline streaming the training split of this "
    "kws.prepare folder (it wins over --data_dir), and how fast its records are read.")
_FEATURES_ON = flags.DEFINE_enum(
    "features_on", "pipeline", FEATURE_PLACEMENTS,
    "As for kws.train: where the augmented features are computed. With accelerator the "
    "pipeline delivers waveforms and the train step computes the features.")
_ROUNDS = flags.DEFINE_integer("rounds", 1, "Measure everything this many times, in turn, "
                               "and report medians.", lower_bound=1)
_JSON = flags.DEFINE_string("json", None, "Write the figures to this JSON file.")
_SEED = flags.DEFINE_integer("seed", 0, "Fixes the synthetic clips and initial weights.")


def clips_per_second(run_steps, batch_size: int) -> float:
    """Clips per second of ``run_steps(count)``, timed for ``--steps`` after
    ``--warmup_steps`` untimed ones (tracing, caches, buffers)."""
    run_steps(_WARMUP_STEPS.value)
    start = time.perf_counter()
    run_steps(_STEPS.value)
    return _STEPS.value * batch_size / (time.perf_counter() - start)


def fitting(model, data):
    """Runs ``count`` steps of ``model.fit`` on ``data`` (endless batches)."""
    return lambda count: model.fit(data, steps_per_epoch=count, epochs=1, verbose=0,
                                   shuffle=False)


def iterating(batches):
    """Takes ``count`` batches from the iterator ``batches``."""
    def take(count: int) -> None:
        for _ in range(count):
            next(batches)
    return take


def synthetic_clips(count: int, num_classes: int, clip_samples: int, seed: int):
    """Quiet noise clips with random labels: what the pipeline costs does not depend on
    what the clips say."""
    import numpy as np

    rng = np.random.default_rng(seed)
    clips = (rng.standard_normal((count, clip_samples)) * 0.05).astype(np.float32)
    return clips, rng.integers(num_classes, size=count)


def one_batch_over_and_over(pipeline, batch_size: int, feature_shape, num_classes: int,
                            seed: int):
    """Endless copies of one batch already in memory: the pipeline's first, else random
    features. ``fit`` on it costs the train step alone (``train_on_batch`` adds a Python
    call per step)."""
    if pipeline:
        import tensorflow as tf

        return tf.data.Dataset.from_tensors(next(iter(pipeline.dataset))).repeat()
    import numpy as np

    rng = np.random.default_rng(seed)
    features = rng.standard_normal((batch_size, *feature_shape)).astype(np.float32)
    labels = rng.integers(num_classes, size=batch_size)

    def endless():
        while True:
            yield features, labels
    return endless()


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """The training pipeline measured, and what the models need to train on it."""

    dataset: Any  # endless tf.data batches
    num_classes: int
    feature_shape: tuple[int, int]
    clip_samples: int
    training_features: Any  # kws.data.pipeline.TrainingFeatures in the step, or None


def tensorflow_pipeline(batch_size: int, seed: int) -> Pipeline:
    """The training pipeline of ``kws.train`` on synthetic, folder or prepared clips,
    repeated: batches of features, or with ``--features_on=accelerator`` of waveforms
    whose features the train step computes."""

    from kws.config import FeatureConfig, FrontEnd, Normalization
    from kws.data.augment import AugmentConfig
    from kws.data.dataset import ClipSet
    from kws.data.folder import ExtraClasses, load_folder
    from kws.data.pipeline import (
        TrainingFeatures,
        make_augmented_dataset,
        memory_source,
        waveform_batches,
    )
    from kws.data.prepared import load_prepared
    from kws.data.split import SplitSpec
    from kws.distribute import place_features

    config = FeatureConfig()
    count = batch_size * (_STEPS.value + _WARMUP_STEPS.value)
    if _PREPARED_DIR.value or _DATA_DIR.value:
        data = load_prepared(_PREPARED_DIR.value) if _PREPARED_DIR.value else load_folder(
            _DATA_DIR.value, None, config, SplitSpec(0.0, 0.0), ExtraClasses())
        training, labels, background = data.clip_source("training"), data.labels, data.background
    else:
        clips, label_indices = synthetic_clips(count, 3, config.clip_samples, seed)
        training = memory_source(ClipSet(clips, label_indices, ("",) * count))
        labels, background = ("yes", "no", "up"), ()
    front_end = FrontEnd(config, Normalization((0.0,) * config.num_mel_bins,
                                               (1.0,) * config.num_mel_bins), labels)
    features = TrainingFeatures(front_end, AugmentConfig(), background)
    if place_features(_FEATURES_ON.value) == "accelerator":
        return Pipeline(waveform_batches(training, batch_size, seed).repeat(), len(labels),
                        config.feature_shape, config.clip_samples, features)
    dataset = make_augmented_dataset(training, features, batch_size, seed).repeat()
    return Pipeline(dataset, len(labels), config.feature_shape, config.clip_samples, None)


def reading_figures(batch_size: int, seed: int) -> dict[str, float]:
    """Clips per second read from the WAV folder (decoded and resampled in threads, as
    ``kws.train --data_dir`` does once per run) and from the prepared records (as
    ``kws.train --prepared_dir`` does every epoch)."""
    import keras

    from kws.config import FeatureConfig
    from kws.data.folder import decode_clips, plan_folder
    from kws.data.prepared import load_prepared
    from kws.data.split import SplitSpec

    figures = {}
    if _DATA_DIR.value:
        paths = [file.path for file in plan_folder(_DATA_DIR.value, None,
                                                   SplitSpec(0.0, 0.0)).files]
        start = time.perf_counter()
        decode_clips(paths, FeatureConfig(), keras.utils.Progbar(len(paths), verbose=0))
        figures["wav_folder_clips_per_second"] = len(paths) / (time.perf_counter() - start)
    if _PREPARED_DIR.value:
        source = load_prepared(_PREPARED_DIR.value).clip_source("training")
        start = time.perf_counter()
        clips = sum(len(labels) for _, labels in source.batches(batch_size, seed))
        figures["prepared_clips_per_second"] = clips / (time.perf_counter() - start)
    if len(figures) == 2:
        figures["prepared_over_wav_folder"] = figures["prepared_clips_per_second"] / \
            figures["wav_folder_clips_per_second"]
    return figures


def measure_round(pipeline: Pipeline | None, num_classes: int, feature_shape) -> dict:
    """One measurement of everything: the pipeline alone, then each model's step alone
    and on the pipeline."""
    import keras

    from kws.models import MODEL_NAMES, build_model

    batch_size, seed = _BATCH_SIZE.value, _SEED.value
    figures = {"models": {}}
    if pipeline:
        figures["pipeline_clips_per_second"] = clips_per_second(
            iterating(iter(pipeline.dataset)), batch_size)
    one_batch = one_batch_over_and_over(pipeline, batch_size, feature_shape, num_classes, seed)
    for name in [n for n in MODEL_NAMES if n in _MODELS.value]:
        keras.utils.set_random_seed(seed)
        model = build_model(name, num_classes, feature_shape)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        if pipeline and pipeline.training_features:
            from kws.training import fitted_model

            model = fitted_model(model, pipeline.training_features, 0.0, pipeline.clip_samples)
        result = figures["models"][name] = {"step_clips_per_second": clips_per_second(
            fitting(model, one_batch), batch_size)}
        if pipeline:
            result["fit_clips_per_second"] = clips_per_second(fitting(model, pipeline.dataset),
                                                              batch_size)
            result["pipeline_over_step"] = figures["pipeline_clips_per_second"] / \
                result["step_clips_per_second"]
    return figures


def medians(rounds: list[dict]):
    """The figures of ``rounds`` (as ``measure_round`` gives them), each the median over
    the rounds."""
    import numpy as np

    if isinstance(rounds[0], dict):
        return {key: medians([one[key] for one in rounds]) for key in rounds[0]}
    return float(np.median(rounds))


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        sys.exit(f"benchmark_train: error: unexpected arguments {argv[1:]}")
    if _BACKEND.value == "jax" and (_DATA_DIR.value or _PREPARED_DIR.value
                                    or _FEATURES_ON.value == "accelerator"):
        sys.exit("benchmark_train: error: --data_dir, --prepared_dir and "
                 "--features_on=accelerator need --backend=tensorflow (tf.data)")
    os.environ["KERAS_BACKEND"] = _BACKEND.value  # before Keras is first imported
    import keras

    from kws.errors import InputError
    from kws.models import check_model_names

    batch_size, seed = _BATCH_SIZE.value, _SEED.value
    try:
        check_model_names(_MODELS.value)
        pipeline = tensorflow_pipeline(batch_size, seed) if _BACKEND.value == "tensorflow" \
            else None
        reading = reading_figures(batch_size, seed) if pipeline else {}
    except InputError as error:
        sys.exit(f"benchmark_train: error: {error}")
    num_classes, feature_shape = (pipeline.num_classes, pipeline.feature_shape) if pipeline \
        else (3, (101, 40))
    figures = {"backend": keras.backend.backend(), "batch_size": batch_size,
               "devices": keras.distribution.list_devices(),
               "data": _PREPARED_DIR.value or _DATA_DIR.value or "synthetic",
               "features_on": "accelerator" if pipeline and pipeline.training_features
               else "pipeline",
               "steps": _STEPS.value, **reading}
    rounds = [measure_round(pipeline, num_classes, feature_shape) for _ in range(_ROUNDS.value)]
    figures.update(medians(rounds))
    if _ROUNDS.value > 1:
        figures["rounds"] = rounds
    for key, label in (("wav_folder_clips_per_second", "WAV folder"),
                       ("prepared_clips_per_second", "prepared records")):
        if key in reading:
            print(f"reading clips from the {label}: {reading[key]:,.0f} clips/s")
    if "prepared_over_wav_folder" in reading:
        print(f"prepared records / WAV folder: {reading['prepared_over_wav_folder']:.1f}x")
    if pipeline:
        print(f"input pipeline alone: {figures['pipeline_clips_per_second']:,.0f} clips/s")
    for name, result in figures["models"].items():
        line = f"{name:<4} train step alone: {result['step_clips_per_second']:>9,.0f} clips/s"
        if pipeline:
            line += (f"   together (fit): {result['fit_clips_per_second']:>9,.0f} clips/s   "
                     f"pipeline / step: {result['pipeline_over_step']:.1f}x")
        print(line)
    if _JSON.value:
        out = Path(_JSON.value)
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            tmp.write_text(json.dumps(figures, indent=2) + "\n")
            os.replace(tmp, out)
        except OSError as error:
            sys.exit(f"benchmark_train: error: --json={out}: cannot write it ({error.strerror})")


if __name__ == "__main__":
    app.run(main)
