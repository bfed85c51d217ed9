"""Synthetic WAV fixtures written by the tests, and the optional real-data folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws.audio import write_wav

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FSDD = SHARED_DATA / "fsdd"
FSDD_MISSING = f"{FSDD} is absent (real recordings live outside the project; see README)"


def tone(frequency_hz: float, seconds: float, sample_rate: int, amplitude: float = 0.5,
         seed: int = 0) -> np.ndarray:
    """A sine with a little noise, so every clip differs."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    noise = np.random.default_rng(seed).standard_normal(len(t)) * 0.01
    return (amplitude * np.sin(2 * np.pi * frequency_hz * t) + noise).astype(np.float32)


def write_word_folder(root: Path, words: dict[str, float], speakers: list[str],
                      takes: int = 2, sample_rate: int = 16000, seconds: float = 0.6) -> Path:
    """``root/<word>/<speaker>_nohash_<take>.wav``: each word a tone of its own pitch."""
    for word_index, (word, frequency) in enumerate(words.items()):
        (root / word).mkdir(parents=True, exist_ok=True)
        for speaker_index, speaker in enumerate(speakers):
            for take in range(takes):
                seed = word_index * 1000 + speaker_index * 10 + take
                write_wav(root / word / f"{speaker}_nohash_{take}.wav",
                          tone(frequency * (1 + 0.02 * speaker_index), seconds, sample_rate,
                               seed=seed),
                          sample_rate)
    return root
