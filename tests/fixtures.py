"""Synthetic WAV fixtures written by the tests, and the optional real-data folders."""

from __future__ import annotations

import importlib.util
import os
import socket
import struct
import subprocess
from pathlib import Path

import numpy as np

from kws.audio import write_wav

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FSDD = SHARED_DATA / "fsdd"
FSDD_MISSING = f"{FSDD} is absent (real recordings live outside the project; see README)"
SPEECH_COMMANDS_SAMPLE = SHARED_DATA / "speech_commands_v0.01_sample"
SPEECH_COMMANDS_MISSING = f"{SPEECH_COMMANDS_SAMPLE} is absent (real recordings live outside " \
    "the project; see README)"
MINI_SPEECH_COMMANDS = SHARED_DATA / "mini_speech_commands"
MINI_SPEECH_COMMANDS_MISSING = f"{MINI_SPEECH_COMMANDS} is absent (real recordings live " \
    "outside the project; see README)"


ROOT = Path(__file__).resolve().parents[1]


def free_ports(count: int) -> list[int]:
    """Ports free on the loopback interface now."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start(command: list[str], **environment: str) -> subprocess.Popen:
    """Starts ``command`` in the project folder; its stderr (the absl log) is kept."""
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **environment},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_all(processes: list[subprocess.Popen], timeout_s: float) -> list[str]:
    """Waits for every process, killing all of them if one outlives ``timeout_s``; their
    logs, in order."""
    try:
        return [process.communicate(timeout=timeout_s)[1] for process in processes]
    finally:
        for process in processes:
            process.kill()


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


def wav_bytes(payload: bytes, sample_rate: int, bits: int = 16, channels: int = 1,
              format_tag: int = 1, data_size: int | None = None) -> bytes:
    """A WAV file built by hand, so a test can make its header lie (``data_size``)."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", format_tag, channels, sample_rate, sample_rate * block, block,
                      bits)
    size = len(payload) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + \
        struct.pack("<I", size) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def int24_bytes(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as little-endian 24-bit PCM."""
    values = np.round(samples * (2**23 - 1)).astype("<i4")
    return values.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


# What a folder of junk holds: file name -> (content written by ``write_bad_members``,
# whether kws can use it). Truncated, non-audio, empty and very long files are skipped.
BAD_MEMBERS = {
    "truncated_nohash_0.wav": False,
    "text_nohash_0.wav": False,
    "empty_nohash_0.wav": False,
    "tenminutes_nohash_0.wav": False,
    "int24_nohash_0.wav": True,
    "float_nohash_0.wav": True,
    "stereo_nohash_0.wav": True,
}


def write_bad_members(folder: Path) -> None:
    """The members of ``BAD_MEMBERS`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    word = tone(440.0, 0.8, 16000)
    pcm16 = (word * 32767).astype("<i2").tobytes()
    (folder / "truncated_nohash_0.wav").write_bytes(
        wav_bytes(pcm16[:4000], 16000, data_size=len(pcm16)))
    (folder / "text_nohash_0.wav").write_text("not audio, only named like it\n")
    (folder / "empty_nohash_0.wav").write_bytes(b"")
    (folder / "tenminutes_nohash_0.wav").write_bytes(
        wav_bytes(np.zeros(600 * 8000, "<i2").tobytes(), 8000))
    (folder / "int24_nohash_0.wav").write_bytes(wav_bytes(int24_bytes(word), 16000, bits=24))
    (folder / "float_nohash_0.wav").write_bytes(
        wav_bytes(word.astype("<f4").tobytes(), 16000, bits=32, format_tag=3))
    (folder / "stereo_nohash_0.wav").write_bytes(
        wav_bytes(np.repeat((word * 32767).astype("<i2"), 2).tobytes(), 16000, channels=2))


def read_only_folder(parent: Path) -> Path | None:
    """A folder nobody may write into, or None where this user can write anywhere (root
    ignores permission bits; sysfs then serves, where it is mounted)."""
    folder = parent / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        return folder
    sysfs = Path("/sys/kernel")
    return sysfs if sysfs.is_dir() and not _can_create_in(sysfs) else None


def _can_create_in(folder: Path) -> bool:
    try:
        (folder / "kws-write-probe").mkdir()
    except OSError:
        return False
    (folder / "kws-write-probe").rmdir()
    return True


def load_tool(name: str):
    """``tools/NAME.py`` as a module (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool
