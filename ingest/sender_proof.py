"""Whether a message is proven to come from the person its From names.

A From is the sender's own word: anyone can write `From: <an approved customer>`. What may act
on that person's behalf (change their identity verification, join their open ticket as a repeated
request, learn of their ticket, bring others into it as participants) needs proof, and there are
two kinds:
- the message answers a mail only the ticket's recipients got (our signed Message-ID, the
  ticket's signed reply address), and its From is the ticket's customer;
- an aligned DKIM or SPF pass for the From's domain in a verdict we believe: our own
  verification's, or a receiving server's the admin trusts (`ParsedMessage.aligned_pass`,
  domain/sender_auth.py), never an Authentication-Results header the sender wrote.
Anything else is unproven: it still becomes a ticket (a person's mail always does), its documents
are kept on that ticket, unbound, it makes nobody a participant of an existing ticket
(ingest/pipeline.py), and automatic answers to it repeat no text of it but a cut
subject.
"""

from __future__ import annotations

from domain.message import ParsedMessage
from ingest.thread_finder import Threading


def verified_by_authentication(message: ParsedMessage) -> bool:
    """An aligned DKIM/SPF pass for the From, in a verdict we believe."""
    return message.aligned_pass


def sender_proven(message: ParsedMessage, threading: Threading) -> bool:
    """The From is proven to be the customer of the ticket the message continues, or proven
    by authentication."""
    ticket = threading.ticket
    if ticket is not None and threading.proof and message.sender.email == ticket.customer:
        return True
    return verified_by_authentication(message)
