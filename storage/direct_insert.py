"""Rows inserted with one Core statement each, their objects then part of the session as if a
flush had written them (issue 19).

Recording a message (a new ticket, its participants, the message) was the writer's largest
cost: the unit of work's flush of those three or four objects took about 2 ms, a fifth of a
message's time, of which SQLite's own work is a small part. Each insert here is one cached
statement. Afterwards the objects are persistent in the session, their columns loaded (a
column the caller left unset takes its Python default, or None), and the relationships the
caller names are set as loaded, so that no later step queries for them.

What the unit of work would have done besides is done here: the webhook recorder learns of
the new rows (storage/webhook_events.py `note_inserted`), since it watches flushes and none
happens; and a savepoint rolled back takes the objects out of the session, as it does the new
objects of a flush (SQLAlchemy expires only the changed ones of a savepoint, so `Session.get`
would still find a ticket whose row is gone, and the webhook recorder announce it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, event, inspect
from sqlalchemy.orm import Session, SessionTransaction, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from storage.models import Base
from storage.webhook_events import note_inserted

# session.info: (transaction, object) for each object attached in the session's transaction.
_ATTACHED = "ticketd.attached"


def insert_row(session: Session, obj: Base) -> None:
    """Insert `obj` (transient, in no session) and give it its primary key; it stays
    transient until `attach`, so that objects inserted together join the session together."""
    state = inspect(obj)
    if not state.transient:  # a pending object would be inserted again by the next flush
        raise ValueError(f"{obj!r} is not transient")
    mapper = state.mapper
    table = mapper.local_table
    assert isinstance(table, Table)
    values: dict[str, Any] = {}
    for attribute in mapper.column_attrs:
        column = attribute.columns[0]
        if column.primary_key:
            continue
        if attribute.key not in obj.__dict__:
            setattr(obj, attribute.key, _default(column))
        values[column.key] = obj.__dict__[attribute.key]
    result = session.connection().execute(table.insert(), values)
    primary = mapper.primary_key[0]
    inserted = result.inserted_primary_key
    assert inserted is not None
    setattr(obj, mapper.get_property_by_column(primary).key, inserted[0])


def attach(
    session: Session, objects: Iterable[Base], loaded: Iterable[tuple[Base, str, Any]]
) -> None:
    """Make the inserted `objects` persistent in `session`, their columns as inserted;
    `loaded`: (object, relationship, value) set as already loaded, without a change to write."""
    objects = list(objects)
    for obj in objects:
        make_transient_to_detached(obj)
    for obj, name, value in loaded:
        set_committed_value(obj, name, value)
    transaction = session.get_nested_transaction() or session.get_transaction()
    attached = session.info.setdefault(_ATTACHED, [])
    for obj in objects:
        session.add(obj)  # a detached object with its identity: attached, not inserted again
        note_inserted(session, obj)
        attached.append((transaction, obj))


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    """The objects attached in the rolled-back transaction, or in one within it, leave the
    session."""
    attached = session.info.get(_ATTACHED)
    if not attached:
        return
    kept = []
    for transaction, obj in attached:
        if _within(transaction, previous):
            if obj in session:
                session.expunge(obj)
        else:
            kept.append((transaction, obj))
    session.info[_ATTACHED] = kept


@event.listens_for(Session, "after_transaction_end")
def _forget_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_ATTACHED, None)


def _within(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


def _default(column: Any) -> Any:
    default = column.default
    if default is None:
        return None
    if default.is_scalar:
        return default.arg
    if default.is_callable:
        return default.arg(None)
    return None
