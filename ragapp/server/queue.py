"""First come, first served access to the LLM, ``slots`` requests at a time.

An in-process runtime (llama.cpp, gpt4all) has one context, which is not thread-safe: one
slot, so one request at a time retrieves and generates. An LLM server with parallel slots
(vLLM, llama.cpp's server with --parallel, Ollama) can take ``llm_parallel`` at once. The
others wait in line and are told how many requests are ahead of them. An exclusive turn
(bringing the search index up to date after an ingest) waits until nothing runs and
holds every slot, so no question reads the index while it changes.

The line is bounded: with ``max_waiting`` requests already waiting a new one is refused
at once, and one still waiting at its deadline gives up; both raise BusyError with a
Retry-After estimated from how long recent turns took.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ragapp.errors import BusyError

_FIRST_GUESS_S = 5.0  # how long a turn takes, until one has been timed


class Cancelled(Exception):
    """The request gave up (its client went away) while waiting or generating."""


class AnswerQueue:
    """A FIFO of ``slots`` places whose waiters learn their position (1: next in line)."""

    def __init__(self, slots: int = 1, max_waiting: int = 0) -> None:
        self.slots = max(1, slots)
        self.max_waiting = max_waiting  # 0: no limit
        self.turn_s = _FIRST_GUESS_S  # moving mean of how long a question's turn takes
        self._cond = threading.Condition()
        self._waiting: deque[tuple[int, bool]] = deque()  # (ticket, exclusive)
        self._tickets = itertools.count()
        self._running = 0
        self._exclusive = False

    @property
    def pending(self) -> int:
        """Requests running or waiting."""
        with self._cond:
            return len(self._waiting) + self._running

    def _ahead(self, ticket: int) -> int:
        """How many must start or finish before ``ticket`` can start (0: it can now)."""
        index = next(i for i, (t, _) in enumerate(self._waiting) if t == ticket)
        exclusive = self._waiting[index][1]
        if exclusive:
            return index + self._running
        blocked_by = [i for i, (_, ex) in enumerate(self._waiting) if ex and i < index]
        if self._exclusive or blocked_by:
            return index + max(self._running, 1)
        free = self.slots - self._running
        return max(0, index + 1 - free)

    def check_room(self) -> None:
        """BusyError now if a new request would be refused (before a stream starts, so the
        client gets a real 503 and Retry-After rather than an error event)."""
        with self._cond:
            if self.max_waiting and len(self._waiting) >= self.max_waiting:
                raise BusyError(
                    f"the server is busy: {len(self._waiting)} questions are waiting "
                    f"(max_queue {self.max_waiting}); retry later",
                    self.retry_after(),
                )

    def retry_after(self, ahead: int | None = None) -> int:
        """Seconds until a request behind ``ahead`` others (default: the whole line) is
        likely to start."""
        with self._cond:
            if ahead is None:
                ahead = len(self._waiting) + self._running
            return max(1, math.ceil(self.turn_s * max(1, ahead) / self.slots))

    @contextmanager
    def turn(
        self,
        on_position: Callable[[int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        exclusive: bool = False,
        deadline: float | None = None,
    ) -> Iterator[None]:
        """Wait for this request's turn, reporting each new position while waiting.
        BusyError when the line is full, or at ``deadline`` (time.monotonic()) still waiting."""
        with self._cond:
            if not exclusive:
                self.check_room()
            ticket = next(self._tickets)
            self._waiting.append((ticket, exclusive))
            reported = 0
            try:
                while True:
                    ahead = self._ahead(ticket)
                    if ahead == 0:
                        break
                    if ahead != reported and on_position is not None:
                        on_position(ahead)
                        reported = ahead
                    self._cond.wait(timeout=0.25)
                    if cancelled is not None and cancelled():
                        raise Cancelled
                    if deadline is not None and time.monotonic() >= deadline:
                        raise BusyError(
                            f"the server is busy: still {ahead} questions ahead when this "
                            "request's time (request_timeout_s) ran out; retry later",
                            self.retry_after(ahead),
                        )
            except BaseException:
                self._waiting.remove((ticket, exclusive))
                self._cond.notify_all()
                raise
            self._waiting.remove((ticket, exclusive))
            self._running += 1
            self._exclusive = exclusive
            self._cond.notify_all()  # the next in line may fit in a free slot too
        started = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._exclusive = False
                if not exclusive:
                    self.turn_s = 0.7 * self.turn_s + 0.3 * (time.monotonic() - started)
                self._cond.notify_all()
