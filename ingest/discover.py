"""Find the files to ingest under the given paths."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Discovered:
    path: Path  # absolute, symlinks resolved
    root: Path  # the folder (or file) given by the user
    error: str | None = None  # set for a folder that could not be listed


def discover(paths: Iterable[Path]) -> Iterator[Discovered]:
    """Every regular file under ``paths``, recursively, in a stable order. Hidden files and
    folders (.git, .venv, ...) are left out when walking; a file named explicitly is not.
    Symlinked folders are followed once (a loop ends at the first repeat). A folder that
    can't be listed is yielded with ``error`` set, so it is reported instead of vanishing."""
    seen: set[Path] = set()
    for given in paths:
        root = Path(given).expanduser().resolve()
        if root.is_file():
            if root not in seen:
                seen.add(root)
                yield Discovered(root, root)
            continue
        visited_dirs: set[Path] = set()
        errors: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=errors.append):
            yield from _unlistable(errors, root)
            real = Path(dirpath).resolve()
            if real in visited_dirs:
                dirnames[:] = []
                continue
            visited_dirs.add(real)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = (Path(dirpath) / name).resolve()
                if path not in seen and path.is_file():
                    seen.add(path)
                    yield Discovered(path, root)
        yield from _unlistable(errors, root)


def _unlistable(errors: list[OSError], root: Path) -> Iterator[Discovered]:
    while errors:
        err = errors.pop(0)
        yield Discovered(Path(str(err.filename)), root, f"cannot read: {err.strerror or err}")
