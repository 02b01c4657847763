"""The default templates, rendered in every variant, are the files of `tests/golden/` a reviewer reads:
a change of wording shows there as a diff (regenerate with `python -m tests.golden.emails`)."""

from __future__ import annotations

import pytest

from chalicelib.domain.communications import CommunicationKind
from tests.golden.emails import GOLDEN, golden_text, variants

VARIANTS = list(variants())


@pytest.mark.parametrize(("name", "kind", "variables"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_each_default_email_renders_as_its_golden_file_says(
    name: str, kind: CommunicationKind, variables: dict[str, str]
) -> None:
    golden = GOLDEN / f"{name}.txt"
    assert golden.exists(), f"{golden.name} is missing: run python -m tests.golden.emails"
    assert golden_text(kind, variables) == golden.read_text(encoding="utf-8")


def test_every_kind_has_a_golden_file_and_no_golden_file_is_left_over() -> None:
    assert {kind for _, kind, _ in VARIANTS} == set(CommunicationKind)
    assert {p.stem for p in GOLDEN.glob("*.txt")} == {name for name, _, _ in VARIANTS}


def test_the_golden_files_hold_both_parties_and_both_payment_cases_of_the_dunning_kinds() -> None:
    names = {name for name, _, _ in VARIANTS}
    for party in ("client", "apporteur"):
        for payment in ("no_payment", "partial_payment"):
            assert f"formal_notice--{party}--{payment}" in names
