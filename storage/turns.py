"""Writers of one process take their turns at SQLite's write lock in the order they came.

SQLite has one writer at a time. A connection that finds the lock taken does not queue: its
busy handler sleeps and tries again, with sleeps that grow to 100 ms. In the daemon the SMTP
listener's journal commit (a few milliseconds) waited so behind the worker's ticket
transactions, one sleep after another, and a sender waited a second for its 250 (issue 19).
Inside one process the writers queue here instead, first come first served, and the lock
passes from one to the next without a sleep; other processes (an `import`, a second command)
still meet at SQLite's own lock with the busy timeout.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class Turns:
    """A first-come-first-served lock, taken again freely by the thread that holds it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: deque[threading.Lock] = deque()
        self._owner: int | None = None
        self._depth = 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        self._acquire()
        try:
            yield
        finally:
            self._release()

    def wanted(self) -> bool:
        """Whether another writer waits for the turn now (the worker ends a run of messages
        applied together for it: ingest/worker.py)."""
        with self._guard:
            return bool(self._waiting)

    def _acquire(self) -> None:
        me = threading.get_ident()
        with self._guard:
            if self._owner == me:
                self._depth += 1  # a nested writer of the same thread: SQLite decides
                return
            if self._owner is None:
                self._owner, self._depth = me, 1
                return
            handed = threading.Lock()
            handed.acquire()
            self._waiting.append(handed)
        handed.acquire()  # released by the holder when it hands the turn over
        with self._guard:
            self._owner, self._depth = me, 1

    def _release(self) -> None:
        with self._guard:
            self._depth -= 1
            if self._depth:
                return
            self._owner = None
            if self._waiting:
                # Handed over, not dropped: no thread that came later can take it first. The
                # next one sets itself as owner; until then nobody else may start.
                self._owner = -1
                self._waiting.popleft().release()
