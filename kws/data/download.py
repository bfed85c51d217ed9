"""Fetching a published dataset once: resumable download, checksum, safe extraction."""

from __future__ import annotations

import dataclasses
import hashlib
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import keras
from absl import logging

from kws import fileio
from kws.config import check_choice
from kws.errors import InputError

CHUNK_BYTES = 1 << 20
EXTRACTED_MARKER = ".kws-extracted"


@dataclasses.dataclass(frozen=True)
class Archive:
    """A published ``.tar.gz`` dataset and the sha256 of its archive."""

    name: str
    url: str
    sha256: str


DATASETS = {
    "speech_commands_v1": Archive(
        "speech_commands_v0.01", "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d"),
    "speech_commands_v2": Archive(
        "speech_commands_v0.02", "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"),
}
# The ten command words of TensorFlow's speech_commands example, its default task.
SPEECH_COMMANDS_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target: Path, sha256: str) -> Path:
    """Downloads ``url`` to ``target`` unless it is already there with the right checksum.

    Bytes arrive in ``target.part``; an interrupted download continues from where it
    stopped (HTTP Range) when run again. Only a complete file with the expected sha256 is
    renamed to ``target``; a mismatch deletes the partial file and raises ``InputError``.
    """
    if target.is_file() and sha256_of(target) == sha256:
        return target
    partial = target.with_name(target.name + ".part")
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = have and getattr(response, "status", None) == 206
            if have and not resumed:
                have = 0  # the server sent the whole file: start again
            length = response.headers.get("Content-Length")
            total = have + int(length) if length else None
            if resumed:
                logging.info("Resuming the download of %s at %.1f MB", url, have / 1e6)
            progress = keras.utils.Progbar(total, unit_name="byte")
            with partial.open("ab" if resumed else "wb") as file:
                while chunk := response.read(CHUNK_BYTES):
                    file.write(chunk)
                    have += len(chunk)
                    progress.update(have)
    except (urllib.error.URLError, OSError) as error:
        raise InputError(f"cannot download {url} ({error}); run the same command again to "
                         f"resume, or fetch it yourself and pass --data_dir") from None
    actual = sha256_of(partial)
    if actual != sha256:
        partial.unlink()
        raise InputError(f"{url}: downloaded file has sha256 {actual}, expected {sha256}; "
                         "deleted it, run again to retry")
    partial.replace(target)
    return target


def extract(archive: Path, folder: Path) -> Path:
    """Extracts a tar archive into ``folder`` (made whole, then renamed into place).

    tarfile's ``data`` filter keeps every member inside the folder: it strips the
    leading ``/`` of absolute names (they land inside), and refuses members that climb
    out (``../``), links that point out, and devices; such an archive raises
    ``InputError`` and leaves nothing behind.
    """
    if (folder / EXTRACTED_MARKER).is_file():
        return folder
    try:  # replaces an earlier, unfinished extraction
        with fileio.staged_folder(folder) as staging, tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
            (staging / EXTRACTED_MARKER).write_text(archive.name + "\n")
    except tarfile.FilterError as error:
        raise InputError(f"{archive}: unsafe archive, refused ({error})") from None
    except (tarfile.TarError, EOFError, OSError) as error:
        raise InputError(f"{archive}: cannot extract ({error}); delete it to download it "
                         "again") from None
    return folder


def fetch(archive: Archive, cache_dir: Path) -> Path:
    """The extracted folder of ``archive`` under ``cache_dir``, downloaded on first use."""
    datasets = cache_dir / "datasets"
    folder = datasets / archive.name
    if (folder / EXTRACTED_MARKER).is_file():
        return folder
    try:
        datasets.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--cache_dir={cache_dir}: cannot write there ({error.strerror})") \
            from None
    logging.info("Downloading %s (once; cached in %s)", archive.url, datasets)
    return extract(download(archive.url, datasets / f"{archive.name}.tar.gz", archive.sha256),
                   folder)


def check_data_sources(**sources: object) -> None:
    """Raises ``InputError`` when more than one data source flag has a value (given as
    ``flag_name=value``, None when absent) or ``dataset`` names no published dataset."""
    dataset = sources.get("dataset")
    if dataset is not None:
        check_choice("dataset", dataset, tuple(DATASETS))
    given = [name for name, value in sources.items() if value is not None]
    if len(given) > 1:
        raise InputError(f"--{' and --'.join(given)} given; pass one of them")


def words_folder(data_dir: Path | None, dataset: str | None, wanted_words: tuple[str, ...] | None,
                 cache_dir: Path) -> tuple[Path, tuple[str, ...] | None]:
    """The folder of labelled clips to read and the words to read from it: ``data_dir``
    and ``wanted_words`` (None: every word folder), or the folder of a published dataset,
    downloaded once into ``cache_dir``, with its ten command words by default."""
    if dataset is not None:
        return fetch(DATASETS[dataset], cache_dir), wanted_words or SPEECH_COMMANDS_WORDS
    if data_dir is None:
        raise InputError("give --data_dir or --dataset")
    return data_dir, wanted_words
