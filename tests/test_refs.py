"""Reference numbers: readable, checked, and found in every common subject form."""

from __future__ import annotations

import random

import pytest

from domain.refs import ALPHABET, find_references, new_reference, normalise


def test_references_avoid_ambiguous_characters_and_carry_a_valid_check() -> None:
    rng = random.Random(7)
    refs = {new_reference(rng.randrange) for _ in range(2000)}
    assert len(refs) == 2000
    for ref in refs:
        assert len(ref) == 9 and ref[4] == "-"
        assert not set(ref.replace("-", "")) & set("01OIL")
        assert normalise(ref) == ref


def test_every_single_typo_and_neighbour_swap_is_detected() -> None:
    ref = new_reference(random.Random(1).randrange).replace("-", "")
    for position in range(len(ref)):
        for char in ALPHABET:
            if char != ref[position]:
                typo = ref[:position] + char + ref[position + 1 :]
                assert normalise(typo) is None, typo
    for position in range(len(ref) - 1):
        swapped = ref[:position] + ref[position + 1] + ref[position] + ref[position + 2 :]
        if swapped != ref:
            assert normalise(swapped) is None, swapped


@pytest.mark.parametrize(
    "template",
    [
        "[#{ref}] Para çekme",
        "Re: [#{ref}] Para çekme",
        "Ynt: RE: [#{ref}] Para çekme",
        "YNT: Fwd: Ticket#{ref}",
        "İlt: ticket #{ref} hakkında",
        "Talep no: {ref}",
        "re: [#{lower}]",
        "Fwd: Ticket#{compact}",
    ],
)
def test_reference_found_in_common_subject_forms(template: str) -> None:
    ref = new_reference(random.Random(3).randrange)
    subject = template.format(ref=ref, lower=ref.lower(), compact=ref.replace("-", ""))
    assert find_references(subject) == [ref]


def test_invalid_or_random_codes_are_not_references() -> None:
    ref = new_reference(random.Random(5).randrange)
    broken = ref[:-1] + next(c for c in ALPHABET if c != ref[-1])
    assert find_references(f"[#{broken}] hello") == []
    assert find_references("Order #ABCD-EFGH and invoice 2026-1234") == []
