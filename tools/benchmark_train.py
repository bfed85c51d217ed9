"""Where training time goes: the input pipeline alone, the train step alone, and both.

For each model it prints clips per second of
  - the input pipeline alone: the real training pipeline (augmentation, log-mel features,
    SpecAugment, batching) iterated without a model;
  - the train step alone: one forward and backward pass on a batch already in memory;
  - the two together: ``model.fit`` on the pipeline.
A pipeline slower than the step starves the accelerator. With ``--data_dir`` and/or
``--prepared_dir`` it also prints how fast clips are read: decoded from the WAV folder, or
streamed from the TFRecord files of ``python -m kws.prepare``.

    python tools/benchmark_train.py --models=fc,cnn,gru --batch_size=64
    python tools/benchmark_train.py --data_dir=my_words --json=train_speed.json
    python tools/benchmark_train.py --data_dir=my_words --prepared_dir=my_words_prepared
    python tools/benchmark_train.py --backend=jax --data=synthetic   # needs no TensorFlow

With ``--backend=jax`` only the train step is measured (the pipeline is tf.data).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

_MODELS = flags.DEFINE_list("models", ["fc", "cnn", "gru"], "Models to measure.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Clips per step.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps (batches) per measurement.",
                              lower_bound=1)
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 5, "Untimed steps first (tracing, "
                                     "caches).", lower_bound=1)
_BACKEND = flags.DEFINE_enum("backend", "tensorflow", ["tensorflow", "jax"],
                             "Keras backend for the model.")
_DATA = flags.DEFINE_enum("data", "synthetic", ["synthetic"],
                          "synthetic: random one-second clips in memory (no eSpeak, no files).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Measure the pipeline on the clips of this "
                                "labelled folder instead (TensorFlow backend), and how fast "
                                "its WAV files decode.")
_PREPARED_DIR = flags.DEFINE_string(
    "prepared_dir", None, "Measure the pipeline streaming the training split of this "
    "kws.prepare folder (it wins over --data_dir), and how fast its records are read.")
_JSON = flags.DEFINE_string("json", None, "Write the figures to this JSON file.")
_SEED = flags.DEFINE_integer("seed", 0, "Fixes the synthetic clips and initial weights.")


def clips_per_second(run_step, steps: int, warmup_steps: int, batch_size: int) -> float:
    for _ in range(warmup_steps):
        run_step()
    start = time.perf_counter()
    for _ in range(steps):
        run_step()
    return steps * batch_size / (time.perf_counter() - start)


def synthetic_clips(count: int, num_classes: int, clip_samples: int, seed: int):
    """Quiet noise clips with random labels: what the pipeline costs does not depend on
    what the clips say."""
    import numpy as np

    rng = np.random.default_rng(seed)
    clips = (rng.standard_normal((count, clip_samples)) * 0.05).astype(np.float32)
    return clips, rng.integers(num_classes, size=count)


def measure_step(model, batch_size: int, feature_shape, num_classes: int, seed: int) -> float:
    import numpy as np

    rng = np.random.default_rng(seed)
    features = rng.standard_normal((batch_size, *feature_shape)).astype(np.float32)
    labels = rng.integers(num_classes, size=batch_size)
    return clips_per_second(lambda: model.train_on_batch(features, labels), _STEPS.value,
                            _WARMUP_STEPS.value, batch_size)


def tensorflow_pipeline(batch_size: int, seed: int):
    """The training pipeline of ``kws.train`` on synthetic, folder or prepared clips,
    repeated."""

    from kws.config import FeatureConfig, FrontEnd, Normalization
    from kws.data.augment import AugmentConfig
    from kws.data.dataset import ClipSet
    from kws.data.folder import ExtraClasses, load_folder
    from kws.data.pipeline import make_augmented_dataset, memory_source
    from kws.data.prepared import load_prepared
    from kws.data.split import SplitSpec

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
    dataset = make_augmented_dataset(training, front_end, batch_size, seed, AugmentConfig(),
                                     background).repeat()
    return dataset, len(labels), config.feature_shape, training.size


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


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        sys.exit(f"benchmark_train: error: unexpected arguments {argv[1:]}")
    if _BACKEND.value == "jax" and (_DATA_DIR.value or _PREPARED_DIR.value):
        sys.exit("benchmark_train: error: --data_dir and --prepared_dir need "
                 "--backend=tensorflow (tf.data)")
    os.environ["KERAS_BACKEND"] = _BACKEND.value  # before Keras is first imported
    import keras

    from kws.errors import InputError
    from kws.models import MODEL_NAMES, build_model, check_model_names

    batch_size, seed = _BATCH_SIZE.value, _SEED.value
    try:
        check_model_names(_MODELS.value)
        pipeline = tensorflow_pipeline(batch_size, seed) if _BACKEND.value == "tensorflow" \
            else None
        reading = reading_figures(batch_size, seed) if pipeline else {}
    except InputError as error:
        sys.exit(f"benchmark_train: error: {error}")
    num_classes, feature_shape = (pipeline[1], pipeline[2]) if pipeline else (3, (101, 40))
    figures = {"backend": keras.backend.backend(), "batch_size": batch_size,
               "devices": keras.distribution.list_devices(),
               "data": _PREPARED_DIR.value or _DATA_DIR.value or "synthetic",
               "steps": _STEPS.value, **reading, "models": {}}
    if pipeline:
        batches = iter(pipeline[0])
        figures["pipeline_clips_per_second"] = clips_per_second(
            lambda: next(batches), _STEPS.value, _WARMUP_STEPS.value, batch_size)
    print(f"backend {figures['backend']}, devices {', '.join(figures['devices'])}, batch "
          f"{batch_size}" + (f"; input pipeline alone: "
                             f"{figures['pipeline_clips_per_second']:,.0f} clips/s"
                             if pipeline else ""))
    for key, label in (("wav_folder_clips_per_second", "WAV folder"),
                       ("prepared_clips_per_second", "prepared records")):
        if key in reading:
            print(f"reading clips from the {label}: {reading[key]:,.0f} clips/s")
    if "prepared_over_wav_folder" in reading:
        print(f"prepared records / WAV folder: {reading['prepared_over_wav_folder']:.1f}x")
    for name in [n for n in MODEL_NAMES if n in _MODELS.value]:
        keras.utils.set_random_seed(seed)
        model = build_model(name, num_classes, feature_shape)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        result = {"step_clips_per_second": measure_step(model, batch_size, feature_shape,
                                                        num_classes, seed)}
        line = f"{name:<4} train step alone: {result['step_clips_per_second']:>9,.0f} clips/s"
        if pipeline:
            model.fit(pipeline[0], steps_per_epoch=_WARMUP_STEPS.value, epochs=1, verbose=0,
                      shuffle=False)
            start = time.perf_counter()
            model.fit(pipeline[0], steps_per_epoch=_STEPS.value, epochs=1, verbose=0,
                      shuffle=False)
            result["fit_clips_per_second"] = _STEPS.value * batch_size / (
                time.perf_counter() - start)
            result["pipeline_over_step"] = figures["pipeline_clips_per_second"] / \
                result["step_clips_per_second"]
            line += (f"   together (fit): {result['fit_clips_per_second']:>9,.0f} clips/s   "
                     f"pipeline / step: {result['pipeline_over_step']:.1f}x")
        print(line)
        figures["models"][name] = result
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
