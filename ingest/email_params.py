"""The email package's split of a header's parameters, in linear time.

`email.message._parseparam` (Python 3.11) splits "text/plain; a=1; b=2" at the semicolons
outside quotes, and for every semicolon it meets inside an open quote it counts the quotes again
from the start of the parameter, then copies the rest of the header: a part header
`Content-Type: text/plain; a=";;;;...` of 48 KB took 2.8 s to parse, of 1 MB twenty minutes.
It runs for every part (the parser asks each for its boundary and charset), and the headers of
a message's parts are not bounded by `max_header_size`: one mail held the parsing process until
its time limit, and the next waited (CPython gh-136063, fixed from 3.13.6 and 3.14 on).

`install()` puts `parse_params` in its place: the same list for every value (a property test
holds it to the original), with the quotes counted once each and no copy of the rest, and no
more than MAX_PARAMS parameters. Each is then unquoted and looked through by the package's
Python code, for every question asked of the part (some 2 us a parameter): a part header of
25 MB of ";a" would still have cost the parsing process most of a minute. No mail client
writes more than a few dozen (a long file name's RFC 2231 continuations); the rest of such a
header is not read.
"""

from __future__ import annotations

import email.message
import re
from collections.abc import Callable

MAX_PARAMS = 500
# The quote the count of `_param_end` changes at: one not right after a backslash.
_UNESCAPED_QUOTE = re.compile(r'(?<!\\)"')

_ORIGINAL: Callable[[object], list[str]] = email.message._parseparam  # type: ignore[attr-defined]


def parse_params(value: object) -> list[str]:
    """`email.message._parseparam(value)`, walking indices instead of slicing the rest."""
    text = ";" + str(value)
    params: list[str] = []
    start = 0
    while start < len(text) and text[start] == ";" and len(params) < MAX_PARAMS:
        start += 1
        end = _param_end(text, start)
        param = text[start:end]
        if "=" in param:
            at = param.index("=")
            param = param[:at].strip().lower() + "=" + param[at + 1 :].strip()
        params.append(param.strip())
        start = end
    return params


def _param_end(text: str, start: int) -> int:
    """The first semicolon after `start` with an even count of quotes (less escaped ones)
    between: the original's rule, each stretch counted once as the end moves on. Only a quote
    changes the count, and an escaped one not, so inside an open quote the next candidate is
    the first semicolon after the next unescaped quote (the original tried every semicolon)."""
    end = text.find(";", start)
    counted, quotes = start, 0
    while end > start:
        quotes += text.count('"', counted, end) - text.count('\\"', counted, end)
        counted = end  # a semicolon: no escaped quote spans it
        if quotes % 2 == 0:
            return end
        quote = _UNESCAPED_QUOTE.search(text, end + 1)
        end = text.find(";", quote.end()) if quote else -1
    return len(text) if end < 0 else end


def install() -> None:
    email.message._parseparam = parse_params  # type: ignore[attr-defined]


def original() -> Callable[[object], list[str]]:
    """The standard library's own function, as it was before `install` (for the tests)."""
    return _ORIGINAL
