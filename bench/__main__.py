"""`make bench`: run every bench, print one table of every figure with its target and whether it is met,
and write the same figures to bench/results.json.

Figures, not assertions: the exit status is 0 even when a target is missed; missed targets are flagged.
The benches' remarks on how they ran go to stderr, so that standard output is the table alone.
"""

from __future__ import annotations

from collections.abc import Callable

from bench import (
    aws_calls,
    cold_import,
    collection,
    dossier_life,
    dunning,
    letters,
    partners,
    webhooks,
    worker_calls,
)
from bench.figures import RESULTS, Figure, table, write_results

BENCHES: tuple[Callable[[], list[Figure]], ...] = (
    aws_calls.run,
    worker_calls.run,
    collection.run,
    dossier_life.run,
    partners.run,
    dunning.run,
    letters.run,
    webhooks.run,
    cold_import.run,
)


def _value(figure: Figure) -> str:
    return "-" if figure.value is None else f"{figure.value:g}"


def _target(figure: Figure) -> str:
    if figure.target is None:
        return "-"
    return f"{'≤' if figure.better == 'lower' else '≥'} {figure.target:g}"


def _met(figure: Figure) -> str:
    if figure.target is None:
        return ""
    return {True: "yes", False: "NO", None: "?"}[figure.met]


def main() -> int:
    figures = [figure for bench in BENCHES for figure in bench()]
    rows = [
        (f.name, _value(f), f.unit, _target(f), _met(f), "" if f.issue is None else f"#{f.issue}", f.detail)
        for f in figures
    ]
    print(table(("figure", "value", "unit", "target", "met", "issue", "detail"), rows))
    write_results(figures)
    missed = [f.name for f in figures if f.missed]
    unmeasured = [f.name for f in figures if f.target is not None and f.value is None]
    print(
        f"\n{len(missed)} figure(s) off target: {', '.join(missed)}"
        if missed
        else "\nEvery target measured is met."
    )
    if unmeasured:
        print(f"{len(unmeasured)} figure(s) with a target not measured yet: {', '.join(unmeasured)}")
    print(f"Written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
