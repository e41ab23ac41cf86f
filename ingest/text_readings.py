"""What the transaction's steps read of a message's words, worked out before the transaction.

The text a ticket keeps (as its opening or as a message joining it, ingest/replies.py), the
language a new ticket is answered in (ingest/language.py) and the category that decides its
queue (ingest/categorise.py) depend on the message and the configuration alone. Worked out by
the last of the prepare steps (ingest/prepare.py), they come from the parsing process, on the
second core, instead of taking the single writer's time inside its transaction: they were a
fifteenth of an import's (issue 19). Both texts are kept: which one a message needs is known
only once it is threaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.config import Config
from domain.message import ParsedMessage
from ingest.categorise import Categoriser
from ingest.language import guess_language
from ingest.replies import kept_text


@dataclass(frozen=True)
class TextReadings:
    opening: str  # the text kept when the message opens a ticket (or repeats a request)
    follow_up: str  # the text kept when it joins a ticket
    language: str | None  # the language its words show (None: none to tell by)
    category: str  # the category of its subject and opening text

    def kept(self, opening: bool) -> str:
        return self.opening if opening else self.follow_up


_CATEGORISERS: dict[tuple[tuple[str, tuple[str, ...]], ...], Categoriser] = {}


def categoriser(config: Config) -> Categoriser:
    """The categoriser of the configuration's keywords, compiled once per set of keywords."""
    key = tuple(sorted(config.team.category_keywords.items()))
    if key not in _CATEGORISERS:
        _CATEGORISERS[key] = Categoriser(dict(key))
    return _CATEGORISERS[key]


def read_texts(config: Config, message: ParsedMessage) -> TextReadings:
    opening = kept_text(message, opening=True)
    return TextReadings(
        opening=opening,
        follow_up=kept_text(message, opening=False),
        language=guess_language(message.subject, message.text),
        category=categoriser(config).categorise(message.subject, opening),
    )
