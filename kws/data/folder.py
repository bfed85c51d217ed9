"""A folder of labelled recordings: ``DATA_DIR/<label>/*.wav``, the Speech Commands layout.

Besides the wanted words it can add the two classes of TensorFlow's speech_commands
example: ``_silence_`` (background noise at a random volume, or zeros) and ``_unknown_``
(clips of the other words), and it reads ``_background_noise_/`` for noise mixing.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
from pathlib import Path, PurePosixPath

import keras
import numpy as np
from absl import logging

from kws.audio import AudioError, load_clip, load_recording
from kws.config import FeatureConfig
from kws.data.dataset import SILENCE, UNKNOWN, LabelledClips, SkippedFile, split_clips
from kws.data.split import SPLITS, TESTING, TRAINING, VALIDATION, SplitSpec, speaker_of
from kws.errors import InputError

BACKGROUND_DIR = "_background_noise_"
# Speech Commands lists these files, relative to the data folder, to fix the split.
SPLIT_LISTS = {VALIDATION: "validation_list.txt", TESTING: "testing_list.txt"}
# Silence clips are background noise scaled by a volume drawn up to this (1 = as recorded).
SILENCE_MAX_VOLUME = 1.0
# Files decoded between two updates of the progress bar (one line each in a log file).
PROGRESS_EVERY = 500


@dataclasses.dataclass(frozen=True)
class ExtraClasses:
    """The ``_silence_`` and ``_unknown_`` classes of the Speech Commands task.

    Args:
        silence_percentage: Silence clips per split, as a percentage of the wanted words'
            clips in that split; 0 adds no ``_silence_`` class.
        unknown_percentage: Clips of other words per split, as a percentage of the wanted
            words' clips in that split; 0 adds no ``_unknown_`` class.
        seed: Fixes which other-word clips are drawn and the silence clips' noise.
        unknown_redraw: The training split keeps every clip of the other words and each
            epoch draws its ``unknown_percentage`` share of them afresh (TensorFlow's
            speech_commands does so), rather than one draw for the whole run; validation
            and testing draw once either way.
        unknown_word_weights: (other word, n) pairs: each training clip of that word
            folder enters the ``_unknown_`` pool n times, and the training draw grows by
            as many, so the other words are drawn as often as without it. For the words a
            model takes for a keyword (hard negatives: ``kws.stream_eval`` lists them).
    """

    silence_percentage: float = 10.0
    unknown_percentage: float = 10.0
    seed: int = 0
    unknown_redraw: bool = False
    unknown_word_weights: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        for name in ("silence_percentage", "unknown_percentage"):
            value = getattr(self, name)
            if not 0 <= value <= 1000:
                raise InputError(f"--{name} must be between 0 and 1000, got {value!r}")
        for word, weight in self.unknown_word_weights:
            if not isinstance(weight, int) or not 1 <= weight <= 100:
                raise InputError(f"--unknown_word_weights: {word}:{weight} needs a whole "
                                 "number of times from 1 to 100, e.g. left:3")


NONE = ExtraClasses(silence_percentage=0.0, unknown_percentage=0.0)


def wav_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file())


def find_labels(data_dir: str | Path) -> tuple[str, ...]:
    """Every word folder holding ``.wav`` files: not ``_background_noise_``, ``_silence_``,
    ``_unknown_`` or hidden ones."""
    data_dir = Path(data_dir)
    return tuple(
        sorted(
            entry.name
            for entry in data_dir.iterdir()
            if entry.is_dir() and entry.name[0] not in "._" and wav_files(entry)
        )
    )


def _read_split_lists(data_dir: Path) -> dict[str, str]:
    """Maps ``label/file.wav`` to its split, from the folder's list files (empty if none).

    An entry that is absolute or climbs out of the folder (``../x.wav``) is an error: the
    lists may come from anywhere, and must not make training read files elsewhere.
    """
    assigned = {}
    for split, filename in SPLIT_LISTS.items():
        list_path = data_dir / filename
        if not list_path.is_file():
            continue
        for line_number, line in enumerate(list_path.read_text().splitlines(), start=1):
            entry = line.strip()
            if not entry:
                continue
            relative = PurePosixPath(entry)
            if relative.is_absolute() or ".." in relative.parts or "\\" in entry:
                raise InputError(
                    f"{list_path}:{line_number}: {entry!r} points outside {data_dir}; entries "
                    "are paths like word/clip.wav relative to the data folder")
            assigned[relative.as_posix()] = split
    return assigned


def decode_clips(paths: list[Path], config: FeatureConfig,
                 progress: keras.utils.Progbar) -> list[np.ndarray | AudioError]:
    """Each file as one clip at the model's rate, or the ``AudioError`` that says why it
    cannot be; decoded in threads (scipy releases the GIL), counted on ``progress``."""
    def decode(path: Path):
        try:
            return load_clip(path, config)
        except AudioError as error:
            return error

    results = []
    reported = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for result in pool.map(decode, paths):
            results.append(result)
            if len(results) - reported >= PROGRESS_EVERY or len(results) == len(paths):
                progress.add(len(results) - reported)
                reported = len(results)
    return results


def load_background(data_dir: Path, config: FeatureConfig,
                    skipped: list[SkippedFile]) -> tuple[np.ndarray, ...]:
    """The recordings of ``_background_noise_/``, whole, at the model's rate; at least one
    clip long (shorter ones are padded with silence)."""
    paths = wav_files(data_dir / BACKGROUND_DIR)
    recordings = []
    for path in paths:
        try:
            samples = load_recording(path, config.sample_rate)
        except AudioError as error:
            skipped.append(SkippedFile(str(path), str(error)))
            continue
        recordings.append(np.pad(samples, (0, max(0, config.clip_samples - len(samples)))))
    return tuple(recordings)


def silence_clips(count: int, background: tuple[np.ndarray, ...], clip_samples: int,
                  rng: np.random.Generator) -> np.ndarray:
    """``count`` one-clip windows of background noise at random volumes; zeros without any."""
    clips = np.zeros((count, clip_samples), np.float32)
    if not background:
        return clips
    for clip in clips:
        recording = background[rng.integers(len(background))]
        start = rng.integers(len(recording) - clip_samples + 1)
        clip[:] = recording[start:start + clip_samples] * rng.uniform(0, SILENCE_MAX_VOLUME)
    return clips


@dataclasses.dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: str  # the class it trains as
    folder: str  # the word folder it lies in
    split: str


@dataclasses.dataclass(frozen=True)
class FolderPlan:
    """What loading a folder reads and makes, before any audio is decoded.

    Args:
        data_dir: The folder.
        labels: Class names, in label-index order.
        files: Every recording to read, with its class and split, in order.
        silence_clips: Clips of ``_silence_`` to make from background noise, per split
            (none when the folder has its own ``_silence_/`` recordings).
        source: One line that says where the clips come from and how they are split.
        seed: Fixes the silence clips' noise and volumes.
        unknown_per_epoch: With ``ExtraClasses.unknown_redraw``, the training clips of
            ``_unknown_`` each epoch draws from all of them; 0 when they are drawn once.
    """

    data_dir: Path
    labels: tuple[str, ...]
    files: tuple[LabelledFile, ...]
    silence_clips: dict[str, int]
    source: str
    seed: int
    unknown_per_epoch: int = 0

    def files_of(self, split: str) -> list[LabelledFile]:
        return [file for file in self.files if file.split == split]

    def silence_generator(self) -> np.random.Generator:
        """Draws the silence clips of every split, in split order. Its own generator, so
        the noise does not depend on how many ``_unknown_`` clips were drawn."""
        return np.random.default_rng((self.seed, 1))


def plan_folder(
    data_dir: str | Path,
    wanted_words: tuple[str, ...] | None,
    split_spec: SplitSpec,
    extra: ExtraClasses = NONE,
) -> FolderPlan:
    """The labels, files and silence clips of the wanted words (all word folders when
    None), each file in its split.

    Labels are ``_silence_`` and ``_unknown_`` first (when ``extra`` asks for them and
    there is something to put in them), then the wanted words in order. A folder that
    already holds ``_silence_/`` or ``_unknown_/`` clips (as the published Speech Commands
    test set does) supplies those classes instead of drawing them. A missing word raises
    ``InputError`` naming it.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"--data_dir={data_dir}: no such folder")
    available = find_labels(data_dir)
    if not available:
        raise InputError(f"--data_dir={data_dir}: no label folders with .wav files in it")
    words = wanted_words or available
    missing = [word for word in words if word not in available]
    if missing:
        raise InputError(
            f"--wanted_words: no folder of .wav clips for {', '.join(missing)} in {data_dir} "
            f"(found: {', '.join(available)})"
        )
    listed = _read_split_lists(data_dir)

    def split_of(path: Path, folder: str) -> str:
        if listed:
            return listed.get(path.relative_to(data_dir).as_posix(), TRAINING)
        return split_spec.assign(speaker_of(path, folder))

    def files_of(folder: str, label: str) -> list[LabelledFile]:
        return [LabelledFile(path, label, folder, split_of(path, folder))
                for path in wav_files(data_dir / folder)]

    files = [file for word in words for file in files_of(word, word)]
    per_split = {name: sum(f.split == name for f in files) for name in SPLITS}
    unknown_files, unknown_per_epoch = _unknown_files(
        data_dir, available, words, extra, per_split, np.random.default_rng(extra.seed),
        files_of)
    labels = ((SILENCE,) if _wants_silence(data_dir, extra) else ()) + \
        ((UNKNOWN,) if unknown_files else ()) + tuple(words)
    files += unknown_files
    if wav_files(data_dir / SILENCE):
        files += files_of(SILENCE, SILENCE)
    make_silence = SILENCE in labels and not wav_files(data_dir / SILENCE)
    return FolderPlan(
        data_dir=data_dir, labels=labels, files=tuple(files),
        silence_clips={name: math.ceil(per_split[name] * extra.silence_percentage / 100)
                       if make_silence else 0 for name in SPLITS},
        source=f"folder {data_dir} (split by {_split_method(listed, split_spec)})",
        seed=extra.seed, unknown_per_epoch=unknown_per_epoch)


def check_every_label_has_clips(plan: FolderPlan, label_counts: np.ndarray) -> None:
    """Raises ``InputError`` naming each label left with no readable clip."""
    empty = [label for label, count in zip(plan.labels, label_counts, strict=True)
             if count == 0]
    if empty:
        raise InputError(f"--data_dir={plan.data_dir}: no readable clip for {', '.join(empty)}")


def load_folder(
    data_dir: str | Path,
    wanted_words: tuple[str, ...] | None,
    config: FeatureConfig,
    split_spec: SplitSpec,
    extra: ExtraClasses = NONE,
) -> LabelledClips:
    """Loads the clips of ``plan_folder(data_dir, wanted_words, split_spec, extra)`` into
    memory, split three ways.

    Unreadable files are skipped and listed in the result; a word left with no readable
    clip raises ``InputError`` naming it.
    """
    plan = plan_folder(data_dir, wanted_words, split_spec, extra)
    logging.info("Reading %d clips of %d classes from %s", len(plan.files), len(plan.labels),
                 plan.data_dir)
    results = decode_clips([f.path for f in plan.files], config,
                           keras.utils.Progbar(len(plan.files), unit_name="file"))
    skipped = [SkippedFile(str(f.path), str(result))
               for f, result in zip(plan.files, results, strict=True)
               if isinstance(result, AudioError)]
    kept = [(f, result) for f, result in zip(plan.files, results, strict=True)
            if not isinstance(result, AudioError)]
    clips = [clip for _, clip in kept]
    label_indices = [plan.labels.index(f.label) for f, _ in kept]
    speakers = [speaker_of(f.path, f.folder) for f, _ in kept]
    assignments = [f.split for f, _ in kept]

    background = load_background(plan.data_dir, config, skipped)
    rng = plan.silence_generator()
    for name, count in plan.silence_clips.items():
        if count:
            clips.extend(silence_clips(count, background, config.clip_samples, rng))
            label_indices += [plan.labels.index(SILENCE)] * count
            speakers += [""] * count  # noise has no speaker
            assignments += [name] * count

    check_every_label_has_clips(plan, np.bincount(np.asarray(label_indices, dtype=int),
                                                  minlength=len(plan.labels)))
    splits = split_clips(np.stack(clips), np.asarray(label_indices), speakers, assignments)
    if plan.unknown_per_epoch:
        splits[TRAINING] = dataclasses.replace(
            splits[TRAINING], redrawn_label=plan.labels.index(UNKNOWN),
            redrawn_per_epoch=plan.unknown_per_epoch)
    return LabelledClips(
        labels=plan.labels,
        splits=splits,
        source=plan.source,
        skipped=tuple(skipped),
        background=background,
    )


def _wants_silence(data_dir: Path, extra: ExtraClasses) -> bool:
    return bool(wav_files(data_dir / SILENCE)) or extra.silence_percentage > 0


def _unknown_files(data_dir, available, words, extra, per_split, rng,
                   files_of) -> tuple[list[LabelledFile], int]:
    """The ``_unknown_`` folder's clips when there is one; else, per split, a random draw of
    other words' clips, ``unknown_percentage`` of the wanted words' count. With
    ``unknown_redraw`` the training split keeps them all; the second value is then how
    many each epoch draws (else 0). ``unknown_word_weights`` repeat words in the training
    pool."""
    if wav_files(data_dir / UNKNOWN):
        if extra.unknown_word_weights:
            raise InputError(f"--unknown_word_weights: {data_dir} has its own {UNKNOWN}/ "
                             "folder, so there are no other words to weight")
        return files_of(UNKNOWN, UNKNOWN), 0
    others = [folder for folder in available if folder not in words]
    if extra.unknown_percentage == 0:
        return [], 0
    if not others:
        logging.info("No word folders besides --wanted_words: no %s class", UNKNOWN)
        return [], 0
    weights = dict(extra.unknown_word_weights)
    strangers = [word for word in weights if word not in others]
    if strangers:
        raise InputError(f"--unknown_word_weights: {', '.join(strangers)} is not one of the "
                         f"other words of {data_dir} ({', '.join(others)})")
    candidates = [file for folder in others for file in files_of(folder, UNKNOWN)]
    drawn, per_epoch = [], 0
    for name in SPLITS:
        in_split = [file for file in candidates if file.split == name]
        count = min(len(in_split), math.ceil(per_split[name] * extra.unknown_percentage / 100))
        chosen = sorted(rng.choice(len(in_split), count, replace=False))  # drawn either way:
        if name == TRAINING and weights:  # the same validation and test clips as without
            pool = [file for file in in_split for _ in range(weights.get(file.folder, 1))]
            count = math.ceil(count * len(pool) / max(len(in_split), 1))
            chosen = sorted(np.random.default_rng((extra.seed, 2)).choice(
                len(pool), count, replace=False))
            in_split = pool
        if name == TRAINING and extra.unknown_redraw:
            drawn += in_split
            per_epoch = count
            continue
        drawn += [in_split[i] for i in chosen]
    return drawn, per_epoch


def _split_method(listed: dict, split_spec: SplitSpec) -> str:
    if listed:
        return "its validation and testing lists"
    if split_spec.validation_speakers or split_spec.testing_speakers:
        return "named speakers, others by speaker hash"
    return "speaker hash"
