"""Trains the study's keyword-spotting models: ``python -m kws.train``.

With no ``--data_dir`` it trains on synthetic speech (offline); with one, on
``DATA_DIR/<word>/*.wav`` recordings; with ``--dataset``, on Google Speech Commands;
with ``--prepared_dir``, on clips ``python -m kws.prepare`` decoded into TFRecord files.
Writes a run folder with the models, the feature configuration, the report and
pictures, and prints the study-style table.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from absl import app, flags, logging

from kws import data_flags
from kws.config import (
    BEST_OF_TIES,
    DISTRIBUTIONS,
    FEATURE_PLACEMENTS,
    KEPT_EPOCHS,
    LR_SCHEDULES,
    MODEL_NAMES,
    PRECISIONS,
    check_model_names,
    parse_word_weights,
)
from kws.errors import InputError, describe_os_error

flags.adopt_module_key_flags(data_flags)  # listed by --help with this module's own
_AUGMENT = flags.DEFINE_bool(
    "augment", True, "Augment training clips as --speed_change, --room_frequency, "
    "--microphone_frequency, --gain_db, --background_frequency/--background_volume, "
    "--noise_frequency, --time_shift_ms, the SpecAugment mask flags and --mixup_alpha say; "
    "--noaugment turns all of it off.")
_SYNTHETIC_DEFAULT = " Default: {} for synthetic speech, {} for recordings."
_SPEED_CHANGE = flags.DEFINE_float(
    "speed_change", None, "Training clips play faster or slower by up to this share "
    "(pitch and tempo together)." + _SYNTHETIC_DEFAULT.format(0.1, 0), lower_bound=0.0,
    upper_bound=0.5)
_ROOM_FREQUENCY = flags.DEFINE_float(
    "room_frequency", None, "Share of training clips heard through a simulated room "
    "(RT60 0.1-0.8 s, image-source method)." + _SYNTHETIC_DEFAULT.format(0.5, 0),
    lower_bound=0.0, upper_bound=1.0)
_MICROPHONE_FREQUENCY = flags.DEFINE_float(
    "microphone_frequency", None, "Share of training clips heard through a random "
    "microphone (low and high cut, peaks and dips)." + _SYNTHETIC_DEFAULT.format(0.5, 0),
    lower_bound=0.0, upper_bound=1.0)
_NOISE_FREQUENCY = flags.DEFINE_float(
    "noise_frequency", None, "Share of training clips mixed with noise made on the fly (white "
    "to brown, low rumble, mains hum), at --noise_snr_min_db to --noise_snr_max_db."
    + _SYNTHETIC_DEFAULT.format(0.8, 0),
    lower_bound=0.0, upper_bound=1.0)
_NOISE_SNR_MIN_DB = flags.DEFINE_float(
    "noise_snr_min_db", 0.0, "Lowest signal-to-noise ratio of --noise_frequency's noise, dB.")
_NOISE_SNR_MAX_DB = flags.DEFINE_float(
    "noise_snr_max_db", 30.0, "Highest signal-to-noise ratio of --noise_frequency's noise, dB.")
_GAIN_DB = flags.DEFINE_float(
    "gain_db", None, "Training clips get louder or quieter by up to this many dB, as "
    "speakers and microphones differ." + _SYNTHETIC_DEFAULT.format(30, 10), lower_bound=0.0)
_TIME_SHIFT_MS = flags.DEFINE_float(
    "time_shift_ms", 100.0, "Training clips move by up to this many ms.", lower_bound=0.0)
_BACKGROUND_FREQUENCY = flags.DEFINE_float(
    "background_frequency", 0.8, "Share of training clips mixed with _background_noise_.",
    lower_bound=0.0, upper_bound=1.0)
_BACKGROUND_VOLUME = flags.DEFINE_float(
    "background_volume", 0.1, "Largest volume of mixed-in noise (1 = as recorded).",
    lower_bound=0.0)
_TIME_MASKS = flags.DEFINE_integer("time_masks", 2, "SpecAugment time masks per clip.",
                                   lower_bound=0)
_TIME_MASK_FRAMES = flags.DEFINE_integer(
    "time_mask_frames", 10, "Widest SpecAugment time mask, in 10 ms frames.", lower_bound=0)
_FREQUENCY_MASKS = flags.DEFINE_integer(
    "frequency_masks", 2, "SpecAugment frequency masks per clip.", lower_bound=0)
_FREQUENCY_MASK_BINS = flags.DEFINE_integer(
    "frequency_mask_bins", 5, "Widest SpecAugment frequency mask, in mel bins.", lower_bound=0)
# This module stays light, without TensorFlow: --help, the errors of flags checked here,
# and the synthesis processes that re-import the main module.
_MIXUP_ALPHA = flags.DEFINE_float(
    "mixup_alpha", None, "Mixup: each training clip's features mixed with another clip's of "
    "its batch and its target by the same shares, drawn from Beta(alpha, alpha); 0 turns "
    "it off." + _SYNTHETIC_DEFAULT.format(0.4, 0), lower_bound=0.0)
_MODELS = flags.DEFINE_string(
    "models", ",".join(MODEL_NAMES),
    "Comma-separated models to train: " + ", ".join(MODEL_NAMES) + ".")
_EPOCHS = flags.DEFINE_integer("epochs", 50, "Passes over the training split.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Clips per training step.", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 2e-3, "Adam's (peak) learning rate.",
                                    lower_bound=0.0)
_LR_SCHEDULE = flags.DEFINE_enum(
    "lr_schedule", "cosine", LR_SCHEDULES, "constant, or cosine: linear warm-up over "
    "--warmup_epochs, then cosine decay to zero at the last epoch.")
_WARMUP_EPOCHS = flags.DEFINE_float("warmup_epochs", 2.0, "Epochs of learning-rate warm-up "
                                    "(--lr_schedule=cosine).", lower_bound=0.0)
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 0.0, "Decoupled weight decay (AdamW); 0 "
                                   "trains with plain Adam.", lower_bound=0.0)
_LABEL_SMOOTHING = flags.DEFINE_float("label_smoothing", 0.1, "Share of each training target "
                                      "spread over all classes.", lower_bound=0.0,
                                      upper_bound=0.99)
_DROPOUT = flags.DEFINE_float("dropout", 0.0, "Dropout after every hidden layer of every "
                              "model, in training only (adds no parameters).", lower_bound=0.0,
                              upper_bound=0.99)
_CARRIED_STATE_MS = flags.DEFINE_integer(
    "carried_state_ms", 0, "The gru also learns each training clip after this many ms of the "
    "clip before it, as a stream's never-reset state carries earlier audio in; 0 trains "
    "from a zero state only (the fc and cnn have no state and ignore it).", lower_bound=0)
_SYNTHETIC_UNKNOWN_WORDS = flags.DEFINE_integer(
    "synthetic_unknown_words", 0, "Add this many everyday English words, spoken by eSpeak NG "
    "in the synthetic voices, to the training clips of _unknown_ (never a wanted word or "
    "one that sounds like it; listed in the run folder); 0 for none. Without --data_dir, "
    "the synthetic run gains _unknown_ (these words) and _silence_ (noise only, "
    "--silence_percentage), so a model trained from text alone can reject other sounds.",
    lower_bound=0)
_SYNTHETIC_UNKNOWN_CLIPS = flags.DEFINE_integer(
    "synthetic_unknown_clips", 10, "Clips of each --synthetic_unknown_words word.",
    lower_bound=1)
_SYNTHETIC_KEYWORD_CLIPS = flags.DEFINE_integer(
    "synthetic_keyword_clips", 0, "With --data_dir or --dataset: add this many clips of each "
    "wanted word, spoken by eSpeak NG in the synthetic voices, to the training split; 0 for "
    "none.", lower_bound=0)
_BEST_OF_TIES = flags.DEFINE_enum(
    "best_of_ties", "first", BEST_OF_TIES, "Which of the epochs that tie on the best "
    "validation accuracy the run keeps: the first, or the last (trained furthest).")
_KEPT_EPOCH = flags.DEFINE_enum(
    "kept_epoch", None, KEPT_EPOCHS, "Whose weights the run keeps: best (the epoch of the "
    "best validation accuracy, ties as --best_of_ties says) or last (the final epoch's). "
    "Default: last for synthetic speech, whose validation voices score 98-100 % from about "
    "epoch 15 on (gru, cnn) and cannot rank the epochs after it; best for recordings.")
_UNKNOWN_REDRAW = flags.DEFINE_bool(
    "unknown_redraw", True, "Keep every training clip of the other words and draw the "
    "--unknown_percentage share of _unknown_ afresh each epoch, as TensorFlow's "
    "speech_commands does; --nounknown_redraw draws it once for the whole run.")
_UNKNOWN_WORD_WEIGHTS = flags.DEFINE_string(
    "unknown_word_weights", "", "Other words to draw more often into _unknown_, as "
    "word:times (--unknown_word_weights=left:3,go:3): each training clip of the word joins "
    "the pool that many times, on top of the other words' share. For the words the model "
    "takes for a keyword (python -m kws.stream_eval lists them).")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Run folder. A new or empty one starts a run; one holding a stopped "
    "run of the same flags resumes it. Default: export/runs/<date-time>.")
_PREPARED_DIR = flags.DEFINE_string(
    "prepared_dir", None, "A folder written by python -m kws.prepare: train on its clips, "
    "streamed from TFRecord files (large corpora), with the words and split it was "
    "prepared with.")
_DATA_SERVICE = flags.DEFINE_string(
    "data_service", None, "host:port of a tf.data service dispatcher (python -m "
    "kws.data_service): its workers augment the clips and compute the features of the "
    "training batches. Needs --prepared_dir on storage every worker can read.")
_SEED = flags.DEFINE_integer("seed", 0, "Fixes synthetic data, initial weights and shuffling.")
_CLIPS_PER_WORD = flags.DEFINE_integer(
    "clips_per_word", 1000, "Synthetic clips per word (only without --data_dir).", lower_bound=1)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Start afresh in an --output_dir that holds an earlier run, instead "
    "of resuming it from its last completed epoch.")
_DISTRIBUTION = flags.DEFINE_enum(
    "distribution", "default", DISTRIBUTIONS,
    "default: one device, the GPU when there is one; mirrored: every local GPU "
    "(tf.distribute.MirroredStrategy); multi_worker: every machine of the cluster in "
    "TF_CONFIG (tf.distribute.MultiWorkerMirroredStrategy; run the same command on each, "
    "the chief writes the run). --batch_size is the global batch.")
_MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision", "float32", PRECISIONS,
    "Keras dtype policy; the class scores stay float32. mixed_float16 pays off on GPUs "
    "with tensor cores, mixed_bfloat16 on TPUs and recent CPUs/GPUs.")

_FEATURES_ON = flags.DEFINE_enum(
    "features_on", "auto", FEATURE_PLACEMENTS,
    "Where augmented training features are computed: pipeline (tf.data, on the CPU, "
    "beside the train step), accelerator (in the train step, batch by batch; pays off on "
    "a GPU), auto (the accelerator when there is a GPU).")
_EXPORT = flags.DEFINE_bool(
    "export", True, "Export the trained gru to TFLite at the end of the run (float and int8 "
    "window models, an int8 streaming model, manifest.json); --noexport skips it, and "
    "python -m kws.export --model=<run>/gru.keras does it later.")


def config_from_flags():
    """Turns the flags into one frozen ``TrainConfig``; bad values raise ``InputError``."""
    # Checked before TensorFlow loads, so these errors come at once.
    models = data_flags.optional_list(_MODELS.value, "--models")
    check_model_names(models)
    data_settings = data_flags.data_settings()
    from kws.data.augment import (  # these import TensorFlow
        NO_AUGMENTATION,
        SYNTHETIC_AUGMENTATION,
        AugmentConfig,
    )
    from kws.recipe import Recipe
    from kws.run import TrainConfig

    synthetic = (data_settings["data_dir"] is None and data_settings["dataset"] is None
                 and not _PREPARED_DIR.value)
    by_source = {flag.name: flag.value if flag.value is not None
                 else SYNTHETIC_AUGMENTATION[flag.name] if synthetic
                 else getattr(AugmentConfig, flag.name)
                 for flag in (_GAIN_DB, _SPEED_CHANGE, _ROOM_FREQUENCY, _MICROPHONE_FREQUENCY,
                              _NOISE_FREQUENCY, _MIXUP_ALPHA)}
    output_dir = _OUTPUT_DIR.value or Path("export") / "runs" / datetime.datetime.now().strftime(
        "%Y%m%d-%H%M%S")
    return TrainConfig(
        output_dir=Path(output_dir),
        prepared_dir=Path(_PREPARED_DIR.value) if _PREPARED_DIR.value else None,
        **data_settings,
        augmentation=AugmentConfig(
            time_shift_ms=_TIME_SHIFT_MS.value,
            background_frequency=_BACKGROUND_FREQUENCY.value,
            background_volume=_BACKGROUND_VOLUME.value,
            time_masks=_TIME_MASKS.value,
            time_mask_frames=_TIME_MASK_FRAMES.value,
            frequency_masks=_FREQUENCY_MASKS.value,
            frequency_mask_bins=_FREQUENCY_MASK_BINS.value,
            noise_snr_min_db=_NOISE_SNR_MIN_DB.value,
            noise_snr_max_db=_NOISE_SNR_MAX_DB.value,
            **by_source,
        ) if _AUGMENT.value else NO_AUGMENTATION,
        models=models,
        epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value,
        recipe=Recipe(
            learning_rate=_LEARNING_RATE.value,
            lr_schedule=_LR_SCHEDULE.value,
            warmup_epochs=_WARMUP_EPOCHS.value,
            weight_decay=_WEIGHT_DECAY.value,
            label_smoothing=_LABEL_SMOOTHING.value,
            dropout=_DROPOUT.value,
            carried_state_ms=_CARRIED_STATE_MS.value,
            best_of_ties=_BEST_OF_TIES.value,
            kept_epoch=_KEPT_EPOCH.value or ("last" if synthetic else "best"),
        ),
        unknown_redraw=_UNKNOWN_REDRAW.value,
        unknown_word_weights=parse_word_weights(_UNKNOWN_WORD_WEIGHTS.value,
                                                "--unknown_word_weights")
        if _UNKNOWN_WORD_WEIGHTS.value else (),
        synthetic_unknown_words=_SYNTHETIC_UNKNOWN_WORDS.value,
        synthetic_unknown_clips=_SYNTHETIC_UNKNOWN_CLIPS.value,
        synthetic_keyword_clips=_SYNTHETIC_KEYWORD_CLIPS.value,
        seed=_SEED.value,
        clips_per_word=_CLIPS_PER_WORD.value,
        verbose=1 if sys.stdout.isatty() else 2,  # one line per epoch in log files
        overwrite=_OVERWRITE.value,
        distribution=_DISTRIBUTION.value,
        mixed_precision=_MIXED_PRECISION.value,
        data_service=_DATA_SERVICE.value,
        features_on=_FEATURES_ON.value,
        export=_EXPORT.value,
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        sys.exit(f"kws.train: error: unexpected arguments {argv[1:]}; flags look like --epochs=5")
    config = None
    try:
        config = config_from_flags()
        from kws.report import study_table
        from kws.training import train

        run_report = train(config)
    except InputError as error:
        sys.exit(f"kws.train: error: {error}")
    except OSError as error:  # a full disk, a folder made read-only mid-run
        sys.exit(f"kws.train: error: {describe_os_error(error)}; completed epochs are kept, "
                 "rerun the same flags to resume")
    except KeyboardInterrupt:
        # Every completed epoch is backed up: the same command carries on from there.
        where = f" --output_dir={config.output_dir}" if config else ""
        sys.stderr.write(f"\nkws.train: interrupted; rerun the same flags{where} to resume "
                         "from the last completed epoch\n")
        sys.exit(130)
    if run_report is None:
        logging.info("Done; the chief wrote the run.")
        return
    print(f"\nRun folder: {config.output_dir}  (report.md, curves.png, confusion.png, "
          f"{', '.join(f'{name}.keras' for name in config.models)})\n")
    print(study_table(run_report))
    logging.info("Done.")


if __name__ == "__main__":
    app.run(main)
