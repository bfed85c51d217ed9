"""Trains the study's keyword-spotting models: ``python -m kws.train``.

With no ``--data_dir`` it trains on synthetic speech (offline); with one, on
``DATA_DIR/<word>/*.wav`` recordings. Writes a run folder with the models, the feature
configuration, the report and pictures, and prints the study-style table.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from absl import app, flags, logging

from kws.config import parse_word_list
from kws.errors import InputError

_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder of labelled recordings, DATA_DIR/<word>/*.wav (Speech Commands "
    "layout, any sample rate). Leave out to train on synthetic speech.")
_WANTED_WORDS = flags.DEFINE_string(
    "wanted_words", None, "Comma-separated words to train on. Default: every label folder of "
    "--data_dir, or yes,no,up for synthetic speech.")
# The model names are spelled out rather than imported: importing kws.models loads
# TensorFlow, and this module must stay light (--help, and the synthesis processes that
# re-import the main module).
_MODELS = flags.DEFINE_string(
    "models", "fc,cnn,gru", "Comma-separated models to train: fc, cnn, gru.")
_EPOCHS = flags.DEFINE_integer("epochs", 50, "Passes over the training split.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Clips per training step.", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.",
                                    lower_bound=0.0)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Run folder. A new or empty one starts a run; one holding a stopped "
    "run of the same flags resumes it. Default: export/runs/<date-time>.")
_SEED = flags.DEFINE_integer("seed", 0, "Fixes synthetic data, initial weights and shuffling.")
_CLIPS_PER_WORD = flags.DEFINE_integer(
    "clips_per_word", 1000, "Synthetic clips per word (only without --data_dir).", lower_bound=1)
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", str(Path.home() / ".cache" / "kws"), "Where synthetic speech is cached.")
_VALIDATION_PERCENTAGE = flags.DEFINE_float(
    "validation_percentage", 10.0, "Share of speakers for validation, by speaker hash.",
    lower_bound=0.0, upper_bound=100.0)
_TESTING_PERCENTAGE = flags.DEFINE_float(
    "testing_percentage", 10.0, "Share of speakers for testing, by speaker hash.",
    lower_bound=0.0, upper_bound=100.0)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Start afresh in an --output_dir that holds an earlier run, instead "
    "of resuming it from its last completed epoch.")
_VALIDATION_SPEAKERS = flags.DEFINE_string(
    "validation_speakers", "", "Comma-separated speakers held out for validation.")
_TESTING_SPEAKERS = flags.DEFINE_string(
    "testing_speakers", "", "Comma-separated speakers held out for testing, e.g. theo for the "
    "Free Spoken Digit Dataset.")


def _optional_list(text: str | None, flag: str) -> tuple[str, ...]:
    return parse_word_list(text, flag) if text else ()


def config_from_flags():
    """Turns the flags into one frozen ``TrainConfig``; bad values raise ``InputError``."""
    from kws.data.split import SplitSpec  # after flag parsing: these import TensorFlow
    from kws.training import TrainConfig

    output_dir = _OUTPUT_DIR.value or Path("export") / "runs" / datetime.datetime.now().strftime(
        "%Y%m%d-%H%M%S")
    return TrainConfig(
        output_dir=Path(output_dir),
        data_dir=Path(_DATA_DIR.value) if _DATA_DIR.value else None,
        wanted_words=_optional_list(_WANTED_WORDS.value, "--wanted_words") or None,
        models=_optional_list(_MODELS.value, "--models"),
        epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value,
        learning_rate=_LEARNING_RATE.value,
        seed=_SEED.value,
        clips_per_word=_CLIPS_PER_WORD.value,
        cache_dir=Path(_CACHE_DIR.value).expanduser(),
        verbose=1 if sys.stdout.isatty() else 2,  # one line per epoch in log files
        overwrite=_OVERWRITE.value,
        split=SplitSpec(
            validation_percentage=_VALIDATION_PERCENTAGE.value,
            testing_percentage=_TESTING_PERCENTAGE.value,
            validation_speakers=_optional_list(_VALIDATION_SPEAKERS.value,
                                               "--validation_speakers"),
            testing_speakers=_optional_list(_TESTING_SPEAKERS.value, "--testing_speakers"),
        ),
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
    except KeyboardInterrupt:
        # Every completed epoch is backed up: the same command carries on from there.
        where = f" --output_dir={config.output_dir}" if config else ""
        sys.stderr.write(f"\nkws.train: interrupted; rerun the same flags{where} to resume "
                         "from the last completed epoch\n")
        sys.exit(130)
    print(f"\nRun folder: {config.output_dir}  (report.md, curves.png, confusion.png, "
          f"{', '.join(f'{name}.keras' for name in config.models)})\n")
    print(study_table(run_report))
    logging.info("Done.")


if __name__ == "__main__":
    app.run(main)
