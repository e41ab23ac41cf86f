"""The small things an admin meets on day one (issue 15, point 20): the README's tables are whole
and its `[limits]` example says the defaults, the refusal of a document names every type that is
accepted, and the log has no scheduler chatter."""

from __future__ import annotations

import re
import time
import tomllib
from pathlib import Path

import pytest

from domain.config import LimitsConfig, load_config
from domain.config_kyc import KNOWN_TYPES, TYPE_NAMES
from domain.templating import Templates
from outbound.automatic import accepted_types
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import write_config

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_table_of_the_readme_has_its_header() -> None:
    """A row block (contiguous lines starting with "|") always opens with a header and "|---":
    a blank line inside a table leaves its second half without one."""
    blocks = re.findall(r"(?:^\|.*\n)+", README, re.M)
    assert len(blocks) > 3
    for block in blocks:
        first, second = block.splitlines()[:2]
        assert re.match(r"^\|[\s|:-]+\|$", second), f"a table without a header: {first}"


def test_the_limits_example_says_the_defaults() -> None:
    [example] = [b for b in re.findall(r"```toml\n(.*?)```", README, re.S) if "[limits]" in b]
    limits = tomllib.loads(example.split("[limits]", 1)[1].split("\n[", 1)[0])
    defaults = LimitsConfig()
    assert limits, example
    for key, value in limits.items():
        assert getattr(defaults, key) == value, key


def test_the_types_named_are_the_configured_ones(tmp_path: Path) -> None:
    default = load_config(write_config(tmp_path))
    assert accepted_types(default) == "JPEG, PNG, HEIC, HEIF, WebP, TIFF, PDF"
    only = load_config(write_config(tmp_path, extra="[kyc]\naccepted = ['pdf', 'jpeg']\n"))
    assert accepted_types(only) == "PDF, JPEG"


@pytest.mark.parametrize("language", ["tr", "en"])
@pytest.mark.parametrize("template", ["kyc_refused", "kyc_rejected", "virus_found"])
def test_asking_for_documents_names_every_accepted_type(language: str, template: str) -> None:
    names = ", ".join(TYPE_NAMES[t] for t in KNOWN_TYPES)
    text = (
        Templates()
        .render(
            template,
            language,
            ref="7KQM-X3P9",
            subject="s",
            customer_name="",
            desk_name="Destek",
            accepted_types=names,
            stored=[],
            refused=[{"filename": "a.exe", "code": "not_accepted"}],
            max_size="10 MB",
            over_limit=0,
            limit="",
            limit_count=0,
            reason="bulanık",
            files=[],
        )
        .text
    )
    for kind in KNOWN_TYPES:
        assert TYPE_NAMES[kind] in text, (template, kind)


def test_the_log_keeps_to_events(tmp_path: Path, relay: Relay) -> None:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port))
    daemon.start()
    try:
        time.sleep(1.5)  # the scheduler has added and started its jobs
    finally:
        assert daemon.stop() == 0
    assert "apscheduler" not in daemon.log(), daemon.log()
    assert "listening for SMTP" in daemon.log()
