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

from sqlalchemy import Table, bindparam, event, inspect
from sqlalchemy.orm import ColumnProperty, Session, SessionTransaction, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from storage.models import Base
from storage.webhook_events import note_inserted, note_updated

# session.info: (transaction, object) for each object attached in the session's transaction.
_ATTACHED = "ticketd.attached"
# session.info: (transaction, object) for each object `write_pending` updated.
_UPDATED = "ticketd.updated"
# Built once per table: building the statement (and its cache key) per row cost as much as
# running it. An UPDATE's SET columns are the keys of the values it is run with.
_INSERTS: dict[Table, Any] = {}
_UPDATES: dict[Table, Any] = {}
_ROW = "ticketd_row"  # the UPDATE's bound primary key; no column is named so


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
    insert = _INSERTS.get(table)
    if insert is None:
        insert = _INSERTS[table] = table.insert()
    result = session.connection().execute(insert, values)
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


def write_pending(session: Session) -> None:
    """Write what the session has pending. When that is only changed columns of persistent
    objects (a ticket's deadlines and category, a journal row's hash: what a message's steps
    leave), each object is one Core UPDATE and then clean; anything else (a new or deleted
    object, a changed relationship, an expired column) goes to the unit of work's flush.

    The flush's machinery (the dependency sort, its bookkeeping per object) cost several times
    its one UPDATE: two flushes of one UPDATE each were a sixth of the writer's time (issue 19).
    What the flush would have done besides is done here: the webhook recorder is told of the
    change (`note_updated`), and a savepoint rolled back expires the objects it updated, as it
    does the objects a flush wrote in it."""
    if session.new or session.deleted:
        session.flush()
        return
    changes = []
    for obj in session.dirty:
        change = _column_change(obj)
        if change is None:
            session.flush()
            return
        changes.append((obj, change))
    for obj, values in changes:
        _update_row(session, obj, values)


def _column_change(obj: object) -> dict[str, Any] | None:
    """The changed columns of `obj` (column key -> new value), or None when a change is not a
    plain column's."""
    state = inspect(obj)
    if not state.persistent:
        return None
    mapper = state.mapper
    values: dict[str, Any] = {}
    # committed_state holds the value before the change of each attribute changed since the
    # object was loaded or last flushed.
    for key, before in state.committed_state.items():
        prop = mapper.attrs.get(key)
        if not isinstance(prop, ColumnProperty) or key not in state.dict:
            return None
        column = prop.columns[0]
        if column.primary_key or column.table is not mapper.local_table:
            return None
        value = state.dict[key]
        if value is not before and value != before:
            values[column.key] = value
    return values


def _update_row(session: Session, obj: object, values: dict[str, Any]) -> None:
    state = inspect(obj)
    note_updated(session, obj)  # reads the attributes' history: before it is committed
    if values:
        table = state.mapper.local_table
        assert isinstance(table, Table)
        update = _UPDATES.get(table)
        if update is None:
            (primary,) = table.primary_key.columns
            update = _UPDATES[table] = table.update().where(primary == bindparam(_ROW))
        identity = state.identity
        assert identity is not None
        result = session.connection().execute(update, {**values, _ROW: identity[0]})
        if result.rowcount != 1:  # as the unit of work checks its UPDATEs
            raise StaleDataError(f"{table.name} row {identity[0]} was not updated")
    # The object is clean, its values as written: what the flush does after its UPDATE.
    state._commit_all(state.dict, session.identity_map)
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_UPDATED, []).append((transaction, obj))


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    """The objects attached in the rolled-back transaction, or in one within it, leave the
    session; those `write_pending` updated in it are expired (their rows are as before)."""
    for obj in _taken_back(session, _ATTACHED, previous):
        session.expunge(obj)
    for obj in _taken_back(session, _UPDATED, previous):
        session.expire(obj)


def _taken_back(session: Session, key: str, previous: SessionTransaction) -> list[Any]:
    """The objects of `session.info[key]` noted in `previous` or a transaction within it, and
    still in the session; they are no longer noted."""
    noted = session.info.get(key)
    if not noted:
        return []
    session.info[key] = [(t, obj) for t, obj in noted if not _within(t, previous)]
    return [obj for t, obj in noted if _within(t, previous) and obj in session]


@event.listens_for(Session, "after_transaction_end")
def _forget_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_ATTACHED, None)
        session.info.pop(_UPDATED, None)


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
