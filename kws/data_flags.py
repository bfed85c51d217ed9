"""The flags that choose and split the data, and the front end's setting that the
training split's normalisation depends on, shared by ``kws.train`` and ``kws.prepare``.

Importing this module defines them; it loads no TensorFlow, so ``--help`` stays quick.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from kws.config import DEFAULT_CACHE_DIR, FeatureConfig, parse_word_list

DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder of labelled recordings, DATA_DIR/<word>/*.wav (Speech Commands "
    "layout, any sample rate). kws.train without it (and without --dataset or "
    "--prepared_dir) trains on synthetic speech.")
DATASET = flags.DEFINE_enum(
    "dataset", None, ["speech_commands_v1", "speech_commands_v2"],
    "Download a published dataset once (into --cache_dir) and use it instead of "
    "--data_dir: Google Speech Commands v0.01 (1.4 GB) or v0.02 (2.3 GB).")
WANTED_WORDS = flags.DEFINE_string(
    "wanted_words", None, "Comma-separated words to train on. Default: every label folder of "
    "--data_dir, the ten command words (yes,no,up,down,left,right,on,off,stop,go) for "
    "--dataset, or yes,no,up for synthetic speech. Synthetic speech says any English word, "
    "and word:phonemes in eSpeak NG's notation for a name it mispronounces "
    "(--wanted_words=kira:k'i@r@,lights).")
SILENCE_PERCENTAGE = flags.DEFINE_float(
    "silence_percentage", 10.0, "Size of the _silence_ class (background noise at a random "
    "volume, or zeros without _background_noise_/), as a percentage of the wanted words' "
    "clips per split; 0 for none. --data_dir and --dataset only.", lower_bound=0.0)
UNKNOWN_PERCENTAGE = flags.DEFINE_float(
    "unknown_percentage", 10.0, "Size of the _unknown_ class (clips of words not in "
    "--wanted_words), as a percentage of the wanted words' clips per split; 0 for none.",
    lower_bound=0.0)
CACHE_DIR = flags.DEFINE_string(
    "cache_dir", str(DEFAULT_CACHE_DIR),
    "Where synthetic speech and downloaded datasets are kept between runs.")
VALIDATION_PERCENTAGE = flags.DEFINE_float(
    "validation_percentage", 10.0, "Share of speakers for validation, by speaker hash.",
    lower_bound=0.0, upper_bound=100.0)
TESTING_PERCENTAGE = flags.DEFINE_float(
    "testing_percentage", 10.0, "Share of speakers for testing, by speaker hash.",
    lower_bound=0.0, upper_bound=100.0)
VALIDATION_SPEAKERS = flags.DEFINE_string(
    "validation_speakers", "", "Comma-separated speakers held out for validation.")
TESTING_SPEAKERS = flags.DEFINE_string(
    "testing_speakers", "", "Comma-separated speakers held out for testing, e.g. theo for the "
    "Free Spoken Digit Dataset.")

RUNNING_MEAN_FRAMES = flags.DEFINE_float(
    "running_mean_frames", 0.0, "Time constant, in 10 ms frames, of a causal running mean of "
    "each mel bin that is subtracted before the normalisation (online mean normalisation: "
    "removes a microphone's colouring and the level); 0 is off. Saved in features.json (and "
    "in prepared.json by kws.prepare, whose folder then trains only with the same value).")
PCEN_FRAMES = flags.DEFINE_float(
    "pcen_frames", 0.0, "Time constant, in 10 ms frames, of per-channel energy normalisation "
    "(PCEN), which replaces the log of the mel energies (an automatic gain per mel bin; 40 "
    "is the paper's 0.4 s); 0 is the log. Saved in features.json like --running_mean_frames, "
    "and not with it.")


def optional_list(text: str | None, flag: str) -> tuple[str, ...]:
    return parse_word_list(text, flag) if text else ()


def data_settings() -> dict:
    """The data and front-end flags as keyword arguments shared by ``TrainConfig`` and
    ``PrepareConfig``; bad values raise ``InputError``."""
    from kws.data.split import SplitSpec

    return {
        "features": FeatureConfig(running_mean_frames=RUNNING_MEAN_FRAMES.value,
                                  pcen_frames=PCEN_FRAMES.value),
        "data_dir": Path(DATA_DIR.value) if DATA_DIR.value else None,
        "dataset": DATASET.value,
        "wanted_words": optional_list(WANTED_WORDS.value, "--wanted_words") or None,
        "silence_percentage": SILENCE_PERCENTAGE.value,
        "unknown_percentage": UNKNOWN_PERCENTAGE.value,
        "cache_dir": Path(CACHE_DIR.value).expanduser(),
        "split": SplitSpec(
            validation_percentage=VALIDATION_PERCENTAGE.value,
            testing_percentage=TESTING_PERCENTAGE.value,
            validation_speakers=optional_list(VALIDATION_SPEAKERS.value,
                                              "--validation_speakers"),
            testing_speakers=optional_list(TESTING_SPEAKERS.value, "--testing_speakers"),
        ),
    }
