"""Ingest verbs: `ingest` (with --dry-run and --watch), `sources`, `remove`."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ragapp.cli.common import EXIT_PARTIAL, JsonOpt, _app, _print_json, err, out

# --- ingest -----------------------------------------------------------------------------------------


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} files/s" if speed else "- files/s", style="progress.data.speed")


class _RichIngestProgress:
    """Files done / total, files per second, chunks written, ETA; then a line of its own
    for each phase after the files (the BM25 index)."""

    PHASES = {"index": "Indexing (BM25)"}

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None
        self.phases: dict[str, Any] = {}
        self.chunks = 0
        self.files = self.total = 0

    def start(self, total_files: int) -> None:
        self.total = total_files
        self.task = self.progress.add_task("Ingesting", total=total_files, chunks=0)

    def file_done(self, path: str, status: str, chunks: int) -> None:
        self.files += 1
        self.chunks += chunks
        self.progress.update(self.task, advance=1, chunks=self.chunks)
        if status == "failed":
            self.progress.console.print(f"[yellow]failed[/]  {_shown(path)}", soft_wrap=True)

    def phase(self, name: str, done: int, total: int) -> None:
        if name not in self.phases:
            label = self.PHASES.get(name, name)
            self.phases[name] = self.progress.add_task(label, total=total, chunks=self.chunks)
        self.progress.update(self.phases[name], completed=done, total=total)


def _progress(json_out: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TextColumn("{task.fields[chunks]} chunks"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=json_out or not err.is_terminal,
    )


def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.", exists=True)],
    json_out: JsonOpt = False,
    keep_deleted: Annotated[
        bool,
        typer.Option(
            "--keep-deleted", metavar="", help="Keep chunks of files deleted from the folders."
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", metavar="", help="Only print what would be added, updated, removed."
        ),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", metavar="", help="Stay running and sync again whenever files change."
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            metavar="",
            help="Parse files that failed (or held no text) again even if unchanged.",
        ),
    ] = False,
    follow_symlinks: Annotated[
        bool,
        typer.Option(
            "--follow-symlinks",
            metavar="",
            help="Also read what links inside the folders point to outside them.",
        ),
    ] = False,
) -> None:
    """Make the collection mirror the given files and folders.

    New files are added, changed ones replaced, deleted ones removed (unless
    --keep-deleted); unchanged files cost one stat(); a moved or renamed file keeps its
    vectors. Formats: pdf (OCR for scans), docx, pptx, xlsx, csv, odt, rtf, epub, html, md,
    txt, rst, eml, png/jpg/tiff (OCR). Exit code 3 when some files failed (they are listed
    and logged in DATA_DIR/logs/ingest.log) and the rest were ingested. A failed file is
    remembered: while it is unchanged, later syncs report it without parsing it again
    (--retry-failed does). Files with no text (a photo, a blank scan) are skipped, exit 0.
    A symbolic link that leads outside the folders given is skipped (--follow-symlinks
    reads it); a link loop, a dangling link or a file name that is not UTF-8 is reported.

    Example:  ragapp ingest ~/Documents --watch
    """
    app = _app(ctx)
    if watch and not dry_run:
        with _stopped_by_sigterm():  # docker stop: a quiet exit between syncs
            _watch(app, paths, json_out, keep_deleted, retry_failed, follow_symlinks)
        return
    report = _sync(app, paths, json_out, keep_deleted, dry_run, retry_failed, follow_symlinks)
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)


def _sync(
    app: Any,
    paths: list[Path],
    json_out: bool,
    keep_deleted: bool,
    dry_run: bool,
    retry_failed: bool = False,
    follow_symlinks: bool = False,
) -> Any:
    import time

    from ingest.pipeline import ingest_paths

    started = time.perf_counter()  # the summary's seconds: the whole sync, models included
    with _progress(json_out) as progress, _stopped_by_sigterm():
        tracker = _RichIngestProgress(progress)
        try:
            report = ingest_paths(
                paths,
                app.collection,
                tracker,
                keep_deleted=keep_deleted,
                dry_run=dry_run,
                retry_failed=retry_failed,
                follow_symlinks=follow_symlinks,
            )
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (docker stop, systemd)
            # the parsers are stopped by now; every file reported done is written whole
            progress.stop()
            total = f" of {tracker.total}" if tracker.total else ""
            err.print(f"interrupted: {tracker.files}{total} files done; rerun to finish")
            raise typer.Exit(143 if isinstance(exc, _Terminated) else 130) from None
    report.seconds = time.perf_counter() - started
    if json_out:
        _print_json(report.to_json())
        return report
    if dry_run:
        for status, path in report.changes:
            out.print(f"would be {status:<8} {_shown(path)}")
    verb = "would be " if dry_run else ""
    still = sum(1 for p, _ in report.failed if p in report.remembered)
    out.print(
        f"{report.added} {verb}added, {report.updated} {verb}updated, "
        f"{report.removed} {verb}removed, {report.unchanged} unchanged, {len(report.failed)} failed"
        + (f" ({still} unchanged since they failed)" if still else "")
        + ("" if dry_run else f" — {report.chunks} chunks written in {report.seconds:.1f}s")
        + (f" ({report.reused} reused existing vectors)" if report.reused else "")
    )
    if not dry_run and report.phases:
        shown = [(n, t) for n, t in report.phases.items() if t >= 0.05]
        out.print("[dim]" + " · ".join(f"{n} {t:.1f}s" for n, t in shown) + "[/]")
    _print_problems("Failed", report.failed, "red")
    _print_problems("Skipped", report.skipped, "dim")
    return report


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C's KeyboardInterrupt is, so both stop an
    ingest the same way: workers stopped and reaped, one line, exit 143 (130 for Ctrl-C)."""


@contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    def stop(signum: int, frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _watch(
    app: Any,
    paths: list[Path],
    json_out: bool,
    keep_deleted: bool,
    retry_failed: bool,
    follow_symlinks: bool,
) -> None:
    """Sync, then again after each burst of changes (debounced); Ctrl-C stops. The watcher
    is running before the first sync starts, so nothing changed during it is missed."""
    from watchfiles import watch

    folders = [p for p in paths if Path(p).exists()]
    first = True
    try:
        for changes in watch(
            *folders,
            debounce=1500,
            step=200,
            yield_on_timeout=True,
            rust_timeout=500,
            raise_interrupt=False,
        ):
            if changes or first:
                _sync(
                    app, paths, json_out, keep_deleted, False, retry_failed and first,
                    follow_symlinks,
                )  # fmt: skip
                if first:
                    err.print(
                        f"[dim]watching {len(folders)} path(s) for changes; Ctrl-C to stop[/]"
                    )
                first = False
    except KeyboardInterrupt:
        pass


def _shown(path: str) -> str:
    """A file's path in a Rich line: one line, its brackets not read as markup."""
    from ragapp.ledger import one_line

    return escape(one_line(path))


def _print_problems(title: str, rows: list[tuple[str, str]], style: str) -> None:
    if not rows:
        return
    table = Table(title=f"{title} ({len(rows)})", title_justify="left", style=style)
    table.add_column("file", overflow="fold")
    table.add_column("reason", overflow="fold")
    for path, reason in rows:
        table.add_row(_shown(path), escape(reason))
    err.print(table)


def sources(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List the ingested files with their chunk counts and when they were ingested.

    Example:  ragapp sources --json
    """
    rows = _app(ctx).sources()
    if json_out:
        _print_json({"sources": rows})
        return
    table = Table("chunks", "ingested (UTC)")
    table.add_column("file", overflow="fold")  # a long path wraps; it is never cut off
    for r in rows:
        table.add_row(str(r["chunks"]), r["ingested_at"].replace("+00:00", ""), _shown(r["path"]))
    out.print(table)
    out.print(f"{len(rows)} files, {sum(r['chunks'] for r in rows)} chunks")


def remove(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Ingested files or folders to remove.")],
    json_out: JsonOpt = False,
) -> None:
    """Remove files (or everything under folders) from the collection; the files on disk
    are not touched.

    Example:  ragapp remove ~/Documents/old-contract.pdf
    """
    from ragapp.errors import RagappError

    collection = _app(ctx).collection
    gone = collection.files_under(paths)
    if not gone:
        targets = [Path(p).expanduser().resolve() for p in paths]
        raise RagappError("nothing ingested under " + ", ".join(map(str, targets)))
    chunks = collection.remove_files(gone)
    collection.refresh_search_index()
    if json_out:
        _print_json({"removed": gone, "chunks": chunks})
    else:
        out.print(f"removed {len(gone)} file(s), {chunks} chunks")
