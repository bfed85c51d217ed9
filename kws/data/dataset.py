"""Clips in memory, split three ways, with a record of what could not be used."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from kws.config import FeatureConfig, Normalization
from kws.data.split import SPLITS, TRAINING
from kws.errors import InputError

if TYPE_CHECKING:
    from kws.data.pipeline import ClipSource


@dataclasses.dataclass(frozen=True)
class ClipSet:
    """Clips of one split: float32 waveforms ``(n, clip_samples)`` and label indices ``(n,)``."""

    clips: np.ndarray
    labels: np.ndarray
    speakers: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class LabelledClips:
    """A data source, loaded: label names, the three splits, and the files it skipped.

    Args:
        labels: Class names; a clip's label index points into this tuple.
        splits: ``ClipSet`` per split name (``training``, ``validation``, ``testing``).
        source: One line that says where the clips came from, for logs and reports.
        skipped: Files that could not be read, with the reason.
        background: Long noise recordings at the model's rate, for mixing into training
            clips; empty when the source has none.
    """

    labels: tuple[str, ...]
    splits: dict[str, ClipSet]
    source: str
    skipped: tuple[SkippedFile, ...] = ()
    background: tuple[np.ndarray, ...] = ()

    def split_sizes(self) -> dict[str, int]:
        return {name: len(self.splits[name]) for name in SPLITS}

    def clip_source(self, split: str) -> ClipSource:
        from kws.data.pipeline import memory_source  # TensorFlow, only when training

        return memory_source(self.splits[split])

    def training_normalization(self, config: FeatureConfig) -> Normalization:
        from kws.data.pipeline import fit_normalization

        return fit_normalization(self.clip_source(TRAINING), config)

    def check_splits_not_empty(self) -> None:
        """Training needs clips in every split; say how to get them when one is empty."""
        empty = [name for name in SPLITS if len(self.splits[name]) == 0]
        if empty:
            raise empty_splits_error(self.source, empty, [
                speaker for clip_set in self.splits.values() for speaker in clip_set.speakers])


def empty_splits_error(source: str, empty: list[str],
                       speakers: list[str] | None = None) -> InputError:
    """The error for splits left without clips, naming the speakers there are."""
    known = sorted({s for s in speakers or () if s})  # silence clips have no speaker
    shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
    return InputError(
        f"{source}: the {' and '.join(empty)} split is empty"
        + (f" ({len(known)} speakers: {shown})" if speakers is not None else "")
        + "; hold out whole speakers with --validation_speakers and --testing_speakers")


def split_clips(
    clips: np.ndarray, labels: np.ndarray, speakers: list[str], assignments: list[str]
) -> dict[str, ClipSet]:
    """Groups clips by their split name."""
    assignments_array = np.asarray(assignments)
    result = {}
    for name in SPLITS:
        index = np.flatnonzero(assignments_array == name)
        result[name] = ClipSet(
            clips=clips[index],
            labels=labels[index],
            speakers=tuple(speakers[i] for i in index),
        )
    return result
