"""The one shape every bench figure takes, how figures are shown, and the file `make bench` leaves behind.

A figure is a measurement and, when there is one, the value we aim for. `make bench` reports and never
fails: a missed target is flagged in the table, not raised. A new figure is a new module returning a list
of `Figure`s, added to `bench.__main__`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True, kw_only=True)
class Figure:
    name: str
    value: float
    target: float | None
    better: Literal["lower", "higher"]
    unit: str

    @property
    def missed(self) -> bool:
        """A target exists and the value sits on its wrong side."""
        if self.target is None:
            return False
        return self.value > self.target if self.better == "lower" else self.value < self.target


def write_results(figures: Iterable[Figure], path: Path = RESULTS) -> None:
    payload = {"figures": [asdict(figure) for figure in figures]}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


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
