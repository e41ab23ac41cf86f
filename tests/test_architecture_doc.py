"""docs/architecture.md opens with the steps of the pipeline; these tests keep its two lists
and the code's tuples (ingest/prepare.py PREPARE_STEPS, ingest/pipeline.py STEPS) equal."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.pipeline import STEPS
from ingest.prepare import PREPARE_STEPS

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
_ITEM = re.compile(r"\d+\. \*\*(.+?)\*\*")


def documented_steps(heading: str) -> list[str]:
    """The bold names of the numbered list that follows the line containing `heading`."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if heading in line)
    names: list[str] = []
    for line in lines[start + 1 :]:
        found = _ITEM.match(line)
        if found is not None:
            names.append(found.group(1))
        elif names and line.strip() and not line.startswith(" "):
            break  # the first line after the list
    return names


def test_the_documented_steps_before_the_transaction_are_prepare_steps() -> None:
    documented = documented_steps("`PREPARE_STEPS` (ingest/prepare.py)")
    assert documented == [step.name for step in PREPARE_STEPS]


def test_the_documented_steps_in_the_transaction_are_steps() -> None:
    documented = documented_steps("`STEPS` (ingest/pipeline.py)")
    assert documented == [step.name for step in STEPS]


def test_the_doc_opens_with_the_flow() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text.index("## 8 miles high") < text.index("`STEPS` (ingest/pipeline.py)")
    assert text.index("`STEPS` (ingest/pipeline.py)") < text.index("## The journal comes first")
