"""Find the files to ingest under the given paths."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ragapp.ledger import source_key


@dataclass(frozen=True)
class Discovered:
    # absolute, symlinks resolved; a followed link that leads out of the folder keeps the
    # path the user sees (in the folder), so its entry goes when the link goes
    path: Path
    root: Path  # the folder (or file) given by the user
    error: str | None = None  # why it can't be read (a folder not listable, a link loop...)
    skipped: bool = False  # the error is a choice, not a fault (a link out of the folder)

    @property
    def source(self) -> str:
        """The key it is stored and shown under (lossless, also for names not in UTF-8)."""
        return source_key(self.path)


def discover(paths: Iterable[Path], follow_symlinks: bool = False) -> Iterator[Discovered]:
    """Every regular file under ``paths``, recursively, in a stable order. Hidden files and
    folders (.git, .venv, ...) are left out when walking; a file named explicitly is not.
    A symbolic link whose target lies outside the folder being walked is skipped (with
    the reason) unless ``follow_symlinks``; symlinked folders are followed once (a loop
    ends at the first repeat). Link loops, dangling links and folders that can't be
    listed are yielded with ``error`` set, so each is reported instead of stopping the walk
    or vanishing. Names that are not UTF-8 are read like any other (see ``source``)."""
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
            kept = []
            for name in sorted(d for d in dirnames if not d.startswith(".")):
                problem = _problem(Path(dirpath) / name, root, follow_symlinks)
                if problem is None:
                    kept.append(name)
                else:
                    yield problem
            dirnames[:] = kept
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                link = Path(dirpath) / name
                problem = _problem(link, root, follow_symlinks)
                if problem is not None:
                    yield problem
                    continue
                path = link.resolve()
                if path not in seen and path.is_file():
                    seen.add(path)
                    inside = root == path or root in path.parents
                    yield Discovered(path if inside else link, root)
        yield from _unlistable(errors, root)


def _problem(path: Path, root: Path, follow_symlinks: bool) -> Discovered | None:
    """Why a folder entry can't (or shouldn't) be read, as a report line; None if it can."""
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except RuntimeError:  # Python 3.11 reports a loop this way
        return Discovered(path, root, "symbolic link loop")
    except FileNotFoundError:
        return Discovered(path, root, f"dangling symbolic link (to {os.readlink(path)})")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Discovered(path, root, "symbolic link loop")
        return Discovered(path, root, f"cannot read: {exc.strerror or exc}")
    if not follow_symlinks and root != target and root not in target.parents:
        return Discovered(
            path,
            root,
            f"symbolic link to {target}, outside {root} (--follow-symlinks reads it)",
            skipped=True,
        )
    return None


def _unlistable(errors: list[OSError], root: Path) -> Iterator[Discovered]:
    while errors:
        err = errors.pop(0)
        yield Discovered(Path(err.filename), root, f"cannot read: {err.strerror or err}")
