"""The files of a ticket's messages, read back for `#geçmiş` / `#history`.

outbound/ticket_history.py mails them.

The history keeps what a file was (name, types, size), not its bytes: those live in the raw
message, the journal's for mail received and the outbox's for mail sent. Each is parsed again
as the worker parsed it (the same linear parser and MIME shape limits), newest message first,
and only while the files so far fit in `[limits] notify_attachment_size`: past it the rest are
named with their size, and no more raw messages are read (their bytes would not be attached).
A raw message retention stripped, or bytes that are gone, leave the file named as not kept.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from domain.context import Context
from domain.message import AttachmentInfo
from ingest.mime_shape import ShapeLimits
from ingest.parsing import parse_message
from outbound.agent_mail import CustomerFile, documents_of
from storage.models import JournalEntry, OutboxMail, Ticket, TicketMessage


def _raw_of(ctx: Context, row: TicketMessage) -> bytes | None:
    """The raw message a history row came from (received: the journal; sent: the outbox)."""
    if row.journal_id is not None and row.direction == "in":
        entry = ctx.session.get(JournalEntry, row.journal_id)
        if entry is None or ctx.documents is None:
            return None
        try:
            return ctx.documents().blobs.get(entry.blob_key)
        except Exception:  # removed by retention or a purge: named as not kept
            return None
    if row.message_id is None:
        return None
    mail = ctx.session.scalar(select(OutboxMail).where(OutboxMail.message_id == row.message_id))
    return mail.raw if mail is not None else None


def _matched(recorded: list[dict[str, Any]], found: list[AttachmentInfo]) -> list[AttachmentInfo]:
    """The parsed file of each recorded one: by position when the counts agree (the same parse),
    else by name and size; a file not found has no bytes."""
    if len(found) == len(recorded):
        return found
    by_name = {(a.filename, a.size): a for a in found}
    return [
        by_name.get((item["filename"], item["size"]))
        or AttachmentInfo(item["filename"], item["content_type"], item["size"], b"")
        for item in recorded
    ]


def history_files(ctx: Context, ticket: Ticket) -> dict[int, list[CustomerFile]]:
    """Each history row's files (by row id), bytes read back within the attachment room."""
    limits = ctx.config.limits
    shape = ShapeLimits(parts=limits.max_mime_parts, depth=limits.max_mime_depth)
    room = limits.notify_attachment_size
    rows = ctx.session.scalars(
        select(TicketMessage)
        .where(TicketMessage.ticket_id == ticket.id)
        .order_by(TicketMessage.created_at.desc(), TicketMessage.id.desc())
    )
    files: dict[int, list[CustomerFile]] = {}
    for row in rows:
        recorded = [dict(a) for a in row.attachments or ()]
        if not recorded:
            continue
        size = sum(int(str(a.get("size") or 0)) for a in recorded)
        absent = "size" if size > room else "unavailable"
        raw = _raw_of(ctx, row) if 0 < size <= room else None
        found = list(parse_message(raw, shape).attachments) if raw is not None else []
        room -= size if raw is not None else 0
        documents = documents_of(ctx, row.id)
        files[row.id] = [
            CustomerFile(
                item, info, documents.get(hashlib.sha256(info.payload).hexdigest()), absent
            )
            for item, info in zip(recorded, _matched(recorded, found), strict=True)
        ]
    return files
