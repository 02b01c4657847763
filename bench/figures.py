"""The one shape every bench figure takes, how figures are shown, and the file `make bench` leaves behind.

A figure is a measurement and, when an issue set one, the value we aim for; `issue` names the issue that
asked for it. `make bench` reports and never fails: a missed target is flagged in the table, not raised.
A figure an issue named but nothing measures yet has no value, and says why in its `detail`. A new figure
is a new module returning a list of `Figure`s, added to `bench.__main__`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True, kw_only=True)
class Figure:
    name: str
    value: float | None
    target: float | None
    better: Literal["lower", "higher"]
    unit: str
    issue: int | None = None
    detail: str = ""
    """What the value is made of (the calls counted, the items read), or why there is none."""

    @property
    def met(self) -> bool | None:
        """None when there is no target, or no value to hold against it."""
        if self.target is None or self.value is None:
            return None
        return self.value <= self.target if self.better == "lower" else self.value >= self.target

    @property
    def missed(self) -> bool:
        """A target exists and the value sits on its wrong side."""
        return self.met is False


def write_results(figures: Iterable[Figure], path: Path = RESULTS) -> None:
    payload = {"figures": [{**asdict(figure), "met": figure.met} for figure in figures]}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def note(text: str) -> None:
    """A bench's remark on how it ran (seeding time, emulator speed): on stderr, so that standard output
    holds the one table of figures."""
    print(text, file=sys.stderr)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Plain-text columns, wide enough for their longest cell, under a rule."""
    cells = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
