"""One pass over one IMAP folder: new UIDs to journal rows, then mark, move or delete.

The order is the whole point: fetch with BODY.PEEK[] (which sets no \\Seen), `Journal.accept`
each message (durable), act on the server, then move the checkpoint. A crash before the action
re-fetches the batch and the journal recognises every message by its origin (mailbox,
UIDVALIDITY, UID) or its bytes; a crash after it finds the work done. UIDs, never sequence
numbers: they survive other clients expunging meanwhile. No UNSEEN search either: a message
someone read in another client is still new to us.

A message over the size limit (RFC822.SIZE, asked before any body) is never fetched: only the
first 64 KiB of its header, for a quarantined record that names it (ingest/oversize.py). It is
left on the server untouched, and the checkpoint passes it. To take it after raising the limit,
move it out of the folder and back in: it gets a new UID.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from imapclient import DELETED, SEEN, IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from domain.clock import Clock
from domain.config import ImapAccountConfig
from ingest.imap_checkpoints import Checkpoint, Checkpoints
from ingest.journal import Arrival, Journal
from ingest.oversize import HEADER_PEEK, header_summary, too_big

log = logging.getLogger("ticketd.imap")
PROGRESS_EVERY = 1000  # messages between progress lines of a first sync


@dataclass(frozen=True)
class SyncResult:
    journaled: int  # new journal rows
    recognised: int  # already journaled (a re-fetch)
    quarantined: int  # could not be fetched


class FolderSync:
    def __init__(
        self,
        client: IMAPClient,
        account: ImapAccountConfig,
        mailbox: str,
        journal: Journal,
        checkpoints: Checkpoints,
        clock: Clock,
        on_journaled: Callable[[], None],
        stop: threading.Event,
        max_message_size: int = 25 * 1024 * 1024,
    ) -> None:
        self.client = client
        self.account = account
        self.mailbox = mailbox
        self.journal = journal
        self.checkpoints = checkpoints
        self.clock = clock
        self.on_journaled = on_journaled
        self.stop = stop
        self.max_message_size = max_message_size

    def prepare(self) -> None:
        """Once per connection: the folder to move into must exist."""
        target = self.account.move_to
        if target is not None and not self.client.folder_exists(target):
            self.client.create_folder(target)
            log.info("imap %s: created folder %s", self.account.name, target)

    def run(self) -> SyncResult:
        status = self.client.select_folder(self.account.folder)
        uidvalidity = int(status[b"UIDVALIDITY"])
        uidnext = int(status.get(b"UIDNEXT", 0))
        checkpoint = self._checkpoint(uidvalidity, uidnext)
        found = self.client.search(["UID", f"{checkpoint.last_uid + 1}:*"])
        # "N:*" always names the highest message, even when its UID is below N.
        uids = sorted(uid for uid in found if uid > checkpoint.last_uid)
        size = self.account.batch_size
        large = len(uids) > size  # a first sync, or a long outage: show progress
        if large:
            log.info(
                "imap %s: %d messages to take from %s",
                self.account.name,
                len(uids),
                self.account.folder,
            )
        totals = (0, 0, 0)
        for start in range(0, len(uids), size):
            if self.stop.is_set():
                break
            batch = uids[start : start + size]
            counts = self._batch(batch, checkpoint)
            totals = (totals[0] + counts[0], totals[1] + counts[1], totals[2] + counts[2])
            checkpoint = Checkpoint(uidvalidity, batch[-1], checkpoint.quiet_below_uid)
            self.checkpoints.save(self.mailbox, self.account.name, checkpoint)
            done = start + len(batch)
            if large and (done // PROGRESS_EVERY > start // PROGRESS_EVERY or done == len(uids)):
                log.info(
                    "imap %s: %s: %d/%d messages",
                    self.account.name,
                    self.account.folder,
                    done,
                    len(uids),
                )
        return SyncResult(*totals)

    def _checkpoint(self, uidvalidity: int, uidnext: int) -> Checkpoint:
        saved = self.checkpoints.load(self.mailbox)
        if saved is not None and saved.uidvalidity == uidvalidity:
            return saved
        if saved is not None:
            # The server renumbered the folder: every UID we knew is meaningless. Start over;
            # what we already have is recognised by its bytes, so nothing lands twice.
            log.warning(
                "imap %s: UIDVALIDITY of %s changed from %d to %d: reading the folder again",
                self.account.name,
                self.account.folder,
                saved.uidvalidity,
                uidvalidity,
            )
            quiet_below = 0
        else:
            quiet_below = uidnext if self.account.quiet_first_sync else 0
            log.info("imap %s: first sync of %s", self.account.name, self.account.folder)
        fresh = Checkpoint(uidvalidity, 0, quiet_below)
        self.checkpoints.save(self.mailbox, self.account.name, fresh)
        return fresh

    def _oversized(self, uids: Sequence[int]) -> dict[int, int]:
        """{uid: size} of the messages over the size limit, from RFC822.SIZE alone."""
        sizes = self.client.fetch(uids, ["RFC822.SIZE"])
        found = {}
        for uid, data in sizes.items():
            size = data.get(b"RFC822.SIZE") if isinstance(data, dict) else None
            if isinstance(size, int) and size > self.max_message_size:
                found[uid] = size
        return found

    def _batch(self, uids: Sequence[int], checkpoint: Checkpoint) -> tuple[int, int, int]:
        oversized = self._oversized(uids)
        quarantined = 0
        for uid, size in oversized.items():
            self._quarantine_oversized(uid, checkpoint.uidvalidity, size)
            quarantined += 1
        uids = [uid for uid in uids if uid not in oversized]
        if not uids:
            self.on_journaled()
            return 0, 0, quarantined
        try:
            fetched = self.client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
        except IMAPClientAbortError:
            raise
        except IMAPClientError as error:
            # The server refused the batch (one bad message can do that): one by one, so the
            # bad one is quarantined and the rest go through.
            log.warning("imap %s: batch fetch failed (%s), one by one", self.account.name, error)
            fetched = {}
        journaled = recognised = 0
        taken: list[int] = []
        for uid in uids:
            data = fetched.get(uid)
            if not isinstance(data, dict) or not isinstance(data.get(b"BODY[]"), bytes):
                data = self._fetch_one(uid)  # missing from the batch's answer: ask alone
            if data is None:
                continue  # expunged by another client meanwhile: nothing to take
            if isinstance(data, str):
                # Left on the server untouched (never deleted unread), and passed over.
                self._quarantine(uid, checkpoint.uidvalidity, data)
                quarantined += 1
                continue
            arrival = Arrival(
                raw=data[b"BODY[]"],
                source=f"imap:{self.account.name}",
                acknowledge=self._acknowledge(uid, data.get(b"INTERNALDATE"), checkpoint),
                origin=self._origin(checkpoint.uidvalidity, uid),
            )
            _id, new = self.journal.accept_once(arrival)  # StorageFailure: leave it on the server
            journaled += new
            recognised += not new
            taken.append(uid)
        if journaled or quarantined:
            self.on_journaled()
        if taken:
            self._act(taken)
        return journaled, recognised, quarantined

    def _fetch_one(self, uid: int) -> dict[bytes, Any] | str | None:
        """The message, None when it is gone, or why it cannot be fetched."""
        try:
            data = self.client.fetch([uid], ["BODY.PEEK[]", "INTERNALDATE"]).get(uid)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as error:
            data, reason = None, f"the server refused to fetch it: {error}"
        else:
            reason = "the server returned no body"
        if isinstance(data, dict) and isinstance(data.get(b"BODY[]"), bytes):
            return dict(data)
        if not self.client.search(["UID", str(uid)]):
            return None
        return reason

    def _acknowledge(self, uid: int, internal: object, checkpoint: Checkpoint) -> bool:
        if uid < checkpoint.quiet_below_uid:
            return False  # present at the first sync, and the admin asked for quiet
        limit = self.account.quiet_older_than_hours
        if limit and isinstance(internal, datetime) and internal.tzinfo is not None:
            return self.clock.now() - internal <= timedelta(hours=limit)
        return True

    def _origin(self, uidvalidity: int, uid: int) -> str:
        return f"imap://{self.mailbox};UIDVALIDITY={uidvalidity}/;UID={uid}"[:500]

    def _quarantine(self, uid: int, uidvalidity: int, reason: str) -> None:
        detail = f"IMAP message UID {uid} of {self.mailbox} could not be fetched: {reason}"
        self._record(uid, uidvalidity, detail)

    def _record(self, uid: int, uidvalidity: int, detail: str, header: bytes = b"") -> None:
        log.error("imap %s: %s; quarantined, going on with the next", self.account.name, detail)
        self.journal.quarantine(
            self._origin(uidvalidity, uid), f"imap:{self.account.name}", detail, header
        )

    def _quarantine_oversized(self, uid: int, uidvalidity: int, size: int) -> None:
        key = b"BODY[HEADER]<0>"
        try:
            data = self.client.fetch([uid], [f"BODY.PEEK[HEADER]<0.{HEADER_PEEK}>"]).get(uid)
        except IMAPClientAbortError:
            raise
        except IMAPClientError:
            data = None
        header = data.get(key) if isinstance(data, dict) else None
        header = header if isinstance(header, bytes) else b""
        detail = (
            f"IMAP message UID {uid} of {self.mailbox}: {too_big(size, self.max_message_size)};"
            f" left on the server untouched; {header_summary(header)}"
        )
        self._record(uid, uidvalidity, detail, header)

    def _act(self, uids: Sequence[int]) -> None:
        after = self.account.after
        if after == "seen":
            self.client.add_flags(uids, [SEEN], silent=True)
        elif after == "move":
            assert self.account.move_to is not None
            if self.client.has_capability("MOVE"):
                self.client.move(uids, self.account.move_to)
            else:
                self.client.copy(uids, self.account.move_to)
                self._delete(uids)
        else:
            self._delete(uids)

    def _delete(self, uids: Sequence[int]) -> None:
        self.client.add_flags(uids, [DELETED], silent=True)
        if self.client.has_capability("UIDPLUS"):
            self.client.uid_expunge(uids)  # only ours, never what a person flagged \\Deleted
        else:
            self.client.expunge()
