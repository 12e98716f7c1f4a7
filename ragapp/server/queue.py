"""First come, first served access to the LLM, ``slots`` requests at a time.

An in-process runtime (llama.cpp, gpt4all) has one context, which is not thread-safe: one
slot, so one request at a time retrieves and generates. An LLM server with parallel slots
(vLLM, llama.cpp's server with --parallel, Ollama) can take ``llm_parallel`` at once. The
others wait in line and are told how many requests are ahead of them. An exclusive turn
(bringing the search index up to date after an ingest) waits until nothing runs and
holds every slot, so no question reads the index while it changes.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Cancelled(Exception):
    """The request gave up (its client went away) while waiting or generating."""


class AnswerQueue:
    """A FIFO of ``slots`` places whose waiters learn their position (1: next in line)."""

    def __init__(self, slots: int = 1) -> None:
        self.slots = max(1, slots)
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

    @contextmanager
    def turn(
        self,
        on_position: Callable[[int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        exclusive: bool = False,
    ) -> Iterator[None]:
        """Wait for this request's turn, reporting each new position while waiting."""
        with self._cond:
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
            except BaseException:
                self._waiting.remove((ticket, exclusive))
                self._cond.notify_all()
                raise
            self._waiting.remove((ticket, exclusive))
            self._running += 1
            self._exclusive = exclusive
            self._cond.notify_all()  # the next in line may fit in a free slot too
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._exclusive = False
                self._cond.notify_all()
