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

# The two classes a keyword spotter adds to its words, named as TensorFlow's
# speech_commands names them.
SILENCE, UNKNOWN = "_silence_", "_unknown_"


@dataclasses.dataclass(frozen=True)
class ClipSet:
    """Clips of one split: float32 waveforms ``(n, clip_samples)`` and label indices ``(n,)``.

    Args:
        clips: The waveforms.
        labels: Their label indices.
        speakers: Who speaks each clip ("" for noise).
        redrawn_label: A label whose clips form a pool that each shuffled epoch draws
            ``redrawn_per_epoch`` of afresh (``_unknown_``, as TensorFlow's speech_commands
            draws it); None uses every clip every epoch.
        redrawn_per_epoch: How many clips of the pool one epoch uses.
    """

    clips: np.ndarray
    labels: np.ndarray
    speakers: tuple[str, ...]
    redrawn_label: int | None = None
    redrawn_per_epoch: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def pool(self) -> np.ndarray:
        """Indices of the clips that are redrawn every epoch (empty when none are)."""
        if self.redrawn_label is None:
            return np.zeros(0, np.int64)
        return np.flatnonzero(self.labels == self.redrawn_label)

    @property
    def epoch_size(self) -> int:
        """Clips in one shuffled epoch: all but the pool, and the pool's draw."""
        pool = len(self.pool)
        return len(self) - pool + min(pool, self.redrawn_per_epoch)


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
        synthetic_words: Words synthesised into the training split as ``_unknown_``.
    """

    labels: tuple[str, ...]
    splits: dict[str, ClipSet]
    source: str
    skipped: tuple[SkippedFile, ...] = ()
    background: tuple[np.ndarray, ...] = ()
    synthetic_words: tuple[str, ...] = ()

    def with_training_clips(self, clips: np.ndarray, labels: np.ndarray, speakers: list[str],
                            unknown_words: tuple[str, ...] = ()) -> LabelledClips:
        """These synthesised clips added to the training split with these label indices;
        ``unknown_words`` are the other words among them (``_unknown_``)."""
        training = self.splits[TRAINING]
        added = dataclasses.replace(
            training, clips=np.concatenate([training.clips, clips]),
            labels=np.concatenate([training.labels, labels.astype(training.labels.dtype)]),
            speakers=training.speakers + tuple(speakers))
        return dataclasses.replace(self, splits={**self.splits, TRAINING: added},
                                   synthetic_words=self.synthetic_words + unknown_words)

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
