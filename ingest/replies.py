"""The new text of a reply, with quoted history and client signatures removed.

mail-parser-reply knows the reply headers of the common clients in many languages but not in
Turkish or Russian; those forms are registered here (Gmail: "... tarihinde ... şunu yazdı:",
Outlook: "Gönderen: / Gönderildi: / Kime: / Konu:", "От: / Отправлено: / Кому: / Тема:").
Around it, `latest_reply` handles what no language table describes: a quote the writer answered
below (bottom posting), and attribution lines that only hold a date and an address
("26.06.2014, 14:41, "Alexander L" <abc@example.com>:"), the way talon splits them.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES, QUOTED_MATCH_INCLUDE
from mailparser_reply.parser import EmailMessage

from domain.message import ParsedMessage

MAIL_LANGUAGES.setdefault(
    "tr",
    {
        "wrote_header": r"^("
        + QUOTED_MATCH_INCLUDE
        + r".{0,200}?tarihinde.{0,200}?(?:şunu )?yazdı:)$",
        "from_header": r"((?:(?:^|\n|\n"
        + QUOTED_MATCH_INCLUDE
        + r")[* ]*(?:Gönderen|Gönderildi|Kime|Konu|Tarih|Bilgi|Gönderilme Tarihi):[ *]*"
        r"(?:\s{,2}).*){2,}(?:\n.*){,1})",
        "disclaimers": [r"(?:Gizlilik|Yasal) (?:Uyarısı|Bildirimi):"],
        "signatures": ["Saygılarımla", "Saygılarımızla", "İyi çalışmalar"],
        "sent_from": "iPhone'umdan gönderildi|Android için Outlook",
    },
)
MAIL_LANGUAGES.setdefault(
    "ru",
    {
        "wrote_header": r"^(" + QUOTED_MATCH_INCLUDE + r".{0,200}?(?:написал|написала)\(?а?\)?:)$",
        "from_header": r"((?:(?:^|\n|\n"
        + QUOTED_MATCH_INCLUDE
        + r")[* ]*(?:От|Отправлено|Кому|Тема|Дата|Копия):[ *]*(?:\s{,2}).*){2,}(?:\n.*){,1})",
        "disclaimers": [],
        "signatures": [],
        "sent_from": "Отправлено с iPhone",
    },
)

_PARSER = EmailReplyParser(languages=["tr", "en", "de", "fr", "es", "it", "nl", "ru"])


# The parser's reply-header expression (every language's "... wrote:" line and From:/Sent:
# block in one alternation, tried at every position of the text) was a third of the parsing
# process's time per message (issue 19). A text with no header gets the whole text back from
# the parser, so `_HEADER_WORDS` first asks for what any header needs: a word of an attribution
# line ("wrote:", "tarihinde", ...), a line opening with a header name and its colon, or the
# "Original Message" separator. The header names are taken from the parser's own expression;
# tests/test_replies_prefilter.py checks that every attribution pattern holds one of the words.
_ATTRIBUTION_WORDS = (
    "tarihinde",
    "wrote:",
    "schrieb",
    r"a \u00e9crit",
    "escribió:",
    "ha scritto:",
    "schreef:",
    "написал",
)


def _header_names(pattern: str) -> list[str]:
    """The alternatives of each "[* ]*(?:From|Sent|...):" group of the header expression."""
    return [
        name
        for group in re.findall(r"\)\[\* \]\*\(\?:([^()]*)\):", pattern)
        for name in group.split("|")
    ]


def _header_words(pattern: str) -> re.Pattern[str]:
    names = "|".join(_header_names(pattern))
    words = "|".join(_ATTRIBUTION_WORDS)
    return re.compile(
        rf"{words}|^(?:> ?)*[* ]*(?:{names}):|original message", re.MULTILINE | re.IGNORECASE
    )


def _header_pattern() -> str:
    return str(EmailMessage(text="", languages=list(_PARSER.languages)).HEADER_REGEX.pattern)


_HEADER_WORDS = _header_words(_header_pattern())


def _parse_reply(seen: str) -> str:
    """What `_PARSER.parse_reply` answers for `seen` (it is `EmailMessage(...).read()`'s first
    reply), without the header search when no header can be in the normalised text (see
    `_HEADER_WORDS`): then the one reply is that whole text, stripped."""
    message = EmailMessage(text=seen, languages=_PARSER.languages)
    if _HEADER_WORDS.search(message.text) is None:
        return str(message.text).strip()
    return message.read().latest_reply or ""


# Marks that are invisible but break every pattern (Windows Mail writes U+200E around numbers).
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060\ufeff]")
_QUOTED = re.compile(r"^\s*>")
# Starts only where a run of address characters starts, so no run is scanned more than once.
_ADDRESS = r"<?(?<![\w.+'-])[\w.+'-]+@[\w-]+(?:\.[\w-]+)+>?"
# A date or a time, then an address, then a colon at the very end: an attribution line whatever
# its language ("02.04.2012 14:20 пользователь "bob@x" <bob@x> написал:" spans two lines).
_DATED_ATTRIBUTION = re.compile(
    r"^\s*(?:>\s*)*(?=.{0,200}(?:\d{1,2}:\d{2}|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}))"
    r".{0,250}?" + _ADDRESS + r"[^\n@]{0,40}:\s*$",
    re.DOTALL,
)
_WROTE = re.compile(
    r"(wrote|schrieb|a écrit|escribió|ha scritto|schreef|napisał|написал[а]?|yazdı|skrev):\s*$",
    re.IGNORECASE,
)
# A block of forwarded/quoted mail headers: a From-like line and another header within 4 lines.
_FROM_KEYS = r"From|De|Von|Van|Da|От|Gönderen|Kimden|Från|Fra|Od"
_OTHER_KEYS = (
    r"Sent|Date|To|Subject|Cc|Envoyé|Date|À|Objet|Gesendet|An|Betreff|Verzonden|Aan|Onderwerp|"
    r"Enviado|Para|Asunto|Inviato|Oggetto|Отправлено|Кому|Тема|Дата|Gönderildi|Kime|Konu|Tarih"
)
# One class for the marks and spaces before the key: `\s*[*>]*\s*` tried every way to share a
# run of whitespace between its two `\s*`, quadratic in the run.
_FROM_LINE = re.compile(r"^[\s*>]*(?:" + _FROM_KEYS + r")\s*:", re.IGNORECASE)
_OTHER_LINE = re.compile(r"^[\s*>]*(?:" + _OTHER_KEYS + r")\s*:", re.IGNORECASE)
_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*(original message|forwarded message|orijinal (ileti|mesaj)|özgün ileti|"
    r"ursprüngliche nachricht|message d'origine|исходное сообщение|пересылаемое сообщение)"
    r"\s*-{2,}",
    re.IGNORECASE,
)


_DATE_OR_TIME = re.compile(r"\d{1,2}:\d{2}|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")


def _is_attribution(lines: list[str], i: int) -> bool:
    """Does an attribution ("On ... wrote:", "<date>, <address>:") start at line i?

    It may be folded over up to three lines, but never across a blank line, and a dated one
    has its date on its first line (so that "Alex" above "Thu, 26 Jun 2014 ... <a@b>:" stays).
    """
    first = lines[i].strip()
    if not first:
        return False
    # Every window below ends with the colon of its last line: without one in the next three
    # lines there is none to try (most lines; this test was a seventh of a parse, issue 19).
    if not any(line.rstrip().endswith(":") for line in lines[i : i + 3]):
        return False
    for span in (1, 2, 3):
        chunk = [s.strip() for s in lines[i : i + span]]
        if len(chunk) < span or not chunk[-1]:
            break
        window = " ".join(chunk)
        if len(window) > 400:
            break
        if not window.endswith(":"):
            continue
        if _DATE_OR_TIME.search(first) and _DATED_ATTRIBUTION.match(window):
            return True
        if _WROTE.search(window):
            if span == 1:
                return True
            # Folded: its first line names who or when, and what follows is only the tail.
            named = "@" in first or bool(_DATE_OR_TIME.search(first))
            return named and not _whole_attribution(lines, i + 1)
    return False


def _whole_attribution(lines: list[str], i: int) -> bool:
    """An attribution at line i that names who or when itself ("On Mon, 7 Dec, Bob <b@x>
    wrote:"), so a line above it is not part of it ("Alex" signing off). A bare tail
    ("tarihinde şunu yazdı:", "wrote:") is not: Gmail wraps its attribution before it, and the
    line above is the attribution's first half."""
    line = lines[i]
    return ("@" in line or bool(_DATE_OR_TIME.search(line))) and _is_attribution(lines, i)


def _drop_leading_quote(text: str) -> str:
    """Bottom posting: an attribution and a quote first, the new text below them."""
    lines = text.split("\n")
    start = 0
    while True:
        while start < len(lines) and not lines[start].strip():
            start += 1
        end = start
        if end < len(lines) and not _QUOTED.match(lines[end]) and _is_attribution(lines, end):
            end += 1
            while end < len(lines) and not _QUOTED.match(lines[end]) and lines[end].strip():
                end += 1  # the rest of a folded attribution line
        if end >= len(lines) or not _QUOTED.match(lines[end]):
            break
        while end < len(lines) and (_QUOTED.match(lines[end]) or not lines[end].strip()):
            end += 1
        if end >= len(lines):
            break  # nothing after the quote: not bottom posting
        start = end
    return "\n".join(lines[start:])


def _is_header_block(block: list[str]) -> bool:
    """Quoted mail headers: a From-like line among them and at least two header lines in a row."""
    keys = [bool(_FROM_LINE.match(s) or _OTHER_LINE.match(s)) for s in block]
    return len(keys) >= 2 and keys[0] and keys[1] and any(_FROM_LINE.match(s) for s in block)


def _cut_at_quote_header(text: str) -> str:
    """Cut where quoted history starts, for the forms the language tables do not catch."""
    lines = text.split("\n")
    for i in range(1, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        cut = _ORIGINAL.match(line) or _is_attribution(lines, i)
        if not cut and (_FROM_LINE.match(line) or _OTHER_LINE.match(line)):
            cut = _is_header_block([s for s in lines[i : i + 8] if s.strip()][:4])
        if cut and any(s.strip() for s in lines[:i]):
            return "\n".join(lines[:i]).rstrip()
    return text


# mailparser-reply's patterns backtrack: runs of blank lines, of spaces, of "*" or "On " cost
# them quadratic time or worse (48 KB of blank lines: a minute). They read a view of the text
# on which their cost is bounded: lines stripped (they strip them too), whitespace runs as one
# space, blank runs as one blank line, a line too long to be a reply header as a placeholder,
# only the first lines. The cut they find is mapped back to the lines of the text.
_VIEW_LINE = 300
_VIEW_LINES = 120
_PLACEHOLDER = "\u2026"
_OUTLOOK_SEPARATOR = re.compile(r"^[_-]{32,}")


def _parser_view(lines: list[str]) -> tuple[list[str], list[int]]:
    """The lines the parser reads, and the index in `lines` each one stands for."""
    view: list[str] = []
    origin: list[int] = []
    for index, line in enumerate(lines):
        seen = " ".join(line.split())
        if not seen and view and not view[-1]:
            continue
        if len(seen) > _VIEW_LINE or _OUTLOOK_SEPARATOR.match(seen):
            # A separator would make the parser's own clean-up drop lines: the mapping needs
            # its lines to stay as given. The separator is removed below, as the parser did.
            seen = _PLACEHOLDER
        view.append(seen)
        origin.append(index)
        if len(view) == _VIEW_LINES:
            break
    return view, origin


def _parser_reply(text: str) -> str:
    """The latest reply as mailparser-reply finds it, with its cost bounded (see above)."""
    lines = [line.strip() for line in text.split("\n")]
    view, origin = _parser_view(lines)
    seen = "\n".join(view)
    content = _parse_reply(seen)
    at = seen.find(content) if content else -1
    if at < 0:
        return ""
    first = origin[seen.count("\n", 0, at)]
    last_view = seen.count("\n", 0, at + len(content))
    # No cut inside the view: the reply may go on past it, keep everything.
    last = len(lines) - 1 if last_view == len(view) - 1 else origin[last_view]
    kept = "\n".join(lines[first : last + 1])
    return _SEPARATOR_AFTER_TEXT.sub("\\1\n", kept, count=8)


# What mailparser-reply's clean-up removes: an Outlook separator line after a blank line.
_SEPARATOR_AFTER_TEXT = re.compile(r"([^\n])(\n{2,} ?[_-]{32,})")


# The quote detectors are regular expressions over the whole text; on a megabyte of text they
# take seconds. A reply's own text comes first, so they look at this much of it only.
REPLY_SCAN_LIMIT = 64 * 1024


def latest_reply(text: str) -> str:
    """The text the sender wrote this time; the whole text when nothing could be told apart."""
    if len(text) > REPLY_SCAN_LIMIT:
        head = text[: text.rfind("\n", 0, REPLY_SCAN_LIMIT) + 1 or REPLY_SCAN_LIMIT]
        reply = _latest_reply(head)
        # A cut well inside the head is the answer. Near its end the detectors only see the
        # start of what follows, so keep the whole text: better too much than a lost line.
        return reply if len(reply) < 0.9 * len(head) else text.strip()
    return _trim_empty_quotes(_latest_reply(text))


def _trim_empty_quotes(text: str) -> str:
    """Drop trailing quoted lines: left over where an inline reply's quoted context was cut
    ("> -- Tim" above the quoted attribution), they are the history, never the writer's."""
    lines = text.splitlines()
    while lines and (_QUOTED.match(lines[-1]) or not lines[-1].strip()):
        lines.pop()
    return "\n".join(lines) if lines else text


def _latest_reply(text: str) -> str:
    text = _INVISIBLE.sub("", text)
    if not text.strip():
        return ""
    try:
        text = _drop_leading_quote(text)
        text = _cut_at_quote_header(text)
        reply = _parser_reply(text)
    except Exception:  # the parser's regexes on hostile input: keep everything, lose nothing
        return text.strip()
    reply = (reply or "").strip() or text.strip()
    try:
        return _cut_at_quote_header(reply).strip() or reply
    except Exception:
        return reply


_SIGNATURE_DELIMITER = re.compile(r"^(?:-- ?|__+)$")


def own_text(text: str) -> str:
    """What is left of `text` once quoted lines, attribution lines ("On ... wrote:") and a
    `-- ` signature block are taken out: empty when the writer added nothing of their own.
    Unlike `latest_reply` it never falls back to the whole text: it decides whether there is
    anything to pass on at all."""
    lines = _INVISIBLE.sub("", text).split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if _SIGNATURE_DELIMITER.match(line.strip()) or _ORIGINAL.match(line):
            break  # the signature, or an Outlook-style quote: nothing of theirs follows
        if _FROM_LINE.match(line) and _is_header_block(
            [s for s in lines[index : index + 8] if s.strip()][:4]
        ):
            break
        if _QUOTED.match(line) or not line.strip():
            continue
        try:
            if _is_attribution(lines, index):
                continue
        except Exception:  # hostile input in the regexes: count the line as text
            pass
        kept.append(line)
    return "\n".join(kept).strip()


# A forward's own marker line: Gmail "---------- Forwarded message ---------", Thunderbird
# "-------- Forwarded Message --------", Apple Mail "Begin forwarded message:", and their
# translations (Gmail in Turkish: "---------- İletilen ileti ---------"). One class of marks
# around the words: two runs of optional spaces side by side would be quadratic in a long run.
_FORWARD_WORDS = (
    r"(?:begin )?forwarded message|[iİ]let(?:ilen|ilmiş) [iİ]leti(?: başlangıcı)?|"
    r"(?:anfang der )?weitergeleiteten? nachricht|message transféré|"
    r"début du message réexpédié|(?:inicio del )?mensaje reenviado|(?:inizio )?messaggio inoltrato|"
    r"(?:begin )?doorgestuurd bericht|mensagem encaminhada|wiadomość przekazana dalej|"
    r"пересылаемое сообщение|(?:начало )?переадресованного сообщения|переадресованное сообщение"
)
_FORWARD = re.compile(r"^[\s-]*(?:" + _FORWARD_WORDS + r")[\s:-]*$", re.IGNORECASE)
# Outlook writes the same "-----Original Message-----" or "From: / Sent:" block above a forward
# as above a reply: only the subject tells them apart (FW, Fwd, and Turkish İLT, French TR,
# German WG, Spanish RV), its first prefix, so "RE: FW:" is the reply it says it is.
_FORWARD_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]\n]{0,80}\]\s*)?(?:fwd?|[iİ]lt|tr|wg|rv)\s*:", re.IGNORECASE
)


def _header_block_at(lines: list[str], i: int) -> bool:
    line = lines[i]
    if not (_FROM_LINE.match(line) or _OTHER_LINE.match(line)):
        return False
    return _is_header_block([s for s in lines[i : i + 8] if s.strip()][:4])


def _after_separator(lines: list[str], i: int) -> int:
    """`i`, or the Outlook separator line just above it: it belongs to the forward."""
    above = i - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    return above if above >= 0 and _OUTLOOK_SEPARATOR.match(lines[above].strip()) else i


def _forward_start(lines: list[str], subject: str, past_quotes: bool) -> int | None:
    """The line where forwarded mail starts, None when there is none; with `past_quotes` false,
    None too when a quote (a "> " line, an attribution, a reply's header block) comes first."""
    outlook = bool(_FORWARD_SUBJECT.match(subject))
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        quoted = bool(_QUOTED.match(line))
        if not quoted and _FORWARD.match(line):
            return i
        headers = not quoted and bool(_ORIGINAL.match(line) or _header_block_at(lines, i))
        if headers and outlook:
            return _after_separator(lines, i)
        if (quoted or headers or _is_attribution(lines, i)) and not past_quotes:
            return None
    return None


def _with_forward(text: str, subject: str, reply: str | None, past_quotes: bool) -> str:
    reply = latest_reply(text) if reply is None else reply
    text = _INVISIBLE.sub("", text)  # as latest_reply reads it
    # Where latest_reply looks for quotes, a forward is looked for (the cost, bounded alike).
    end = text.rfind("\n", 0, REPLY_SCAN_LIMIT) if len(text) > REPLY_SCAN_LIMIT else len(text)
    lines = text[: end if end > 0 else REPLY_SCAN_LIMIT].split("\n")
    try:
        start = _forward_start(lines, subject, past_quotes)
    except Exception:  # the regexes on hostile input: the reply as before
        return reply
    if start is None:
        return reply
    at = sum(len(line) + 1 for line in lines[:start])
    own = latest_reply(text[:at]) if text[:at].strip() else ""
    forwarded = text[at:].strip()
    return f"{own}\n\n{forwarded}" if own else forwarded


def opening_text(text: str, subject: str, reply: str | None = None) -> str:
    """The text a new ticket's first message keeps: what latest_reply keeps (`reply`, when it
    was found already), and a forward below it whole, even below a quote. A customer opens a
    ticket by forwarding the mail the request is about: that mail is the request, not history."""
    return _with_forward(text, subject, reply, past_quotes=True)


def follow_up_text(text: str, subject: str, reply: str | None = None) -> str:
    """The text a message joining a ticket keeps: the latest reply, and a forward only when its
    marker comes before any quote: one below it is part of the history the reply quotes."""
    return _with_forward(text, subject, reply, past_quotes=False)


def kept_text(message: ParsedMessage, opening: bool) -> str:
    """The text recorded for `message`: as a ticket's opening (`opening_text`) or as a message
    joining one (`follow_up_text`); its parsed `text` is the latest reply these start from."""
    keep = opening_text if opening else follow_up_text
    return keep(message.full_text, message.subject, message.text)
