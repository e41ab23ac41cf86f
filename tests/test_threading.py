"""Threading with proof, strangers kept out, repeated requests, merges and splits.

Mail is written the way the common clients write it; each message goes through the journal and
the worker, as it does in the daemon.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import load_config
from ingest.journal import Arrival
from ingest.ticket_ops import merge, split
from ingest.worker import Processed
from outbound.addresses import reply_address
from storage.models import OutboxMail
from tests.helpers import DESK, customer_mail, write_config
from ticketd.state import State, open_state
from ticketd.views import list_outbox, list_tickets, show_ticket

CUSTOMER = "Ayşe Yılmaz <ayse@musteri.com.tr>"


def deliver(state: State, raw: bytes, envelope_to: Sequence[str] = (DESK,)) -> Processed:
    state.journal.accept(Arrival(raw=raw, source="test", envelope_to=tuple(envelope_to)))
    [result] = state.worker.drain()
    return result


def open_ticket(
    state: State,
    clock: FixedClock,
    sender: str = CUSTOMER,
    subject: str = "Para çekme talebim",
    body: str = "Para çekme talebim 3 gündür beklemede",
) -> tuple[str, str]:
    """A new ticket from the customer; returns its reference and our acknowledgement's id."""
    result = deliver(state, customer_mail(sender=sender, subject=subject, body=body))
    assert result.state == "done", result.detail
    ref = result.detail.split()[1].rstrip(":")
    acks = [row for row in list_outbox(state.db) if row["kind"] == "ack"]
    ticket = show_ticket(state.db, ref)
    assert ticket is not None
    ack_id = [m["message_id"] for m in ticket["messages"] if m["kind"] == "auto"][-1]
    assert acks
    clock.advance(timedelta(minutes=10))
    return ref, ack_id


def messages_of(state: State, ref: str) -> list[dict[str, object]]:
    ticket = show_ticket(state.db, ref)
    assert ticket is not None
    result: list[dict[str, object]] = ticket["messages"]
    return result


def test_outlook_reply_with_a_new_subject_finds_the_ticket_through_our_message_id(
    state: State, clock: FixedClock
) -> None:
    ref, ack_id = open_ticket(state, clock)
    reply = customer_mail(
        sender=CUSTOMER,
        subject="RE: başka bir konu",  # the reference was removed from the subject
        body="Hâlâ bekliyorum.\n\n-----Original Message-----\nFrom: Destek\n",
        headers={"In-Reply-To": f"<{ack_id}>", "Thread-Index": "AdFuZ6XxOH+qH5H+R76f2odV"},
    )
    result = deliver(state, reply)
    assert result.detail.startswith(f"ticket {ref}: answers our mail")
    assert len(list_tickets(state.db)) == 1
    assert messages_of(state, ref)[-1]["text"] == "Hâlâ bekliyorum."


def test_forged_message_id_of_ours_does_not_thread(state: State, clock: FixedClock) -> None:
    ref, ack_id = open_ticket(state, clock)
    token, _, _signature = ack_id.partition("@")[0].rpartition(".")
    forged = f"{token}.000000000000@example.com"
    result = deliver(
        state,
        customer_mail(
            sender="mallory@evil.example", subject="merhaba", headers={"In-Reply-To": f"<{forged}>"}
        ),
    )
    assert ref not in result.detail
    assert len(list_tickets(state.db)) == 2


def test_mail_to_the_signed_reply_address_joins_and_a_forged_one_does_not(
    state: State, clock: FixedClock
) -> None:
    ref, _ack = open_ticket(state, clock)
    address = reply_address(state.config.desk, ref)
    ack = message_from_bytes(_outbox_raw(state)[0], policy=default)
    assert address in str(ack["Reply-To"])
    # Apple Mail on the phone: no In-Reply-To kept, subject rewritten, sent to Reply-To.
    joined = deliver(
        state,
        customer_mail(sender=CUSTOMER, to=address, subject="Ek belge"),
        envelope_to=(address,),
    )
    assert joined.detail.startswith(f"ticket {ref}: sent to the reply address")
    local, _, domain = address.partition("@")
    forged = local[:-1] + ("0" if local[-1] != "0" else "1") + "@" + domain
    stranger = deliver(
        state,
        customer_mail(sender="mallory@evil.example", to=forged, subject="Ek belge"),
        envelope_to=(forged,),
    )
    assert ref not in stranger.detail
    assert len(list_tickets(state.db)) == 2


def _outbox_raw(state: State) -> list[bytes]:
    with state.db.transaction() as session:
        return [row.raw for row in session.scalars(select(OutboxMail).order_by(OutboxMail.id))]


def test_subject_reference_joins_only_for_participants(state: State, clock: FixedClock) -> None:
    ref, _ack = open_ticket(state, clock)
    for prefix in ("Ynt:", "YNT:", "İlt:", "Re:", "AW:"):
        result = deliver(state, customer_mail(sender=CUSTOMER, subject=f"{prefix} [#{ref}] ek"))
        assert result.detail.startswith(f"ticket {ref}: reference {ref} in the subject")
        clock.advance(timedelta(minutes=1))
    before = messages_of(state, ref)

    stranger = deliver(
        state,
        customer_mail(sender="Mallory <mallory@evil.example>", subject=f"Re: [#{ref}] iade"),
    )
    new_ref = stranger.detail.split()[1].rstrip(":")
    assert new_ref != ref and "claimed by a non-participant" in stranger.detail
    claimed = show_ticket(state.db, new_ref)
    assert claimed is not None and claimed["claimed_ref"] == ref
    assert claimed["participants"] == ["mallory@evil.example"]
    # The owner of the named ticket learns nothing: no change to it, no mail to them about it.
    assert messages_of(state, ref) == before
    to_owner = [r for r in list_outbox(state.db) if "ayse@musteri.com.tr" in r["to"]]
    assert len(to_owner) == 1  # only their own acknowledgement


def test_reply_all_from_cc_joins_and_makes_a_participant(state: State, clock: FixedClock) -> None:
    first = customer_mail(
        sender=CUSTOMER,
        message_id="<first@musteri.com.tr>",
        headers={"Cc": "Mehmet <mehmet@musteri.com.tr>"},
    )
    result = deliver(state, first)
    ref = result.detail.split()[1].rstrip(":")
    assert "mehmet@musteri.com.tr" in show_ticket(state.db, ref)["participants"]  # type: ignore[index]
    # Thunderbird reply-all by the colleague in Cc: to the desk and the customer.
    reply_all = customer_mail(
        sender="Mehmet <mehmet@musteri.com.tr>",
        subject="Re: Para çekme talebim",
        body="Ben de aynı sorunu yaşıyorum.\n\nOn 23.11.2026 09:00, Ayşe wrote:\n> eski\n",
        headers={
            "Cc": CUSTOMER,
            "In-Reply-To": "<first@musteri.com.tr>",
            "References": "<first@musteri.com.tr>",
        },
    )
    assert deliver(state, reply_all).detail.startswith(f"ticket {ref}: answers a message")
    later = deliver(state, customer_mail(sender="mehmet@musteri.com.tr", subject=f"[#{ref}] ek"))
    assert later.detail.startswith(f"ticket {ref}: reference")
    assert len(list_tickets(state.db)) == 1
    assert len(list_outbox(state.db)) == 1


def test_the_same_mail_to_two_desk_addresses_is_one_message(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    text = path.read_text().replace(
        'language = "tr"', 'language = "tr"\nextra_addresses = ["info@example.com"]'
    )
    path.write_text(text)
    state = open_state(load_config(path))
    try:
        raw = customer_mail(to=f"{DESK}, info@example.com", message_id="<both@musteri.com.tr>")
        assert deliver(state, raw, (DESK,)).state == "done"
        second = deliver(state, raw, ("info@example.com",))
        assert second.state == "ignored" and second.detail.startswith("duplicate")
        [ticket] = list_tickets(state.db)
        assert ticket["messages"] == 2
    finally:
        state.close()


def test_a_repeated_request_from_an_unproven_sender_opens_its_own_ticket(
    state: State, clock: FixedClock
) -> None:
    """Issue 22 (5): the same words under her From with a stranger's Reply-To learn nothing of
    her ticket: a ticket of their own, acknowledged to the From, never to the Reply-To."""
    body = "Para çekme talebim 3 gündür beklemede."
    ref, _ack = open_ticket(state, clock, body=body)
    clock.advance(timedelta(minutes=20))
    forged = customer_mail(body=body, headers={"Reply-To": "mallory@evil.example"})
    again = deliver(state, forged)
    assert ref not in again.detail and "repeats" not in again.detail
    assert len(list_tickets(state.db)) == 2
    assert not [r for r in list_outbox(state.db) if r["kind"] == "duplicate"]
    assert not [r for r in list_outbox(state.db) if "evil.example" in r["to"]]
    assert all(m["from"] != "ayse@musteri.com.tr" for m in messages_of(state, ref)[1:])


def test_a_repeated_request_from_a_verified_sender_joins_with_one_pointer(
    tmp_path: Path, clock: FixedClock
) -> None:
    """A repeat proven by an aligned DKIM pass (in the verdict of a receiving server the admin
    trusts) joins her open ticket; the pointer goes to the ticket's customer address."""
    trust = '[smtp_in]\nlisten = "127.0.0.1:2599"\ntrusted_authserv_ids = ["mx.musteri.com.tr"]\n'
    state = open_state(load_config(write_config(tmp_path, extra=trust)), clock=clock)
    passed = "mx.musteri.com.tr; dkim=pass header.d=musteri.com.tr; spf=none"

    def verified(raw: bytes) -> Processed:
        signed = b"Authentication-Results: " + passed.encode() + b"\r\n" + raw
        return deliver(state, signed)

    ref, _ack = open_ticket(state, clock, body="Para çekme talebim 3 gündür beklemede.")
    clock.advance(timedelta(minutes=20))
    again = verified(customer_mail(body="Para çekme talebim 3 gündür beklemede!!"))
    assert again.detail.startswith(f"ticket {ref}: repeats the request")
    assert len(list_tickets(state.db)) == 1
    notes = [m for m in messages_of(state, ref) if m["kind"] == "system"]
    assert any("sent this request again" in str(n["text"]) for n in notes)
    pointers = [r for r in list_outbox(state.db) if r["kind"] == "duplicate"]
    assert len(pointers) == 1 and ref in pointers[0]["subject"]
    assert pointers[0]["to"] == "ayse@musteri.com.tr"
    clock.advance(timedelta(minutes=20))
    verified(customer_mail(body="Para çekme talebim 3 gündür beklemede"))
    assert len([r for r in list_outbox(state.db) if r["kind"] == "duplicate"]) == 1
    # A different request is a new ticket.
    other = verified(customer_mail(subject="Bonus", body="Hoş geldin bonusum yüklenmedi."))
    assert ref not in other.detail
    state.close()


def test_ten_mails_in_a_minute_get_two_acknowledgements(state: State, clock: FixedClock) -> None:
    questions = [
        ("Şifre", "Şifremi unuttum, sıfırlama e-postası gelmiyor."),
        ("Yatırım", "Dün yaptığım yatırım hesabıma geçmedi."),
        ("Bonus", "Hoş geldin bonusu yüklenmedi."),
        ("Çekim", "Çekim talebim onay bekliyor."),
        ("Kimlik", "Kimlik belgemi gönderdim, sonuç ne oldu?"),
        ("Uygulama", "Mobil uygulama açılışta kapanıyor."),
        ("Limit", "Günlük limitimi artırmak istiyorum."),
        ("Adres", "Adres bilgimi güncellemem lazım."),
        ("Şikayet", "Canlı destek cevap vermiyor."),
        ("Hesap", "Hesabımı kapatmak istiyorum."),
    ]
    for subject, body in questions:
        deliver(state, customer_mail(subject=subject, body=body))
        clock.advance(timedelta(seconds=6))
    # The first at once, the second when the interval allows (outbound/automatic.py), then
    # none: the limit holds against a loop.
    assert [row["kind"] for row in list_outbox(state.db)] == ["ack", "ack"]
    tickets = list_tickets(state.db)
    silent = 0
    for ticket in tickets:
        notes = [m for m in messages_of(state, ticket["ref"]) if m["kind"] == "system"]
        silent += any("No ack mail went" in str(n["text"]) for n in notes)
    assert silent == len(tickets) - 2  # each ticket without an answer says why


def test_merge_keeps_the_old_reference_working_and_split_makes_a_new_ticket(
    state: State, clock: FixedClock
) -> None:
    first, _ = open_ticket(state, clock, subject="Para çekme", body="Çekim bekliyor")
    second, _ = open_ticket(
        state, clock, sender="mehmet@musteri.com.tr", subject="Bonus", body="Bonus yok"
    )
    assert merge(state.db, clock, second, first, state.config.sla) == first
    shown = show_ticket(state.db, second)
    assert shown is not None and shown["ref"] == first and shown["requested_ref"] == second
    assert "mehmet@musteri.com.tr" in shown["participants"]
    # Mehmet answers with the old reference: it lands on the survivor.
    result = deliver(state, customer_mail(sender="mehmet@musteri.com.tr", subject=f"[#{second}]"))
    assert result.detail.startswith(f"ticket {first}:")
    statuses = {t["ref"]: t["status"] for t in list_tickets(state.db)}
    assert statuses[second] == "merged"

    history = messages_of(state, first)
    position = next(i for i, m in enumerate(history, 1) if m["from"] == "mehmet@musteri.com.tr")
    new_ref = split(state.db, clock, first, [position], state.config.sla)
    moved = messages_of(state, new_ref)
    assert moved[0]["from"] == "mehmet@musteri.com.tr"
    assert len(messages_of(state, first)) == len(history)  # one moved out, one note in


def _talon_replies() -> list[Path]:
    from tests.test_corpus import corpus_root

    folder = corpus_root() / "talon" / "standard_replies"
    return sorted(p for p in folder.iterdir() if p.suffix == ".eml")


def _as_reply_to(raw: bytes, message_id: str) -> bytes:
    """The client's own mail, answering `message_id`: its threading headers are replaced."""
    head, sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    kept: list[bytes] = []
    skipping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith((b"in-reply-to:", b"references:"))
        if not skipping:
            kept.append(line)
    threading = f"In-Reply-To: <{message_id}>\nReferences: <{message_id}>".encode()
    return b"\n".join([threading, *kept]) + sep + body


@pytest.mark.parametrize("path", _talon_replies(), ids=lambda p: p.name)
def test_talon_replies_join_the_ticket_they_answer(
    path: Path, state: State, clock: FixedClock
) -> None:
    from ingest.parsing import parse_message

    raw = path.read_bytes()
    sender = parse_message(raw).sender.email
    ref, ack_id = open_ticket(state, clock, sender=sender, subject="Test", body="Test mail")
    result = deliver(state, _as_reply_to(raw, ack_id))
    assert result.state == "done", result.detail
    assert result.detail.startswith(f"ticket {ref}: answers our mail"), result.detail
    assert len(list_tickets(state.db)) == 1
    assert len(list_outbox(state.db)) == 1


def test_a_strangers_answer_to_her_message_id_does_not_join_her_ticket(
    state: State, clock: FixedClock
) -> None:
    """Issue 22 (6): the Message-ID of a customer's mail is no secret; only a participant
    threads by it."""
    first = deliver(state, customer_mail(sender=CUSTOMER, message_id="<hers@musteri.com.tr>"))
    ref = first.detail.split()[1].rstrip(":")
    clock.advance(timedelta(minutes=10))
    stranger = customer_mail(
        sender="Mallory <mallory@evil.example>",
        subject="Re: Para çekme talebim",
        body="Hesap numaram değişti: TR99 0000 0000 0000 0000 0000 99",
        headers={"In-Reply-To": "<hers@musteri.com.tr>", "References": "<hers@musteri.com.tr>"},
    )
    result = deliver(state, stranger)
    assert ref not in result.detail and result.detail.endswith("agents told")
    assert [m["from"] for m in messages_of(state, ref) if m["direction"] == "in"] == [
        "ayse@musteri.com.tr"
    ]
    assert "mallory@evil.example" not in show_ticket(state.db, ref)["participants"]  # type: ignore[index]
    # She herself answering her own mail still threads.
    own = customer_mail(sender=CUSTOMER, headers={"In-Reply-To": "<hers@musteri.com.tr>"})
    assert deliver(state, own).detail.startswith(f"ticket {ref}: answers a message")


def test_split_takes_the_participants_who_came_only_with_the_moved_messages(
    state: State, clock: FixedClock
) -> None:
    ref, ack_id = open_ticket(state, clock)
    # A follow-up of hers with someone in Cc who then writes into the ticket: her answer to
    # our acknowledgement, which proves her From (an unproven one makes nobody a participant).
    follow_up = customer_mail(
        sender=CUSTOMER,
        subject=f"Re: [#{ref}] ek",
        headers={"Cc": "mallory@evil.example", "In-Reply-To": f"<{ack_id}>"},
    )
    assert deliver(state, follow_up).detail.startswith(f"ticket {ref}:")
    intruder = deliver(state, customer_mail(sender="mallory@evil.example", subject=f"[#{ref}] x"))
    assert intruder.detail.startswith(f"ticket {ref}: reference")
    history = messages_of(state, ref)
    moving = [i for i, m in enumerate(history, 1) if m["direction"] == "in"][1:]
    new_ref = split(state.db, clock, ref, moving, state.config.sla)
    old, new = show_ticket(state.db, ref), show_ticket(state.db, new_ref)
    assert old is not None and new is not None
    assert old["participants"] == ["ayse@musteri.com.tr"]
    assert "mallory@evil.example" in new["participants"]
    again = deliver(state, customer_mail(sender="mallory@evil.example", subject=f"[#{ref}] y"))
    assert "claimed by a non-participant" in again.detail
