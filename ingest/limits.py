"""Bounded memory and time for parsing files nobody vetted.

- Zip containers (docx, xlsx, pptx, odt, epub) are checked before any parser opens them:
  entry count, total size and compression ratio from the central directory, then every
  member is inflated once, as a stream, counting the bytes it really inflates to (a central
  directory can lie) and looking for XML entity declarations (billion laughs, external
  entities: no office document or e-book needs them).
- Each parse runs in a worker process under an address-space cap (RLIMIT_AS) and a
  watchdog on its time; a worker killed by either fails only the file it was parsing, and
  the files queued behind it go to a fresh worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import re
import resource
import signal
import struct
import threading
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

ZIP_FORMATS = frozenset({".docx", ".xlsx", ".pptx", ".odt", ".epub"})
MIB = 1024 * 1024
# The ratio limit applies to members that inflate past this: a small, very repetitive part
# (a styles sheet, an empty table) can compress far better than 100:1 and is harmless.
RATIO_GRACE_BYTES = 10 * MIB
# An internal DTD subset declaring entities: billion laughs (nested entities) and XXE
# (SYSTEM entities naming local files). Searched in UTF-8 and both UTF-16 byte orders.
_ENTITY = [
    "<!ENTITY".encode(codec) for codec in ("ascii", "utf-16-le", "utf-16-be")
]  # fmt: skip
_CARRY = max(len(p) for p in _ENTITY) - 1
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # compound file: encrypted OOXML, legacy Office
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's sizeFileHeader layout
_INFLATE_STEP = 4 * MIB  # output bytes per zlib call: bounds the check's own memory


@dataclass(frozen=True)
class ParseLimits:
    """What one file may cost to parse (the ``max_*`` and ``parse_*`` settings)."""

    max_unzipped_mb: float = 512.0
    max_zip_ratio: float = 100.0
    max_zip_entries: int = 10_000
    memory_mb: int = 0  # 0: no address-space cap
    timeout_s: float = 0.0  # 0: no time limit

    @classmethod
    def from_settings(cls, settings: Any) -> ParseLimits:
        return cls(
            max_unzipped_mb=settings.max_unzipped_mb,
            max_zip_ratio=settings.max_zip_ratio,
            max_zip_entries=settings.max_zip_entries,
            memory_mb=settings.parse_memory_mb,
            timeout_s=settings.parse_timeout_s,
        )

    @property
    def isolated(self) -> bool:
        """Whether parses need a worker process (a cap or a limit to enforce)."""
        return self.memory_mb > 0 or self.timeout_s > 0


# --- zip containers ---------------------------------------------------------------------


def archive_problem(path: Path, limits: ParseLimits) -> str | None:
    """Why a zip-container document must not be parsed, or None. An OLE container (an
    encrypted OOXML file, or a legacy .doc renamed) is left to its parser."""
    suffix = path.suffix.lower()
    if suffix not in ZIP_FORMATS:
        return None
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        with path.open("rb") as fh:
            if fh.read(len(_OLE)) == _OLE:
                return None
        return f"damaged or truncated (not a zip archive, as a {suffix} file is)"
    with archive, path.open("rb") as raw:
        members = archive.infolist()
        if len(members) > limits.max_zip_entries:
            return (
                f"exceeds the {limits.max_zip_entries:,}-entry zip limit ({len(members):,} entries)"
            )
        cap = int(limits.max_unzipped_mb * MIB)
        if sum(m.file_size for m in members) > cap:
            return _size_reason(limits)
        for member in members:
            if member.file_size > RATIO_GRACE_BYTES and (
                member.file_size > limits.max_zip_ratio * max(member.compress_size, 1)
            ):
                return _ratio_reason(
                    member, member.file_size / max(member.compress_size, 1), limits
                )
        if any(m.flag_bits & 0x1 for m in members):
            return "encrypted (password-protected)"
        total = 0
        for member in members:
            try:
                problem, size = _inflate_and_scan(archive, raw, member, cap - total, limits)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                return f"damaged zip archive ({member.filename}: {exc})"
            if problem:
                return problem
            total += size
    return None


def _size_reason(limits: ParseLimits) -> str:
    return f"exceeds the {limits.max_unzipped_mb:g} MiB unzipped limit (zip bomb?)"


def _ratio_reason(member: zipfile.ZipInfo, ratio: float, limits: ParseLimits) -> str:
    return (
        f"{member.filename} compresses {ratio:,.0f}:1, beyond the "
        f"{limits.max_zip_ratio:g}:1 zip ratio limit (zip bomb?)"
    )


def _inflate_and_scan(
    archive: zipfile.ZipFile, raw: Any, member: zipfile.ZipInfo, budget: int, limits: ParseLimits
) -> tuple[str | None, int]:
    """Inflate one member as a stream: (a reason to refuse the file or None, its size)."""
    size = 0
    tail = b""
    for chunk, consumed in _member_chunks(archive, raw, member):
        size += len(chunk)
        if size > budget:
            return _size_reason(limits), size
        if size > RATIO_GRACE_BYTES and size > limits.max_zip_ratio * max(consumed, 1):
            return _ratio_reason(member, size / max(consumed, 1), limits), size
        seam = tail + chunk[:_CARRY]  # a declaration split across two chunks
        if any(p in chunk or p in seam for p in _ENTITY):
            return f"declares XML entities in {member.filename} (entity expansion bomb?)", size
        tail = chunk[-_CARRY:]
    return None, size


def _member_chunks(
    archive: zipfile.ZipFile, raw: Any, member: zipfile.ZipInfo
) -> Iterator[tuple[bytes, int]]:
    """(inflated bytes, compressed bytes consumed so far) of one member. Deflated data is
    inflated here from the raw stream, to its real end, whatever size the directory
    declares; other methods go through zipfile (which stops at the declared size and
    checks the CRC)."""
    if member.compress_type != zipfile.ZIP_DEFLATED:
        with archive.open(member) as fh:
            read = 0
            while block := fh.read(_INFLATE_STEP):
                read += len(block)
                yield block, read
        return
    raw.seek(member.header_offset)
    header = raw.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    *_, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    raw.seek(name_length + extra_length, 1)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    left = member.compress_size
    consumed = 0
    while left > 0 and not inflater.eof:
        block = raw.read(min(left, MIB))
        if not block:
            raise EOFError("truncated member")
        left -= len(block)
        consumed += len(block)
        data = block
        while data and not inflater.eof:
            out = inflater.decompress(data, _INFLATE_STEP)
            data = inflater.unconsumed_tail
            yield out, consumed - len(data)


# --- markup -------------------------------------------------------------------------------

_HTML = frozenset({".html", ".htm"})
_INTERNAL_SUBSET = re.compile(rb"<!DOCTYPE[^>\[]*\[", re.IGNORECASE)
_HEAD_BYTES = 64 * 1024


def markup_problem(path: Path) -> str | None:
    """Why an HTML file must not be parsed, or None: entity declarations in a DOCTYPE's
    internal subset, which HTML never needs (lxml's HTML parser would not expand them, but
    the text would come out as '&lol9;' garbage: refused with a reason instead)."""
    if path.suffix.lower() not in _HTML:
        return None
    with path.open("rb") as fh:
        head = fh.read(_HEAD_BYTES)
    found = _INTERNAL_SUBSET.search(head)
    if found and _ENTITY[0] in head[found.end() :]:
        return "declares XML entities (entity expansion bomb?)"
    return None


# --- worker processes --------------------------------------------------------------------


@dataclass
class _InWorker:
    """This process, when it is a parser worker: what heartbeat() and memory_reason() need."""

    conn: Connection
    limits: ParseLimits
    base: int  # address space (bytes) of the loaded libraries, before any file
    key: int | None = None  # the task in hand


_worker: _InWorker | None = None  # set in worker processes only


def heartbeat() -> None:
    """A long parse made progress (a page OCR'd): its time limit starts again."""
    if _worker is not None and _worker.key is not None:
        _announce(_worker)


def memory_reason() -> str:
    """The reason for a parse that ran out of memory: the worker's limit, when it has one."""
    if _worker is None or _worker.limits.memory_mb <= 0:
        return "out of memory while parsing"
    return f"exceeds the {_worker.limits.memory_mb:,} MiB parse memory limit"


def time_reason(limits: ParseLimits) -> str:
    return f"exceeds the {limits.timeout_s:g} s parse time limit"


def _crash_reason(exitcode: int | None, limits: ParseLimits) -> str:
    if exitcode == -signal.SIGXCPU:  # the CPU-time backstop (see _announce)
        return time_reason(limits)
    return "the parser crashed on this file"


def _worker_main(
    conn: Connection, limits: ParseLimits, parse: Callable[..., Any], setup: Callable[[], None]
) -> None:
    """A worker: parse tasks one at a time, announcing each before it starts, so that the
    pool knows which file was running should the worker be killed or crash. ``parse``
    returns a result, or a str: the reason the file failed."""
    global _worker
    os.setpgid(0, 0)  # its own group: a kill takes pandoc or tesseract children along
    _die_with_parent()
    setup()
    # The memory limit is on top of what the libraries already take (about 1 GiB with
    # torch and spaCy loaded; more with a CUDA build of torch), so it means the same
    # on every install.
    worker = _worker = _InWorker(conn, limits, base=_address_space("VmSize"))
    if limits.memory_mb > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = worker.base + limits.memory_mb * MIB
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard < 0 else min(cap, hard), hard))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the main process is gone
        if task is None:
            return
        worker.key, args = task
        _announce(worker)
        peak = _address_space("VmPeak")
        try:
            result = parse(*args)
        except MemoryError:
            result = memory_reason()
        except Exception as exc:  # noqa: BLE001  (a parser bug must not stop the run)
            result = f"cannot parse: {type(exc).__name__}: {exc}"
        if isinstance(result, str) and _ran_into_the_limit(worker, peak):
            result = memory_reason()  # a C library's failed allocation, in its own words
        conn.send(("done", worker.key, result))
        worker.key = None


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when its parent, the forkserver, ends. The
    forkserver ends once no process holds its "alive" pipe: the main process, and each
    worker, which inherits a copy it never uses (closed here). So no parse outlives its
    ingest, even one killed with SIGKILL, or a parse stuck in C."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    alive = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(alive, int):
        with contextlib.suppress(OSError):
            os.close(alive)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent went before the request took
        os._exit(1)


def _announce(worker: _InWorker) -> None:
    """Tell the pool the task in hand (re)starts its clock; arm the CPU-time backstop."""
    timeout = worker.limits.timeout_s
    if timeout > 0:
        # For a pool that is gone: the kernel ends a worker whose CPU time runs past this
        # (SIGXCPU); the pool's watchdog on wall time comes first.
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(used.ru_utime + used.ru_stime + timeout) + 10
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (soft if hard < 0 else min(soft, hard), hard))
    worker.conn.send(("start", worker.key, time.monotonic()))


def _address_space(field: str) -> int:
    """VmSize or VmPeak of this process, in bytes; 0 where /proc can't tell."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _ran_into_the_limit(worker: _InWorker, peak_before: int) -> bool:
    """Whether a failed parse most likely failed for memory (libxml2, out of it, says
    "unknown error"; other C libraries worse): its address space grew during this parse to
    within a quarter of the limit. A damaged file fails long before that."""
    if worker.limits.memory_mb <= 0:
        return False
    peak = _address_space("VmPeak")
    return peak > peak_before and peak >= worker.base + 0.75 * worker.limits.memory_mb * MIB


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    sent: deque[int] = field(default_factory=deque)  # task keys it holds, in order
    started: float | None = None  # when the task it runs began (monotonic); None: idle
    reader: threading.Thread | None = None
    killed: str | None = None  # why the pool killed it
    gone: bool = False  # its pipe is closed: it takes no more tasks


def _pump(worker: _Worker, inbox: queue.SimpleQueue[tuple[_Worker, Any]]) -> None:
    """Move a worker's messages to the pool as they come (so a large result never holds
    the worker up while the main process embeds); None once the worker has exited."""
    try:
        while True:
            inbox.put((worker, worker.conn.recv()))
    except (EOFError, OSError):
        inbox.put((worker, None))


class ParsePool:
    """Worker processes that parse one file at a time each (``depth`` queued per worker so
    none idles while the main process embeds), with a watchdog on ``limits.timeout_s``.

    A worker that dies or overruns fails only the task it was running: the tasks queued
    behind it go to another worker, started afresh when needed."""

    def __init__(
        self,
        workers: int,
        limits: ParseLimits,
        parse: Callable[..., Any],
        setup: Callable[[], None],
        depth: int = 2,
    ) -> None:
        self.size = max(1, workers)
        self.limits = limits
        self.parse = parse
        self.setup = setup
        self.depth = depth
        self.context = multiprocessing.get_context("forkserver")
        self.workers: list[_Worker] = []
        self.inbox: queue.SimpleQueue[tuple[_Worker, Any]] = queue.SimpleQueue()
        self.args: dict[int, tuple[Any, ...]] = {}  # tasks not answered yet
        self.waiting: deque[int] = deque()  # tasks no worker holds
        self.requeued: dict[int, int] = {}  # times a task went back to waiting
        self.done: list[tuple[int, Any]] = []

    # --- the caller's side ------------------------------------------------------------------
    @property
    def room(self) -> int:
        """Tasks the pool takes before it holds more than its workers can keep busy with."""
        return self.size * self.depth - len(self.args)

    def __len__(self) -> int:
        return len(self.args)

    def submit(self, key: int, *args: Any) -> None:
        self.args[key] = args
        self.waiting.append(key)
        self._dispatch()

    def collect(self, timeout: float | None) -> list[tuple[int, Any]]:
        """The (key, result) pairs finished since the last call; when there are none yet,
        wait up to ``timeout`` seconds (None: until there is one)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done and self.args:
            wake = [d for d in (deadline, self._next_overrun()) if d is not None]
            try:
                worker, message = self.inbox.get(
                    timeout=max(0.0, min(wake) - time.monotonic()) if wake else None
                )
            except queue.Empty:
                pass
            else:
                self._handle(worker, message)
                while not self.inbox.empty():
                    self._handle(*self.inbox.get())
            self._kill_overruns()
            self._dispatch()
            if deadline is not None and time.monotonic() >= deadline:
                break
        done, self.done = self.done, []
        return done

    def close(self, kill: bool = False) -> None:
        """Stop the workers: let them finish their task in hand, or ``kill`` them."""
        for worker in self.workers:
            if kill:
                self._kill(worker)
            else:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
        for worker in self.workers:
            worker.process.join(timeout=None if kill else 10)
            if worker.process.exitcode is None:
                self._kill(worker)
                worker.process.join()
            if worker.reader is not None:
                worker.reader.join()
            worker.conn.close()
        self.workers.clear()

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        # interrupted, or left with parses in progress nobody will collect: don't wait
        self.close(kill=kind is not None or bool(self.args))

    # --- the workers' side ------------------------------------------------------------------
    def _dispatch(self) -> None:
        while self.waiting:
            idle = [w for w in self.workers if len(w.sent) < self.depth and not w.gone]
            if not idle and len(self.workers) < self.size:
                idle = [self._start()]
            if not idle:
                return
            worker = min(idle, key=lambda w: len(w.sent))
            key = self.waiting[0]
            try:
                worker.conn.send((key, self.args[key]))
            except OSError:  # it just died: _handle retires it when its end of the pipe closes
                worker.gone = True
                continue
            worker.sent.append(self.waiting.popleft())

    def _start(self) -> _Worker:
        mine, theirs = self.context.Pipe()
        process = self.context.Process(
            target=_worker_main, args=(theirs, self.limits, self.parse, self.setup), daemon=True
        )
        process.start()
        theirs.close()
        worker = _Worker(process, mine)
        worker.reader = threading.Thread(target=_pump, args=(worker, self.inbox), daemon=True)
        worker.reader.start()
        self.workers.append(worker)
        return worker

    def _handle(self, worker: _Worker, message: Any) -> None:
        if worker not in self.workers:
            return
        if message is None:  # it exited: crashed, killed by the kernel, or by _kill_overruns
            worker.process.join()
            reason = worker.killed or _crash_reason(worker.process.exitcode, self.limits)
            overran = worker.killed is None or (
                worker.started is not None
                and time.monotonic() - worker.started >= self.limits.timeout_s
            )
            self._lose(worker, reason, fail_running=overran)
            return
        kind, key, value = message
        if kind == "start":
            worker.started = value
        else:
            worker.sent.remove(key)
            worker.started = None
            self._finish(key, value)

    def _finish(self, key: int, result: Any) -> None:
        del self.args[key]
        self.requeued.pop(key, None)
        self.done.append((key, result))

    def _lose(self, worker: _Worker, reason: str, fail_running: bool = True) -> None:
        """Retire a dead worker: its running task fails with ``reason``, the rest wait for
        another worker."""
        self.workers.remove(worker)
        worker.conn.close()
        if worker.sent and worker.started is not None and fail_running:
            self._finish(worker.sent.popleft(), reason)
        for key in reversed(worker.sent):
            self.requeued[key] = self.requeued.get(key, 0) + 1
            if self.requeued[key] > 3:  # workers keep dying before they finish it
                self._finish(key, f"the parser worker died before parsing this file ({reason})")
            else:
                self.waiting.appendleft(key)

    def _next_overrun(self) -> float | None:
        if self.limits.timeout_s <= 0:
            return None
        starts = [w.started for w in self.workers if w.started is not None]
        return min(starts) + self.limits.timeout_s if starts else None

    def _kill_overruns(self) -> None:
        if self.limits.timeout_s <= 0:
            return
        now = time.monotonic()
        for worker in list(self.workers):
            if worker.started is not None and now - worker.started >= self.limits.timeout_s:
                worker.killed = time_reason(self.limits)
                self._kill(worker)
                if worker.reader is not None:
                    worker.reader.join()  # its last messages, then None, are in the inbox
                while worker in self.workers:
                    self._handle(*self.inbox.get())

    @staticmethod
    def _kill(worker: _Worker) -> None:
        pid = worker.process.pid
        if pid is None or worker.process.exitcode is not None:
            return
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            worker.process.kill()
