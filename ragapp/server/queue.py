"""First come, first served access to the in-process LLM.

llama.cpp contexts are not thread-safe, so one request at a time retrieves and generates;
the others wait in line and can be told how many requests are ahead of them.
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
    """A FIFO lock whose waiters learn their position (1: next in line)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[int] = deque()
        self._tickets = itertools.count()
        self._busy = False

    @property
    def pending(self) -> int:
        """Requests running or waiting."""
        with self._cond:
            return len(self._waiting) + int(self._busy)

    @contextmanager
    def turn(
        self,
        on_position: Callable[[int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> Iterator[None]:
        """Wait for this request's turn, reporting each new position while waiting."""
        with self._cond:
            ticket = next(self._tickets)
            self._waiting.append(ticket)
            reported = 0
            try:
                while True:
                    ahead = self._waiting.index(ticket) + int(self._busy)
                    if ahead == 0:
                        break
                    if ahead != reported and on_position is not None:
                        on_position(ahead)
                        reported = ahead
                    self._cond.wait(timeout=0.25)
                    if cancelled is not None and cancelled():
                        raise Cancelled
            except BaseException:
                self._waiting.remove(ticket)
                self._cond.notify_all()
                raise
            self._waiting.popleft()
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
