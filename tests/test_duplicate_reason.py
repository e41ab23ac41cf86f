"""A duplicate's reason names the message it copies by its place in the ticket's history.

"duplicate: an exact copy of message 3 of ticket REF" is what an admin reads in `journal list`;
3 is the third entry `tickets show REF` lists (and `tickets split REF 3` takes). It was the row
id, which counts every ticket's messages: on a desk with a thousand tickets, "message 5872" of a
ticket of four. The Message-ID reused note names the earlier message the same way.
"""

from __future__ import annotations

import re
from datetime import timedelta

from domain.clock import FixedClock
from ingest.journal import Arrival
from ingest.ticket_ops import merge
from ingest.worker import Processed
from tests.helpers import DESK, customer_mail
from tests.test_forwarded_text import deliver, messages_of, open_ticket
from ticketd.journal_view import list_journal
from ticketd.state import State

CUSTOMER = "Ayşe Yılmaz <ayse@musteri.com.tr>"
OTHER = "Mehmet Kaya <mehmet@musteri.com.tr>"


def _busy_desk(state: State, clock: FixedClock) -> None:
    """Other tickets first, so that row ids and places in a history differ."""
    for number in range(3):
        open_ticket(state, clock, OTHER, f"Bonus {number}", f"Bonus {number} yüklenmedi")


def _place(detail: str) -> tuple[int, str]:
    found = re.fullmatch(r"duplicate: an exact copy of message (\d+) of ticket (\S+)", detail)
    assert found is not None, detail
    return int(found[1]), found[2]


def _reply(state: State, ref: str, body: str, message_id: str) -> bytes:
    raw = customer_mail(
        sender=CUSTOMER,
        subject=f"Re: [#{ref}] Para çekme talebim",
        body=body,
        message_id=message_id,
    )
    result = deliver(state, raw)
    assert result.detail.startswith(f"ticket {ref}"), result.detail
    return raw


def test_a_copy_names_the_place_of_the_message_in_the_tickets_history(
    state: State, clock: FixedClock
) -> None:
    _busy_desk(state, clock)
    ref = open_ticket(state, clock, CUSTOMER, "Para çekme talebim", "Para çekme talebim bekliyor")
    reply = _reply(state, ref, "Hâlâ bekliyorum.", "<ikinci@musteri.com.tr>")
    history = messages_of(state, ref)
    place = 1 + [m["message_id"] for m in history].index("ikinci@musteri.com.tr")
    assert place == 3  # her request, our acknowledgement, her reply
    clock.advance(timedelta(minutes=5))
    again = deliver(state, reply)
    assert again.state == "ignored"
    assert _place(again.detail) == (3, ref)
    [row] = list_journal(state.db, limit=1)
    assert row["reason"] == again.detail
    assert history[place - 1]["text"] == "Hâlâ bekliyorum."


def test_a_copy_without_a_message_id_names_its_place_too(state: State, clock: FixedClock) -> None:
    _busy_desk(state, clock)
    head = b"From: ayse@musteri.com.tr\r\nTo: destek@example.com\r\nSubject: Para\r\n\r\n"
    raw = head + b"Para \xc3\xa7ekme talebim bekliyor.\r\n"
    first = deliver(state, raw)
    assert first.state == "done" and first.ticket_ref is not None, first.detail
    state.journal.accept(Arrival(raw=b"Received: from mx1 by mx2\r\n" + raw, source="test"))
    [again] = state.worker.drain()
    assert _place(again.detail) == (1, first.ticket_ref)


def test_after_a_merge_the_place_is_in_the_surviving_history(
    state: State, clock: FixedClock
) -> None:
    _busy_desk(state, clock)
    target = open_ticket(state, clock, CUSTOMER, "Hesap", "Hesabım kilitlendi")
    source = open_ticket(
        state, clock, CUSTOMER, "Para çekme talebim", "Para çekme talebim bekliyor"
    )
    raw = _reply(state, source, "Ek bilgi: IBAN TR12 0006 2000", "<ek@musteri.com.tr>")
    merge(state.db, clock, source, target, state.config.sla)
    ids = [m["message_id"] for m in messages_of(state, target)]
    place = 1 + ids.index("ek@musteri.com.tr")
    again: Processed = deliver(state, raw)
    assert _place(again.detail) == (place, target)


def test_the_reused_message_id_note_names_the_earlier_message_by_its_place(
    state: State, clock: FixedClock
) -> None:
    _busy_desk(state, clock)
    ref = open_ticket(state, clock, CUSTOMER, "Para çekme talebim", "Para çekme talebim bekliyor")
    _reply(state, ref, "Hâlâ bekliyorum.", "<form@site.example>")
    _reply(state, ref, "Başka bir soru: limitim ne?", "<form@site.example>")
    notes = [str(m["text"]) for m in messages_of(state, ref) if m["kind"] == "system"]
    assert any(f"(message 3 of ticket {ref})" in note for note in notes), notes


def test_the_content_hash_goes_with_the_rows_outcome_in_its_one_update(
    state: State, clock: FixedClock
) -> None:
    """The hash the duplicate check reads was a flush of its own per message, before the
    outcome's UPDATE of the same row (issue 19): now one UPDATE carries both, and a message
    after it in the same run still finds it."""
    from sqlalchemy import event, text

    ref = open_ticket(state, clock, CUSTOMER, "Para çekme talebim", "Para çekme talebim bekliyor")
    seen: list[str] = []
    event.listen(state.db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    for body in ("Hâlâ bekliyorum.", "Başka bir soru: limitim ne?"):
        reply = customer_mail(
            sender=CUSTOMER,
            subject=f"Re: [#{ref}] Para çekme talebim",
            body=body,
            message_id="<form@site.example>",
        )
        state.journal.accept(Arrival(raw=reply, source="test", envelope_to=(DESK,)))
    first, second = state.worker.drain()  # one run: the second reads the first's hash
    assert first.ticket_ref == second.ticket_ref == ref
    notes = [m for m in messages_of(state, ref) if m["subject"] == "Message-ID reused"]
    assert len(notes) == 1, messages_of(state, ref)
    journal_updates = [s for s in seen if s.startswith("UPDATE journal SET")]
    outcomes = [s for s in journal_updates if "state=" in s]
    assert len(outcomes) == 2 and all("content_hash" in s for s in outcomes), journal_updates
    assert not [s for s in journal_updates if s.startswith("UPDATE journal SET content_hash")]
    with state.db.engine.connect() as connection:
        hashes = {row[0] for row in connection.execute(text("SELECT content_hash FROM journal"))}
    assert len(hashes) == 3 and None not in hashes
