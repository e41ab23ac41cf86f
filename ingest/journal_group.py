"""Group commit of the SMTP listener's journal rows: the sessions that finish DATA together
share one transaction and one fsync of the database (issue 19).

Each session's thread writes and fsyncs its own blob (those fsyncs run side by side), then
queues its row. The first to queue leads: it waits for the writers' turn (storage/turns.py),
and once it has it takes every row queued by then, so the sessions that arrived while it
waited (behind the worker's transaction, say) commit with it. Each session answers 250 only
after the commit that holds its row; a failed commit fails every row in it, and each of those
senders gets 451 and nothing of theirs is accepted. After its commit the leader hands the lead
to the first row still queued and returns at once: nobody serves the others for long.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(eq=False)
class _Queued(Generic[Item, Result]):
    item: Item
    woken: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    result: Result | None = None
    error: BaseException | None = None


class Group(Generic[Item, Result]):
    """`add(item)` returns what `write` returned for it, `write` taking all the items queued
    at the moment its caller's turn came (`write` calls `take` once it holds the lock)."""

    def __init__(self, write: Callable[[Callable[[], Sequence[Item]]], Sequence[Result]]) -> None:
        self._write = write
        self._guard = threading.Lock()
        self._queue: list[_Queued[Item, Result]] = []
        self._leading = False

    def add(self, item: Item) -> Result:
        mine: _Queued[Item, Result] = _Queued(item)
        with self._guard:
            self._queue.append(mine)
            mine.lead = not self._leading
            self._leading = True
        while not mine.lead:
            mine.woken.wait()
            mine.woken.clear()
            if mine.result is not None or mine.error is not None:
                break
        else:
            self._lead()
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def _lead(self) -> None:
        taken: list[_Queued[Item, Result]] = []

        def take() -> Sequence[Item]:
            with self._guard:
                taken.extend(self._queue)
                self._queue.clear()
            return [queued.item for queued in taken]

        try:
            results = self._write(take)
            if not taken:
                raise RuntimeError("the group's write took no rows")
        except BaseException as error:
            if not taken:
                take()  # the write failed before it took them: every row queued fails
            for queued in taken:
                queued.error = error
        else:
            for queued, result in zip(taken, results, strict=True):
                queued.result = result
        finally:
            self._pass_lead()
            for queued in taken:
                queued.woken.set()

    def _pass_lead(self) -> None:
        with self._guard:
            if self._queue:
                following = self._queue[0]
                following.lead = True
                following.woken.set()
            else:
                self._leading = False
