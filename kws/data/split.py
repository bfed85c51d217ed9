"""Deterministic, speaker-disjoint assignment of clips to training, validation and testing.

The hash is the one of TensorFlow's speech_commands example, so a folder split here puts
each Speech Commands speaker on the same side as that example does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

from kws.errors import InputError

TRAINING, VALIDATION, TESTING = "training", "validation", "testing"
SPLITS = (TRAINING, VALIDATION, TESTING)

# Speech Commands' constant: keeps a speaker's split stable as more clips are added.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1


def speaker_of(path: str | Path, label: str) -> str:
    """The speaker encoded in a clip's file name.

    ``<speaker>_nohash_<n>.wav`` (Speech Commands) gives ``<speaker>``;
    ``<label>_<speaker>_<take>.wav`` (Free Spoken Digit Dataset) gives ``<speaker>``.
    Any other name is its own speaker, so the split stays deterministic.
    """
    name = Path(path).name
    if "_nohash_" in name:
        return re.sub(r"_nohash_.*$", "", name)
    fields = Path(name).stem.split("_")
    if len(fields) >= 3 and fields[0] == label:
        return fields[1]
    return Path(name).stem


def which_set(speaker: str, validation_percentage: float, testing_percentage: float) -> str:
    """The split of a speaker: SHA1 of the name, as TensorFlow's speech_commands does it."""
    digest = hashlib.sha1(speaker.encode("utf-8")).hexdigest()
    percentage = (int(digest, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (
        100.0 / MAX_NUM_WAVS_PER_CLASS
    )
    if percentage < validation_percentage:
        return VALIDATION
    if percentage < validation_percentage + testing_percentage:
        return TESTING
    return TRAINING


def _percentage(value: float, name: str) -> float:
    if not 0 <= value <= 100:
        raise InputError(f"{name} must be between 0 and 100, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """How clips are assigned to splits.

    Speakers named in ``validation_speakers`` or ``testing_speakers`` go to that split;
    every other speaker is placed by ``which_set``. A folder with few speakers (the Free
    Spoken Digit Dataset has six) needs the names, or the hash may leave a split empty.
    """

    validation_percentage: float = 10.0
    testing_percentage: float = 10.0
    validation_speakers: tuple[str, ...] = ()
    testing_speakers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _percentage(self.validation_percentage, "validation percentage")
        _percentage(self.testing_percentage, "testing percentage")
        if self.validation_percentage + self.testing_percentage >= 100:
            raise InputError(
                "validation and testing percentages leave nothing for training: "
                f"{self.validation_percentage!r} + {self.testing_percentage!r} >= 100"
            )
        both = sorted(set(self.validation_speakers) & set(self.testing_speakers))
        if both:
            raise InputError(f"speakers named for both validation and testing: {', '.join(both)}")

    def assign(self, speaker: str) -> str:
        if speaker in self.testing_speakers:
            return TESTING
        if speaker in self.validation_speakers:
            return VALIDATION
        return which_set(speaker, self.validation_percentage, self.testing_percentage)
