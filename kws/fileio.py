"""Atomic file writes: a crash leaves either the old file or the new one, never a torn one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from absl import logging


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` on success.

    The temporary name ends in ``suffix``, by default the suffix of ``path`` (Keras and
    matplotlib choose the format from it; Keras weights need ``.weights.h5``), and lives in
    the same folder, so the final rename is atomic.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.",
                                    suffix=path.suffix if suffix is None else suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp's 0600 would make the result private
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_cached_arrays(path: Path, names: tuple[str, ...], what: str) -> dict | None:
    """The arrays ``names`` of the ``.npz`` cache ``path``, or None when it is missing or
    damaged (a damaged one is logged as ``what``; the caller makes it again)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as cached:
            return {name: cached[name] for name in names}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        logging.warning("%s %s is damaged (%s); making it again", what, path, error)
        return None


def write_cached_arrays(path: Path, **arrays) -> None:
    """Writes an ``.npz`` cache atomically, making its folder if needed."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


@contextlib.contextmanager
def staged_folder(folder: str | Path) -> Iterator[Path]:
    """Yields a new empty folder beside ``folder``; on success it replaces ``folder`` and
    whatever that held, so a reader never sees a half-written one. On failure it is
    removed and ``folder`` is left as it was."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    staging.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would make the result private
    try:
        yield staging
        shutil.rmtree(folder, ignore_errors=True)
        staging.replace(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
