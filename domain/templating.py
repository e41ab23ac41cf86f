"""Rendering of mail templates: sandboxed Jinja2, HTML escaped, admin overrides first."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from domain.labels import label


def shipped_templates() -> Path:
    return Path(str(files("templates")))


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


class Templates:
    """`render("ack", "tr", ...)` reads `tr/ack.subject.j2`, `tr/ack.txt.j2`, `tr/ack.html.j2`."""

    def __init__(self, override: Path | None = None) -> None:
        folders = [str(override)] if override else []
        folders.append(str(shipped_templates()))
        # Sandboxed because admins edit these files and values come from strangers' mail.
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader([FileSystemLoader(f) for f in folders]),
            autoescape=_autoescape,
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, name: str, language: str, **context: Any) -> RenderedMail:
        # `label` (domain/labels.py) speaks the template's language.
        context = {"label": lambda code, kind: label(language, kind, code), **context}

        def one(suffix: str) -> str:
            return self.env.get_template(f"{language}/{name}.{suffix}.j2").render(**context)

        subject = " ".join(one("subject").split())
        return RenderedMail(subject=subject, text=one("txt"), html=one("html"))
