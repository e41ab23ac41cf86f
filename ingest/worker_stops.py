"""A message that stops the worker is counted before it is tried, and given up after a few.

A message that kills the daemon (SIGKILL, out of memory) or stalls it until systemd's watchdog
restarts it would be taken first again after every restart, for ever: the count of tries was
only written once a try ended. So the try is written down before it starts, in its own short
transaction: the pending row's reason becomes "in the worker: try N". Every way a try ends
writes another reason (done, ignored, quarantined, waiting for the virus scanner), so a row
still pending with that reason was being tried when the worker stopped. After
`[limits] max_worker_stops` such tries (3 by default) the message is quarantined with
"stopped the worker N times" instead of being tried again; `ticketd quarantine retry` gives it
the same number of tries once more.

A database error between the mark and the end of a try leaves the mark too, and counts as a
stop: a message whose processing fails that way three times in a row is quarantined as well,
which is where a person should look at it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import bindparam, update

from domain.clock import Clock
from storage.db import Database
from storage.journal_table import JOURNAL
from storage.models import JOURNAL_PENDING, JOURNAL_QUARANTINED, JournalEntry

IN_WORKER = "in the worker: try"
_MARK = re.compile(re.escape(IN_WORKER) + r" (\d+)")
_BEFORE = " (before: "


def history_of(reason: str | None) -> str:
    """What a row's reason says of its earlier tries, without the mark of a try: a retried
    message keeps the end of its last try ("...; the sender was told"), which later steps
    read so that a retry does not do again what the first try did."""
    text = reason or ""
    found = _MARK.match(text)
    if found is None:
        return text
    rest = text[found.end() :]
    return rest[len(_BEFORE) : -1] if rest.startswith(_BEFORE) and rest.endswith(")") else ""


def stops_so_far(reason: str | None) -> int:
    """How many tries in a row stopped the worker, from a pending row's reason."""
    found = _MARK.match(reason or "")
    return int(found.group(1)) if found else 0


# Built once, with Core: a try's mark and its undoing run twice per message (the current row
# and the one sent ahead), and an ORM session and a new statement each time cost more than
# the update itself (issue 19).
_PENDING_ROW = (JOURNAL.c.id == bindparam("entry"), JOURNAL.c.state == JOURNAL_PENDING)
_MARK_TRY = (
    update(JOURNAL)
    .where(*_PENDING_ROW)
    .values(reason=bindparam("mark"), attempts=JOURNAL.c.attempts + 1)
)
_UNMARK_TRY = (
    update(JOURNAL)
    .where(*_PENDING_ROW)
    .values(reason=bindparam("before"), attempts=JOURNAL.c.attempts - 1)
)


def mark_started(db: Database, entry_id: int, stops: int, reason: str | None = None) -> bool:
    """Write down the try about to start, keeping what `reason` (the row's reason before
    it) says of earlier tries; False when the row is no longer pending. Not synced to the
    disk (Database.connect): the mark counts the daemon's deaths, and a death of the process
    does not lose what it wrote; the try's own end is a synced commit."""
    return bool(mark_all(db, [(entry_id, stops, reason)]))


def mark_all(db: Database, rows: Sequence[tuple[int, int, str | None]]) -> list[int]:
    """`mark_started` for several rows (entry id, stops so far, reason) in one commit: the
    worker's run of messages applied together; the ids still pending, which it marked."""
    marked: list[int] = []
    with db.connect(lasting=False) as connection:
        for entry_id, stops, reason in rows:
            history = history_of(reason)
            mark = f"{IN_WORKER} {stops + 1}" + (f"{_BEFORE}{history})" if history else "")
            done = connection.execute(_MARK_TRY, {"entry": entry_id, "mark": mark[:2000]})
            if done.rowcount:
                marked.append(entry_id)
    return marked


def unmark(db: Database, entry_id: int, reason: str | None) -> None:
    """The try was cut short by a stop of the daemon, not by the message: forget it."""
    unmark_all(db, [(entry_id, reason)])


def unmark_all(db: Database, rows: Sequence[tuple[int, str | None]]) -> None:
    """`unmark` for several rows (entry id, reason before the mark) in one commit."""
    if not rows:
        return
    with db.connect(lasting=False) as connection:
        for entry_id, reason in rows:
            connection.execute(_UNMARK_TRY, {"entry": entry_id, "before": reason})


def give_up(db: Database, clock: Clock, entry_id: int, stops: int) -> str | None:
    """Quarantine a message that stopped the worker `stops` times; its reason, or None when
    the row is no longer pending."""
    reason = (
        f"stopped the worker {stops} times (the daemon was killed, ran out of memory or stalled"
        " while processing it); not tried again automatically ([limits] max_worker_stops)"
    )
    with db.transaction() as session:
        done = session.execute(
            update(JournalEntry)
            .where(JournalEntry.id == entry_id, JournalEntry.state == JOURNAL_PENDING)
            .values(state=JOURNAL_QUARANTINED, reason=reason, processed_at=clock.now())
        )
        return reason if getattr(done, "rowcount", 0) else None
