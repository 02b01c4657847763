"""`make bench`: run every bench, print one line per figure, and write bench/results.json.

Figures, not assertions: the exit status is 0 even when a target is missed; missed targets are flagged.
"""

from __future__ import annotations

from collections.abc import Callable

from bench import aws_calls, cold_import, collection, dunning, letters, partners, webhooks
from bench.figures import RESULTS, Figure, table, write_results

BENCHES: tuple[Callable[[], list[Figure]], ...] = (
    aws_calls.run,
    collection.run,
    partners.run,
    dunning.run,
    letters.run,
    webhooks.run,
    cold_import.run,
)


def _target(figure: Figure) -> str:
    if figure.target is None:
        return "-"
    return f"{'≤' if figure.better == 'lower' else '≥'} {figure.target:g}"


def _status(figure: Figure) -> str:
    if figure.target is None:
        return ""
    if figure.missed:
        return "OVER TARGET" if figure.better == "lower" else "UNDER TARGET"
    return "ok"


def main() -> int:
    figures = [figure for bench in BENCHES for figure in bench()]
    rows = [(f.name, f"{f.value:g}", f.unit, _target(f), _status(f)) for f in figures]
    print(table(("figure", "value", "unit", "target", "status"), rows))
    write_results(figures)
    missed = [f.name for f in figures if f.missed]
    print(
        f"\n{len(missed)} figure(s) off target: {', '.join(missed)}" if missed else "\nEvery target is met."
    )
    print(f"Written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
