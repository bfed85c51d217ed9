"""A folder of labelled recordings: ``DATA_DIR/<label>/*.wav``, the Speech Commands layout."""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import keras
import numpy as np
from absl import logging

from kws.audio import AudioError, load_clip
from kws.config import FeatureConfig
from kws.data.dataset import LabelledClips, SkippedFile, split_clips
from kws.data.split import TESTING, TRAINING, VALIDATION, SplitSpec, speaker_of
from kws.errors import InputError

# Speech Commands lists these files, relative to the data folder, to fix the split.
SPLIT_LISTS = {VALIDATION: "validation_list.txt", TESTING: "testing_list.txt"}


def wav_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file())


def find_labels(data_dir: str | Path) -> tuple[str, ...]:
    """Every sub-folder holding ``.wav`` files, except ``_background_noise_`` and hidden ones."""
    data_dir = Path(data_dir)
    return tuple(
        sorted(
            entry.name
            for entry in data_dir.iterdir()
            if entry.is_dir() and entry.name[0] not in "._" and wav_files(entry)
        )
    )


def _read_split_lists(data_dir: Path) -> dict[str, str]:
    """Maps ``label/file.wav`` to its split, from the folder's list files (empty if none)."""
    assigned = {}
    for split, filename in SPLIT_LISTS.items():
        list_path = data_dir / filename
        if list_path.is_file():
            for line in list_path.read_text().splitlines():
                if line.strip():
                    assigned[Path(line.strip()).as_posix()] = split
    return assigned


def _load_clips(paths: list[Path], config: FeatureConfig) -> list[np.ndarray | AudioError]:
    """Decodes and resamples in threads (scipy releases the GIL), with a progress bar."""
    progress = keras.utils.Progbar(len(paths), unit_name="file")

    def load(path: Path) -> np.ndarray | AudioError:
        try:
            return load_clip(path, config)
        except AudioError as error:
            return error

    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for result in pool.map(load, paths):
            results.append(result)
            if len(results) % 500 == 0 or len(results) == len(paths):
                progress.update(len(results))
    return results


def load_folder(
    data_dir: str | Path,
    wanted_words: tuple[str, ...] | None,
    config: FeatureConfig,
    split_spec: SplitSpec,
) -> LabelledClips:
    """Loads the clips of the wanted words (all label folders when None) and splits them.

    Unreadable files are skipped and listed in the result; a missing word, or a word
    left with no readable clip, raises ``ValueError`` naming it.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"--data_dir={data_dir}: no such folder")
    available = find_labels(data_dir)
    if not available:
        raise InputError(f"--data_dir={data_dir}: no label folders with .wav files in it")
    labels = wanted_words or available
    missing = [word for word in labels if word not in available]
    if missing:
        raise InputError(
            f"--wanted_words: no folder of .wav clips for {', '.join(missing)} in {data_dir} "
            f"(found: {', '.join(available)})"
        )

    files = [(path, index) for index, label in enumerate(labels)
             for path in wav_files(data_dir / label)]
    listed = _read_split_lists(data_dir)
    logging.info("Reading %d clips of %d words from %s", len(files), len(labels), data_dir)
    results = _load_clips([path for path, _ in files], config)

    clips, label_indices, speakers, assignments, skipped = [], [], [], [], []
    for (path, index), result in zip(files, results, strict=True):
        if isinstance(result, AudioError):
            skipped.append(SkippedFile(str(path), str(result)))
            continue
        speaker = speaker_of(path, labels[index])
        relative = path.relative_to(data_dir).as_posix()
        clips.append(result)
        label_indices.append(index)
        speakers.append(speaker)
        assignments.append(listed.get(relative, TRAINING) if listed else split_spec.assign(speaker))

    counts = np.bincount(np.asarray(label_indices, dtype=int), minlength=len(labels))
    empty = [label for label, count in zip(labels, counts, strict=True) if count == 0]
    if empty:
        raise InputError(f"--data_dir={data_dir}: no readable clip for {', '.join(empty)}")
    if listed:
        how = "its validation and testing lists"
    elif split_spec.validation_speakers or split_spec.testing_speakers:
        how = "named speakers, others by speaker hash"
    else:
        how = "speaker hash"
    return LabelledClips(
        labels=tuple(labels),
        splits=split_clips(np.stack(clips), np.asarray(label_indices), speakers, assignments),
        source=f"folder {data_dir} (split by {how})",
        skipped=tuple(skipped),
    )
