"""The voices of the synthetic source: eSpeak NG's English accents and voice variants, and
variants designed at run time.

A variant file (``voices/!v/NAME`` in eSpeak's data) sets a voice's quality: ``formant``
scales the frequency of each formant, which at synthesis is vocal-tract-length warping
(shorter tracts, as of women and children, raise them all); ``pitch`` the register in Hz;
``flutter`` the wobble of the pitch, ``roughness`` creak, ``breath`` and ``voicing``
breathiness, ``tone`` the spectral tilt. Designed variants draw all of these, so the
source has as many voices as it asks for, not only the hundred or so that come installed.
They live in a copy of the data folder made for each synthesis (links to the installed
files, with the designs added), as eSpeak reads variants only from its data folder.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

VARIANTS_FOLDER = Path("voices") / "!v"
DESIGNED_PREFIX = "kws"
FORMANT_SCALE = (0.85, 1.3)  # adult men about 0.9-1.0, women 1.1-1.2, children higher
FORMANT_JITTER = 0.05  # each formant moves this much more on its own, either way
LOW_PITCH_HZ = (70, 230)
PITCH_SPAN = (1.2, 1.8)  # the top of the register over its bottom
TONE_HZ = (600, 1200, 2000, 3000)


def accents(data_path: str | Path) -> tuple[str, ...]:
    """Every English accent of the data folder, as names ``espeak_SetVoiceByName`` takes
    (``en-us``, ``en-gb-scotland``, ...); Shavian spelling (``en-shaw``) is left out, as it
    reads another alphabet."""
    folder = Path(data_path) / "lang" / "gmw"
    return tuple(sorted(path.name.lower() for path in folder.glob("en*")
                        if path.name.lower() != "en-shaw"))


def installed_variants(data_path: str | Path) -> tuple[str, ...]:
    """Every variant file of the data folder whose name eSpeak can take after ``+`` (no
    spaces), sorted."""
    folder = Path(data_path) / VARIANTS_FOLDER
    return tuple(sorted(path.name for path in folder.iterdir()
                        if path.is_file() and " " not in path.name))


@dataclasses.dataclass(frozen=True)
class VoiceDesign:
    """One designed variant, in the units of eSpeak's variant files.

    Args:
        formants: Frequency of formants 0 to 8, in % of the default.
        low_pitch_hz: Bottom of the pitch register, in Hz.
        high_pitch_hz: Top of the pitch register, in Hz.
        flutter: Pitch wobble (eSpeak's default is 64).
        roughness: Creak, 0 to 7.
        breath: Breath noise in formants 1 to 8, each 0 (none) up; () for none.
        voicing: Strength of the voiced sound, in % of the default.
        tone: Amplitude (0-255) at each of ``TONE_HZ``: the spectral tilt.
    """

    formants: tuple[int, ...]
    low_pitch_hz: int
    high_pitch_hz: int
    flutter: int
    roughness: int
    breath: tuple[int, ...]
    voicing: int
    tone: tuple[int, ...]

    def variant_file(self, name: str) -> str:
        lines = ["language variant", f"name {name}",
                 f"gender {'female' if self.formants[2] >= 110 else 'male'}",
                 f"pitch {self.low_pitch_hz} {self.high_pitch_hz}",
                 f"flutter {self.flutter}", f"roughness {self.roughness}",
                 f"voicing {self.voicing}",
                 "tone " + " ".join(f"{hz} {amplitude}"
                                    for hz, amplitude in zip(TONE_HZ, self.tone, strict=True))]
        lines += [f"formant {index} {scale} 100 100" for index, scale in enumerate(self.formants)]
        if self.breath:
            lines.append("breath " + " ".join(map(str, self.breath)))
        return "\n".join(lines) + "\n"


def design_voices(count: int, seed: int) -> tuple[VoiceDesign, ...]:
    """``count`` random voice designs, the same for the same seed."""
    rng = np.random.default_rng([seed, 11])
    designs = []
    for _ in range(count):
        scale = rng.uniform(*FORMANT_SCALE)
        # A shorter vocal tract comes with a higher voice, mostly.
        low_pitch = float(np.clip(rng.uniform(*LOW_PITCH_HZ) * scale, 60, 300))
        designs.append(VoiceDesign(
            formants=tuple(round(100 * scale * (1 + rng.uniform(-1, 1) * FORMANT_JITTER))
                           for _ in range(9)),
            low_pitch_hz=round(low_pitch),
            high_pitch_hz=round(low_pitch * rng.uniform(*PITCH_SPAN)),
            flutter=int(rng.integers(0, 80)),
            roughness=int(rng.integers(0, 5)),
            breath=tuple(int(v) for v in rng.integers(0, 12, 8)) if rng.random() < 0.3 else (),
            voicing=int(rng.integers(70, 111)),
            tone=tuple(int(v) for v in rng.integers(60, 200, len(TONE_HZ))),
        ))
    return tuple(designs)


def designed_name(index: int) -> str:
    return f"{DESIGNED_PREFIX}{index:03d}"


def write_data_with_designs(data_path: str | Path, designs: tuple[VoiceDesign, ...],
                            folder: str | Path) -> Path:
    """Makes ``folder`` a data folder that is ``data_path``'s English plus ``designs`` as
    variants ``kws000``, ``kws001``, ...: links to the installed files (a few
    milliseconds), and returns it.

    The other languages' voices are left out: eSpeak lists at most 349 voices and variants
    together, and finds no variant past that.
    """
    data_path, folder = Path(data_path), Path(folder)
    for root, _, names in os.walk(data_path):
        relative = Path(root).relative_to(data_path)
        if relative.parts[:1] == ("lang",) and len(relative.parts) > 1:
            names = [name for name in names if name.lower().startswith("en")]
        (folder / relative).mkdir(parents=True, exist_ok=True)
        for name in names:
            (folder / relative / name).symlink_to(Path(root) / name)
    for index, design in enumerate(designs):
        (folder / VARIANTS_FOLDER / designed_name(index)).write_text(
            design.variant_file(designed_name(index)))
    return folder
