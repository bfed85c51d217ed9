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
from kws.data.dataset import LabelledClips, SkippedFile, split_clips
from kws.data.split import SPLITS, TESTING, TRAINING, VALIDATION, SplitSpec, speaker_of
from kws.errors import InputError

SILENCE, UNKNOWN = "_silence_", "_unknown_"
BACKGROUND_DIR = "_background_noise_"
# Speech Commands lists these files, relative to the data folder, to fix the split.
SPLIT_LISTS = {VALIDATION: "validation_list.txt", TESTING: "testing_list.txt"}
# Silence clips are background noise scaled by a volume drawn up to this (1 = as recorded).
SILENCE_MAX_VOLUME = 1.0


@dataclasses.dataclass(frozen=True)
class ExtraClasses:
    """The ``_silence_`` and ``_unknown_`` classes of the Speech Commands task.

    Args:
        silence_percentage: Silence clips per split, as a percentage of the wanted words'
            clips in that split; 0 adds no ``_silence_`` class.
        unknown_percentage: Clips of other words per split, as a percentage of the wanted
            words' clips in that split; 0 adds no ``_unknown_`` class.
        seed: Fixes which other-word clips are drawn and the silence clips' noise.
    """

    silence_percentage: float = 10.0
    unknown_percentage: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("silence_percentage", "unknown_percentage"):
            value = getattr(self, name)
            if not 0 <= value <= 1000:
                raise InputError(f"--{name} must be between 0 and 1000, got {value!r}")


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


def _decode_all(paths: list[Path], load) -> list:
    """Decodes in threads (scipy releases the GIL), with a progress bar."""
    progress = keras.utils.Progbar(len(paths), unit_name="file")

    def decode(path: Path):
        try:
            return load(path)
        except AudioError as error:
            return error

    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for result in pool.map(decode, paths):
            results.append(result)
            if len(results) % 500 == 0 or len(results) == len(paths):
                progress.update(len(results))
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
class _File:
    path: Path
    label: str  # the class it trains as
    folder: str  # the word folder it lies in
    split: str


def load_folder(
    data_dir: str | Path,
    wanted_words: tuple[str, ...] | None,
    config: FeatureConfig,
    split_spec: SplitSpec,
    extra: ExtraClasses = NONE,
) -> LabelledClips:
    """Loads the clips of the wanted words (all word folders when None) and splits them.

    Labels are ``_silence_`` and ``_unknown_`` first (when ``extra`` asks for them and
    there is something to put in them), then the wanted words in order. A folder that
    already holds ``_silence_/`` or ``_unknown_/`` clips (as the published Speech Commands
    test set does) supplies those classes instead of drawing them. Unreadable files are
    skipped and listed in the result; a missing word, or one left with no readable clip,
    raises ``InputError`` naming it.
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
    rng = np.random.default_rng(extra.seed)

    def split_of(path: Path, folder: str) -> str:
        if listed:
            return listed.get(path.relative_to(data_dir).as_posix(), TRAINING)
        return split_spec.assign(speaker_of(path, folder))

    def files_of(folder: str, label: str) -> list[_File]:
        return [_File(path, label, folder, split_of(path, folder))
                for path in wav_files(data_dir / folder)]

    files = [file for word in words for file in files_of(word, word)]
    per_split = {name: sum(f.split == name for f in files) for name in SPLITS}
    unknown_files = _unknown_files(data_dir, available, words, extra, per_split, rng,
                                   files_of)
    labels = ((SILENCE,) if _wants_silence(data_dir, extra) else ()) + \
        ((UNKNOWN,) if unknown_files else ()) + tuple(words)
    files += unknown_files
    if wav_files(data_dir / SILENCE):
        files += files_of(SILENCE, SILENCE)

    logging.info("Reading %d clips of %d classes from %s", len(files), len(labels), data_dir)
    results = _decode_all([f.path for f in files], lambda path: load_clip(path, config))
    skipped = [SkippedFile(str(f.path), str(result))
               for f, result in zip(files, results, strict=True) if isinstance(result, AudioError)]
    kept = [(f, result) for f, result in zip(files, results, strict=True)
            if not isinstance(result, AudioError)]
    clips = [clip for _, clip in kept]
    label_indices = [labels.index(f.label) for f, _ in kept]
    speakers = [speaker_of(f.path, f.folder) for f, _ in kept]
    assignments = [f.split for f, _ in kept]

    background = load_background(data_dir, config, skipped)
    if SILENCE in labels and not wav_files(data_dir / SILENCE):
        for name in SPLITS:
            count = math.ceil(per_split[name] * extra.silence_percentage / 100)
            clips.extend(silence_clips(count, background, config.clip_samples, rng))
            label_indices += [labels.index(SILENCE)] * count
            speakers += [""] * count  # noise has no speaker
            assignments += [name] * count

    counts = np.bincount(np.asarray(label_indices, dtype=int), minlength=len(labels))
    empty = [label for label, count in zip(labels, counts, strict=True) if count == 0]
    if empty:
        raise InputError(f"--data_dir={data_dir}: no readable clip for {', '.join(empty)}")
    return LabelledClips(
        labels=labels,
        splits=split_clips(np.stack(clips), np.asarray(label_indices), speakers, assignments),
        source=f"folder {data_dir} (split by {_split_method(listed, split_spec)})",
        skipped=tuple(skipped),
        background=background,
    )


def _wants_silence(data_dir: Path, extra: ExtraClasses) -> bool:
    return bool(wav_files(data_dir / SILENCE)) or extra.silence_percentage > 0


def _unknown_files(data_dir, available, words, extra, per_split, rng, files_of) -> list[_File]:
    """The ``_unknown_`` folder's clips when there is one; else, per split, a random draw of
    other words' clips, ``unknown_percentage`` of the wanted words' count."""
    if wav_files(data_dir / UNKNOWN):
        return files_of(UNKNOWN, UNKNOWN)
    others = [folder for folder in available if folder not in words]
    if extra.unknown_percentage == 0:
        return []
    if not others:
        logging.info("No word folders besides --wanted_words: no %s class", UNKNOWN)
        return []
    candidates = [file for folder in others for file in files_of(folder, UNKNOWN)]
    drawn = []
    for name in SPLITS:
        in_split = [file for file in candidates if file.split == name]
        count = min(len(in_split), math.ceil(per_split[name] * extra.unknown_percentage / 100))
        drawn += [in_split[i] for i in sorted(rng.choice(len(in_split), count, replace=False))]
    return drawn


def _split_method(listed: dict, split_spec: SplitSpec) -> str:
    if listed:
        return "its validation and testing lists"
    if split_spec.validation_speakers or split_spec.testing_speakers:
        return "named speakers, others by speaker hash"
    return "speaker hash"
