"""Where a measurement came from: the project's commit, for records written beside figures."""

from __future__ import annotations

import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def git_commit(folder: Path = PROJECT) -> str | None:
    """The commit checked out in ``folder``, with ``-dirty`` when its work tree has
    changes; None outside a git checkout (an installed package)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                                  check=False).stdout.strip()
        except OSError:  # no git at all
            return ""

    commit = git("rev-parse", "HEAD")
    return commit + ("-dirty" if git("status", "--porcelain") else "") if commit else None
