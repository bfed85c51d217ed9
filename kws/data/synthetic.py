"""The offline default data: keywords spoken by eSpeak NG, varied like a crowd of speakers.

eSpeak NG comes with the ``espeakng-loader`` package (library and voice data), so nothing
is downloaded. Each clip draws an English accent and a voice variant (every installed one,
and ``designed_voices`` more made at run time, ``kws.data.voices``), a speaking rate, a
pitch and a pitch range, is placed at a random point of the one-second clip, scaled to a
random level and mixed with white or brown noise. The accent and variant together are the
clip's "speaker", so the speaker-disjoint split tests on voices the model never heard.
Rooms, microphones and more noise come later, in training (``kws.data.augment``).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import dataclasses
import hashlib
import importlib.metadata
import json
import multiprocessing
import tempfile
from pathlib import Path

import numpy as np
from absl import logging

from kws import fileio
from kws.audio import fit_to_clip, resample, to_int16
from kws.config import FeatureConfig
from kws.data.dataset import SILENCE, UNKNOWN, ClipSet, LabelledClips, split_clips
from kws.data.split import SplitSpec
from kws.data.voices import (
    accents,
    design_voices,
    installed_variants,
    write_data_with_designs,
)
from kws.errors import InputError

# Bump when the recipe below changes, so old caches are not reused.
SYNTHESIS_VERSION = 2
DESIGN_SEED = 0  # a designed voice's name means the same voice in every run
RATE_WPM = (110, 230)  # eSpeak's default is 175 words per minute
PITCH = (20, 80)  # eSpeak's 0-100 scale, default 50
PITCH_RANGE = (20, 90)
PEAK_DBFS = (-26.0, -1.0)
SNR_DB = (5.0, 40.0)
SILENCE_DBFS = (-70.0, -20.0)
COMMON_WORDS_FILE = "common_words.txt"


class ESpeak:
    """A minimal ctypes binding of eSpeak NG's synchronous synthesis API."""

    _AUDIO_OUTPUT_SYNCHRONOUS = 2
    _POS_CHARACTER = 1
    _CHARS_UTF8 = 1
    _PHONEMES = 0x100  # reads [[...]] as phonemes
    _RATE, _PITCH, _RANGE = 1, 3, 4
    _CALLBACK = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )

    def __init__(self, data_path: str | Path | None = None):
        import espeakng_loader  # imported here: only synthesis needs the library

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                                ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                           ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                           ctypes.c_void_p, ctypes.c_void_p]
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p),
                                                    ctypes.c_int, ctypes.c_int]
        data_path = str(data_path or espeakng_loader.get_data_path()).encode()
        self.sample_rate = self._lib.espeak_Initialize(
            self._AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise with data at {data_path!r}")
        self._chunks: list[np.ndarray] = []
        self._callback = self._CALLBACK(self._collect)  # kept alive while the library holds it
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = go on synthesising

    def phonemes(self, text: str, voice: str = "en-us") -> str:
        """eSpeak's phoneme string for ``text`` in ``voice``, stress marks left out: words
        that sound alike ("no", "know") give the same string."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise InputError(f"eSpeak NG has no voice {voice!r}")
        pointer = ctypes.c_char_p(text.encode("utf-8"))
        spoken = []
        while pointer.value:  # one clause per call
            spoken.append(self._lib.espeak_TextToPhonemes(ctypes.byref(pointer),
                                                          self._CHARS_UTF8, 0).decode())
        return without_stress("".join(spoken))

    def say(self, text: str, voice: str, rate_wpm: int, pitch: int, pitch_range: int,
            seed: int) -> np.ndarray:
        """Speaks ``text`` and returns int16 samples at ``self.sample_rate``.

        ``seed`` fixes the breath noise of breathy and whispering voices.
        """
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise InputError(f"eSpeak NG has no voice {voice!r}")
        for parameter, value in ((self._RATE, rate_wpm), (self._PITCH, pitch),
                                 (self._RANGE, pitch_range)):
            self._lib.espeak_SetParameter(parameter, value, 0)
        self._lib.espeak_ng_SetRandSeed(seed)
        self._chunks.clear()
        encoded = text.encode("utf-8")
        status = self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, self._POS_CHARACTER, 0,
                                        self._CHARS_UTF8 | self._PHONEMES, None, None)
        if status != 0:
            raise RuntimeError(f"eSpeak NG could not speak {text!r} (status {status})")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """What to synthesise; equal specs give identical clips, so the spec keys the cache."""

    words: tuple[str, ...] = ("yes", "no", "up")
    clips_per_word: int = 1000
    seed: int = 0
    designed_voices: int = 200

    def __post_init__(self) -> None:
        if self.clips_per_word < 1:
            raise InputError(f"clips per word must be at least 1, got {self.clips_per_word!r}")
        if self.designed_voices < 0:
            raise InputError("designed voices must not be negative, got "
                             f"{self.designed_voices!r}")

    def cache_key(self, config: FeatureConfig, words_per_process: int = 1) -> str:
        identity = {**dataclasses.asdict(self), "version": SYNTHESIS_VERSION,
                    "espeak": importlib.metadata.version("espeakng-loader"),
                    "sample_rate": config.sample_rate, "clip_samples": config.clip_samples}
        if words_per_process != 1:  # another grouping gives other clips (keys of one stay)
            identity["words_per_process"] = words_per_process
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def without_stress(phonemes: str) -> str:
    return phonemes.translate(str.maketrans("", "", "',%=_ "))


def label_of(word: str) -> str:
    """The label of a wanted word: ``kira`` for ``kira`` and for ``kira:k'i@r@``."""
    return word.partition(":")[0]


def spoken_text(word: str) -> str:
    """What eSpeak NG is given to say a wanted word: the word, or for the form
    ``word:phonemes`` (a name eSpeak mispronounces) the phonemes in its ``[[...]]``
    notation (eSpeak's phoneme mnemonics: ``espeak-ng -x`` shows a word's)."""
    label, _, phonemes = word.partition(":")
    return f"[[{phonemes}]]" if phonemes else label


def _trim_silence(samples: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > threshold * max(np.abs(samples).max(), 1e-9))
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def _synthesize_words(first_index: int, count: int, spec: SyntheticSpec,
                      config: FeatureConfig, data_path: str) -> tuple[np.ndarray, list[str]]:
    """All clips of ``count`` words of ``spec`` from ``first_index`` on, as int16 ``(clips,
    clip_samples)``, and their speakers.

    Runs in a fresh process: eSpeak NG's output depends on what the process synthesised
    before (internal state survives even ``espeak_Terminate``), so only a fresh library
    given the same words in the same order gives the same clips for the same seed.
    """
    espeak = ESpeak(data_path)
    variants = installed_variants(data_path)
    voices = [(accent, variant) for accent in accents(data_path) for variant in variants]
    results = [_synthesize_word(espeak, voices, spec.words[index], index, spec, config)
               for index in range(first_index, first_index + count)]
    return (np.concatenate([clips for clips, _ in results]),
            [speaker for _, speakers in results for speaker in speakers])


def _synthesize_word(espeak: ESpeak, voices: list[tuple[str, str]], word: str,
                     word_index: int, spec: SyntheticSpec,
                     config: FeatureConfig) -> tuple[np.ndarray, list[str]]:
    """All clips of one word, each in one of ``voices`` (accent, variant), as int16
    ``(clips, clip_samples)``, and their speakers."""
    clips = np.zeros((spec.clips_per_word, config.clip_samples), np.int16)
    speakers = []
    for clip_index in range(spec.clips_per_word):
        rng = np.random.default_rng([spec.seed, word_index, clip_index])
        accent, variant = voices[int(rng.integers(len(voices)))]
        spoken = espeak.say(spoken_text(word), f"{accent}+{variant}", int(rng.integers(*RATE_WPM)),
                            int(rng.integers(*PITCH)), int(rng.integers(*PITCH_RANGE)),
                            seed=int(rng.integers(2**31)))
        speech = resample(_trim_silence(spoken / 32768.0), espeak.sample_rate, config.sample_rate)
        speech = fit_to_clip(speech, config.clip_samples) if len(speech) > config.clip_samples \
            else speech
        speech *= 10 ** (rng.uniform(*PEAK_DBFS) / 20) / max(np.abs(speech).max(), 1e-9)
        start = int(rng.integers(0, config.clip_samples - len(speech) + 1))
        clip = np.zeros(config.clip_samples, np.float32)
        clip[start : start + len(speech)] = speech
        noise = coloured_noise(config.clip_samples, rng)
        speech_rms = np.sqrt(np.mean(np.square(speech)))
        noise *= speech_rms / 10 ** (rng.uniform(*SNR_DB) / 20) / max(noise.std(), 1e-9)
        clips[clip_index] = to_int16(clip + noise)
        speakers.append(f"{accent}+{variant}")
    return clips, speakers


def coloured_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """White or (half the time) brown noise, unscaled: the hiss of microphones, the low
    rumble of rooms and cars."""
    noise = rng.standard_normal(samples)
    if rng.random() < 0.5:
        noise = np.cumsum(noise)
        noise -= np.linspace(noise[0], noise[-1], len(noise))
    return noise


def silence_clips(count: int, clip_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` noise-only clips, float32, at levels from -70 to -20 dBFS (RMS): the
    synthetic source's ``_silence_``."""
    clips = np.zeros((count, clip_samples), np.float32)
    for clip in clips:
        noise = coloured_noise(clip_samples, rng)
        clip[:] = noise / max(noise.std(), 1e-9) * 10 ** (rng.uniform(*SILENCE_DBFS) / 20)
    return clips


def synthesize(spec: SyntheticSpec, config: FeatureConfig,
               words_per_process: int = 1) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Synthesises the words in fresh processes, ``words_per_process`` each (a fixed
    grouping, so the clips do not depend on the machine): int16 clips, labels and
    speakers."""
    import espeakng_loader

    context = multiprocessing.get_context("spawn")
    firsts = range(0, len(spec.words), words_per_process)
    with tempfile.TemporaryDirectory(prefix="kws-espeak-") as scratch, \
            concurrent.futures.ProcessPoolExecutor(
                max_workers=min(len(firsts), multiprocessing.cpu_count()),
                mp_context=context, max_tasks_per_child=1) as pool:
        data_path = str(write_data_with_designs(
            espeakng_loader.get_data_path(),
            design_voices(spec.designed_voices, DESIGN_SEED), Path(scratch) / "data"))
        futures = [pool.submit(_synthesize_words, first,
                               min(words_per_process, len(spec.words) - first), spec, config,
                               data_path)
                   for first in firsts]
        results = [future.result() for future in futures]
    clips = np.concatenate([word_clips for word_clips, _ in results])
    labels = np.repeat(np.arange(len(spec.words)), spec.clips_per_word)
    speakers = [speaker for _, word_speakers in results for speaker in word_speakers]
    return clips, labels, speakers


def synthesized(spec: SyntheticSpec, config: FeatureConfig, cache_dir: str | Path,
                words_per_process: int = 1) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``synthesize``'s clips, labels and speakers, from the cache when an equal spec made
    them."""
    cache_path = Path(cache_dir) / f"synthetic-{spec.cache_key(config, words_per_process)}.npz"
    cached = fileio.read_cached_arrays(cache_path, ("clips", "labels", "speakers"),
                                       "Synthetic-speech cache")
    if cached is None:
        shown = ", ".join(spec.words[:10]) + (", ..." if len(spec.words) > 10 else "")
        logging.info("Synthesising %d clips of each of %d words (%s) with eSpeak NG "
                     "(cache: %s)", spec.clips_per_word, len(spec.words), shown, cache_path)
        clips, labels, speakers = synthesize(spec, config, words_per_process)
        fileio.write_cached_arrays(cache_path, clips=clips, labels=labels,
                                   speakers=np.asarray(speakers))
        return clips, labels, speakers
    logging.info("Reusing synthetic speech from %s", cache_path)
    return cached["clips"], cached["labels"], cached["speakers"].tolist()


def synthesized_float(spec: SyntheticSpec, config: FeatureConfig, cache_dir: str | Path,
                      words_per_process: int = 1) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``synthesized``'s clips as float32 in [-1, 1], as recordings are read, with its
    labels and speakers."""
    clips, labels, speakers = synthesized(spec, config, cache_dir, words_per_process)
    return clips.astype(np.float32) / 32768.0, labels, speakers


def common_words() -> tuple[str, ...]:
    """The list of everyday English words in ``common_words.txt``, in its order."""
    lines = (Path(__file__).with_name(COMMON_WORDS_FILE).read_text().splitlines())
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def other_words(wanted: tuple[str, ...], count: int, seed: int) -> tuple[str, ...]:
    """``count`` words of ``common_words()``, drawn with ``seed``, none of which is or
    sounds like (the same eSpeak phonemes as) a wanted word: "know" never stands in for
    "no"."""
    espeak = ESpeak()
    # A wanted word given as word:phonemes sounds as its phonemes say.
    forbidden = {without_stress(word.partition(":")[2]) or espeak.phonemes(word)
                 for word in wanted} | {label_of(word) for word in wanted}
    candidates = [word for word in common_words()
                  if word not in forbidden and espeak.phonemes(word) not in forbidden]
    if count > len(candidates):
        raise InputError(f"--synthetic_unknown_words={count}: the list holds only "
                         f"{len(candidates)} words besides the wanted ones")
    order = np.random.default_rng((seed, 2)).permutation(len(candidates))[:count]
    return tuple(candidates[i] for i in sorted(order))


# Other words are many, with few clips each: this many to a fresh eSpeak process.
OTHER_WORDS_PER_PROCESS = 25


def load_other_words(wanted: tuple[str, ...], count: int, clips_per_word: int, seed: int,
                     config: FeatureConfig, cache_dir: str | Path
                     ) -> tuple[tuple[str, ...], np.ndarray, list[str]]:
    """``count`` other words (``other_words``), ``clips_per_word`` clips each, in the
    voices of the synthetic source: the words, float32 clips and speakers."""
    words = other_words(wanted, count, seed)
    spec = SyntheticSpec(words=words, clips_per_word=clips_per_word, seed=seed)
    clips, _, speakers = synthesized_float(spec, config, cache_dir, OTHER_WORDS_PER_PROCESS)
    return words, clips, speakers


def load_synthetic(spec: SyntheticSpec, config: FeatureConfig, split_spec: SplitSpec,
                   cache_dir: str | Path, unknown_words: int = 0, unknown_clips: int = 10,
                   silence_percentage: float = 0.0) -> LabelledClips:
    """Synthesised clips of ``spec.words``, from the cache when an equal spec made them.

    With ``unknown_words``, a model trained from text alone can say "none of these": the
    clips gain ``_silence_`` (noise only, ``silence_percentage`` of each split's clips) and
    ``_unknown_`` (``unknown_words`` other words, ``unknown_clips`` each, in the same
    voices, split by the same speaker hash, so no test voice is heard in training).
    """
    clips, labels, speakers = synthesized_float(spec, config, cache_dir)
    names, others = tuple(label_of(word) for word in spec.words), ()
    if unknown_words:
        names = (SILENCE, UNKNOWN, *names)
        others, other_clips, other_speakers = load_other_words(
            spec.words, unknown_words, unknown_clips, spec.seed, config, cache_dir)
        clips = np.concatenate([clips, other_clips])
        labels = np.concatenate([labels + 2, np.full(len(other_clips), 1)])
        speakers = speakers + other_speakers
    splits = split_clips(clips, labels, speakers,
                         [split_spec.assign(speaker) for speaker in speakers])
    if unknown_words and silence_percentage:
        rng = np.random.default_rng([spec.seed, len(names)])
        for name, part in splits.items():
            count = round(len(part) * silence_percentage / 100)
            splits[name] = ClipSet(
                np.concatenate([part.clips, silence_clips(count, config.clip_samples, rng)]),
                np.concatenate([part.labels, np.zeros(count, part.labels.dtype)]),
                part.speakers + ("",) * count)
    return LabelledClips(
        labels=names, splits=splits, synthetic_words=others,
        source=(f"synthetic speech (eSpeak NG, {spec.clips_per_word} clips per word, "
                f"seed {spec.seed}" + (f", {len(others)} other words as {UNKNOWN}"
                                       if others else "") + ")"),
    )
