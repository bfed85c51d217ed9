"""A run folder: its configuration, reading it back, and its data.

``kws.train`` writes a run; ``kws.export``, ``kws.evaluate`` and the tools read one back.
Everything both sides need lives here, so that no two modules import each other.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from absl import logging

from kws import fileio
from kws.config import (
    DEFAULT_CACHE_DIR,
    DISTRIBUTIONS,
    FEATURE_PLACEMENTS,
    MODEL_NAMES,
    PRECISIONS,
    FeatureConfig,
    check_choice,
    check_model_names,
)
from kws.data.augment import AugmentConfig
from kws.data.dataset import LabelledClips
from kws.data.download import check_data_sources, words_folder
from kws.data.folder import SILENCE, UNKNOWN, ExtraClasses, load_folder
from kws.data.prepared import PreparedClips, load_prepared
from kws.data.split import SplitSpec
from kws.data.synthetic import SyntheticSpec, load_other_words, load_synthetic, synthesized_float
from kws.errors import InputError
from kws.recipe import Recipe
from kws.report import REPORT_FILENAME

SYNTHETIC_WORDS = ("yes", "no", "up")
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
            synthetic speech, which takes any English word, and ``word:phonemes`` (eSpeak
            NG's phoneme mnemonics) for one it mispronounces.
        silence_percentage: Size of the ``_silence_`` class, as a percentage of the wanted
            words' clips in each split (folders and datasets only).
        unknown_percentage: Size of the ``_unknown_`` class (clips of other words), likewise.
        unknown_redraw: Training keeps every clip of the other words and draws the
            ``_unknown_`` share afresh each epoch (``ExtraClasses.unknown_redraw``).
        unknown_word_weights: (other word, n): its training clips enter the ``_unknown_``
            pool n times, on top of the others' share (``ExtraClasses``).
        synthetic_unknown_words: This many everyday English words (never a wanted word or
            one that sounds like it) spoken by eSpeak NG join the training split's
            ``_unknown_`` clips of a folder or dataset; 0 for none. The synthetic source
            then gets its own ``_unknown_`` (these words, in all splits, by speaker) and
            ``_silence_`` (noise only, ``silence_percentage`` of each split).
        synthetic_unknown_clips: Clips of each of those words, in random synthetic voices.
        synthetic_keyword_clips: This many eSpeak NG clips of each wanted word join the
            training split of a folder or dataset (the synthetic source's voices); 0 for
            none.
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
    unknown_word_weights: tuple[tuple[str, int], ...] = ()
    synthetic_unknown_words: int = 0
    synthetic_unknown_clips: int = 10
    synthetic_keyword_clips: int = 0
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
        spelled = [word for word in self.wanted_words or () if ":" in word]
        if spelled and (self.data_dir or self.dataset or self.prepared_dir):
            raise InputError(f"--wanted_words: {spelled[0]} gives phonemes, which only "
                             "synthetic speech uses; name the word's folder alone")
        if self.prepared_dir is not None and self.wanted_words is not None:
            raise InputError("--wanted_words with --prepared_dir: the words are chosen when "
                             "preparing (python -m kws.prepare --wanted_words=...)")
        self.extra_classes  # noqa: B018  (raises when a setting is out of range)
        if self.unknown_word_weights and (self.data_dir is None and self.dataset is None
                                          or self.unknown_percentage == 0):
            raise InputError("--unknown_word_weights weights the other words of --data_dir "
                             "or --dataset: it needs one, and --unknown_percentage above 0")
        if self.synthetic_unknown_words < 0:
            raise InputError("--synthetic_unknown_words must not be negative, got "
                             f"{self.synthetic_unknown_words!r}")
        if self.synthetic_unknown_words and self.prepared_dir is not None:
            raise InputError("--synthetic_unknown_words with --prepared_dir: prepared clips "
                             "are fixed when preparing")
        if self.synthetic_unknown_words and self.unknown_percentage == 0 and (
                self.data_dir is not None or self.dataset is not None):
            raise InputError("--synthetic_unknown_words adds to the _unknown_ class of "
                             "--data_dir or --dataset: it needs --unknown_percentage above 0")
        if self.synthetic_keyword_clips < 0:
            raise InputError("--synthetic_keyword_clips must not be negative, got "
                             f"{self.synthetic_keyword_clips!r}")
        if self.synthetic_keyword_clips and self.data_dir is None and self.dataset is None:
            raise InputError("--synthetic_keyword_clips adds synthetic clips to the recordings "
                             "of --data_dir or --dataset; without them, use --clips_per_word")
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
                            self.unknown_redraw, self.unknown_word_weights)


_NESTED = {"split": SplitSpec, "features": FeatureConfig, "augmentation": AugmentConfig,
           "recipe": Recipe}
_PATHS = ("output_dir", "data_dir", "prepared_dir", "cache_dir")
# What reading a run's JSON raises when the file is missing, damaged or not a kws run's
# (a list where settings should be: AttributeError from config_from_report).
UNREADABLE = (OSError, ValueError, KeyError, TypeError, AttributeError)


def read_report(run_dir: Path) -> tuple[dict, TrainConfig]:
    """A finished run's ``report.json`` and its ``TrainConfig``; ``InputError`` naming the
    file when it is missing or not a kws report."""
    path = run_dir / REPORT_FILENAME
    try:
        run_report = json.loads(path.read_text())
        return run_report, config_from_report(run_report)
    except UNREADABLE as error:
        raise InputError(f"{path}: cannot read the run's report ({error})") from None


def config_from_report(run_report: dict) -> TrainConfig:
    """The ``TrainConfig`` of a finished run, from its ``report.json`` (settings an older
    run did not record keep their defaults)."""
    def value_of(name, value):
        if name in _NESTED:
            return _NESTED[name](**{key: tuple(item) if isinstance(item, list) else item
                                    for key, item in value.items()})
        if name in _PATHS:
            return Path(value) if value else None
        if isinstance(value, list):  # JSON keeps tuples, and pairs in them, as lists
            return tuple(tuple(item) if isinstance(item, list) else item for item in value)
        return value

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
        # Settings added since the run was made read as their defaults, as a report's do.
        saved = saved_config(config_from_report({"config": json.loads(run_file.read_text())}))
    except UNREADABLE as error:
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


def wanted_words(data: LabelledClips) -> tuple[str, ...]:
    """The labels of ``data`` that are words to spot, not ``_silence_`` or ``_unknown_``."""
    return tuple(label for label in data.labels if label not in (SILENCE, UNKNOWN))


def with_synthetic_keywords(data: LabelledClips, config: TrainConfig) -> LabelledClips:
    """``data`` with ``synthetic_keyword_clips`` eSpeak NG clips of each wanted word added
    to its training split (the voices of the synthetic source)."""
    wanted = wanted_words(data)
    spec = SyntheticSpec(words=wanted, clips_per_word=config.synthetic_keyword_clips,
                         seed=config.seed)
    clips, labels, speakers = synthesized_float(spec, config.features, config.cache_dir)
    logging.info("Adding %d synthetic clips of each of %s to the training split",
                 config.synthetic_keyword_clips, ", ".join(wanted))
    label_indices = np.asarray([data.labels.index(word) for word in wanted])
    return data.with_training_clips(clips, label_indices[labels], speakers)


def with_synthetic_unknown_words(data: LabelledClips, config: TrainConfig) -> LabelledClips:
    """``data`` with ``synthetic_unknown_words`` other words added to the training split's
    ``_unknown_`` clips."""
    if UNKNOWN not in data.labels:
        raise InputError(f"--synthetic_unknown_words: {data.source} has no other words, "
                         f"so no {UNKNOWN} class to add them to")
    words, clips, speakers = load_other_words(
        wanted_words(data), config.synthetic_unknown_words, config.synthetic_unknown_clips,
        config.seed, config.features, config.cache_dir)
    return data.with_training_clips(clips, np.full(len(clips), data.labels.index(UNKNOWN)),
                                    speakers, words)


def load_data(config: TrainConfig) -> LabelledClips | PreparedClips:
    if config.prepared_dir is not None:
        return load_prepared(config.prepared_dir)
    if config.dataset is not None or config.data_dir is not None:
        data = load_folder(*words_folder(config.data_dir, config.dataset, config.wanted_words,
                                         config.cache_dir),
                           config.features, config.split, config.extra_classes)
        if config.synthetic_keyword_clips:
            data = with_synthetic_keywords(data, config)
        if config.synthetic_unknown_words:
            data = with_synthetic_unknown_words(data, config)
        return data
    spec = SyntheticSpec(words=config.wanted_words or SYNTHETIC_WORDS,
                         clips_per_word=config.clips_per_word, seed=config.seed)
    if config.synthetic_unknown_words:
        logging.info("Synthetic %s (%d other words) and %s (noise, %g %% of each split)",
                     UNKNOWN, config.synthetic_unknown_words, SILENCE,
                     config.silence_percentage)
    logging.info(
        "No --data_dir: training on SYNTHETIC speech from eSpeak NG, a quick offline check that "
        "everything works. For a real keyword spotter, record your words as "
        "DATA_DIR/<word>/<speaker>_nohash_<n>.wav and pass --data_dir=DATA_DIR."
    )
    return load_synthetic(spec, config.features, config.split, config.cache_dir,
                          config.synthetic_unknown_words, config.synthetic_unknown_clips,
                          config.silence_percentage)
