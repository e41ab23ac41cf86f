"""A linear HTML tokenizer with html.parser's callbacks, for the two readers of mail HTML.

The standard library's HTMLParser (before the fix of CPython gh-135462, which Python 3.11.7
lacks) searches from every unfinished construct to the end of the input: 900 KB of "</a" took
three minutes, "<!--x>" repeated is as bad. This one moves one cursor forward only: every
search starts where the last one ended, so it reads each character a bounded number of times.
What it does at the end of the input follows HTML5: an unclosed comment or raw-text element
(script, style) runs to the end, an unfinished tag is dropped.

It gives what ticketd's readers use: start tags with their attributes (names lowercase, values
with character references decoded), end tags, self-closing tags, and text with character
references decoded. Comments, declarations and processing instructions are skipped.
"""

from __future__ import annotations

import re
from html import unescape

_TAG_NAME = re.compile(r"(/?)([a-zA-Z][^\s/>]*)")
# One attribute: a name, then perhaps = and a value. Each part starts with a character the one
# before cannot hold, so a failed match gives back nothing to try again.
_ATTRIBUTE = re.compile(r"([^\s=/>\"']+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")
_TAG_END_OR_QUOTE = re.compile(r"[>\"']")
_STARTS_MARKUP = re.compile(r"<[!?/a-zA-Z]")
# Most tags of mail HTML: a name and nothing else ("<p>", "</div>", "<br/>").
_PLAIN_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)\s*(/?)>")
# Elements whose content is text up to their end tag, never markup (HTML5 raw text).
_RAW_TEXT = ("script", "style")


class LinearHTMLParser:
    """Subclass and override the handle_* methods; call feed(html) once, then close()."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        pass

    def handle_data(self, data: str) -> None:
        pass

    def feed(self, html: str) -> None:
        at = text = 0  # where to look for the next "<"; where the text not yet handled starts
        while at < len(html):
            start = html.find("<", at)
            if start < 0:
                break
            if not _STARTS_MARKUP.match(html, start):  # "a < b": text, handled with the rest
                at = start + 1
                continue
            self._text(html[text:start])
            at = text = self._markup(html, start)
        self._text(html[text:])

    def close(self) -> None:
        pass

    def _text(self, data: str) -> None:
        if data:
            self.handle_data(unescape(data))

    def _markup(self, html: str, start: int) -> int:
        """Handle what starts with the "<" at `start`; where the text after it starts."""
        if html.startswith("<!--", start):
            end = html.find("-->", start + 4)
            return len(html) if end < 0 else end + 3
        if html.startswith(("<!", "<?"), start):
            end = html.find(">", start + 2)
            return len(html) if end < 0 else end + 1
        plain = _PLAIN_TAG.match(html, start)
        if plain is not None:
            return self._plain_tag(html, plain)
        name = _TAG_NAME.match(html, start + 1)
        if name is None:  # "</ " or "</3": no tag; HTML5 makes it a bogus comment
            end = html.find(">", start + 2)
            return len(html) if end < 0 else end + 1
        end = _tag_end(html, name.end())
        if end < 0:
            return len(html)  # an unfinished tag at the end of the input: dropped
        tag = name.group(2).lower()
        if name.group(1):
            self.handle_endtag(tag)
            return end + 1
        attrs = _attributes(html[name.end() : end])
        if html[end - 1] == "/":
            self.handle_startendtag(tag, attrs)
            return end + 1
        self.handle_starttag(tag, attrs)
        if tag in _RAW_TEXT:
            return self._raw_text(html, tag, end + 1)
        return end + 1

    def _plain_tag(self, html: str, found: re.Match[str]) -> int:
        closing, tag, empty = found.group(1), found.group(2).lower(), found.group(3)
        if closing:
            self.handle_endtag(tag)
        elif empty:
            self.handle_startendtag(tag, [])
        else:
            self.handle_starttag(tag, [])
            if tag in _RAW_TEXT:
                return self._raw_text(html, tag, found.end())
        return found.end()

    def _raw_text(self, html: str, tag: str, at: int) -> int:
        closing = re.compile(r"</" + tag + r"[\s/>]", re.IGNORECASE).search(html, at)
        if closing is None:
            self.handle_data(html[at:])
            return len(html)
        self.handle_data(html[at : closing.start()])
        end = html.find(">", closing.start())
        self.handle_endtag(tag)
        return len(html) if end < 0 else end + 1


def _tag_end(html: str, at: int) -> int:
    """The ">" that ends a tag whose attributes start at `at` (a quoted value may hold ">"),
    or -1 when the input ends first. A quote opens a value only after "=", as in
    HTMLParser: `alt=don't` is an unquoted value."""
    while True:
        found = _TAG_END_OR_QUOTE.search(html, at)
        if found is None:
            return -1
        if found.group() == ">":
            return found.start()
        if not html[at : found.start()].rstrip().endswith("="):
            at = found.end()
            continue
        close = html.find(found.group(), found.end())
        if close < 0:
            return -1
        at = close + 1


def _attributes(text: str) -> list[tuple[str, str | None]]:
    attrs: list[tuple[str, str | None]] = []
    for found in _ATTRIBUTE.finditer(text):
        name, value = found.group(1).lower(), found.group(2)
        if value is not None and value[:1] in ("'", '"'):
            value = value[1:-1]
        attrs.append((name, unescape(value) if value is not None else None))
    return attrs
