"""The registered letter: how many formal notices one core renders per second, and what one weighs.

The letters are those of EXAMPLES.md, each to another client for another amount, rendered in this process
one after another, as the worker that prepares them would. The rate counts the CPU time of the rendering
thread, which is what one core gives it, so that other work on the machine (or threads an earlier bench
left running) does not lower the figure; the wall time is printed beside it. The first rendering of a
process parses the fonts (a Lambda cold start pays it once): it is shown apart and left out of the rate.
"""

from __future__ import annotations

import time
from decimal import Decimal

from bench.figures import Figure, note
from chalicelib.adapters.letter_pdf import render_formal_notice
from chalicelib.domain.letters import FormalNoticeLetter
from tests.letter_examples import example_letter

LETTERS = 200


def run() -> list[Figure]:
    letters = [_letter(number) for number in range(LETTERS + 1)]
    started = time.perf_counter()
    render_formal_notice(letters[0])
    first_ms = (time.perf_counter() - started) * 1000
    started, started_cpu = time.perf_counter(), time.thread_time()
    sizes = [len(render_formal_notice(letter)) for letter in letters[1:]]
    elapsed, elapsed_cpu = time.perf_counter() - started, time.thread_time() - started_cpu
    note(
        f"Letters: {LETTERS} formal notices in {elapsed_cpu:.2f} s of CPU ({elapsed:.2f} s of wall time), "
        f"the process's first in {first_ms:.0f} ms"
    )
    return [
        Figure(
            name="letter_pdf_per_second",
            value=round(LETTERS / elapsed_cpu, 1),
            target=50,
            better="higher",
            unit="letters/s",
            issue=14,
        ),
        Figure(
            name="letter_pdf_bytes", value=max(sizes), target=60_000, better="lower", unit="bytes", issue=14
        ),
        Figure(
            name="letter_pdf_first_ms",
            value=round(first_ms, 1),
            target=None,
            better="lower",
            unit="ms",
            issue=14,
            detail="the process's first letter: the fonts parsed, once per cold start",
        ),
    ]


def _letter(number: int) -> FormalNoticeLetter:
    return example_letter(
        client_name=f"Mme Claire Dupont-{number:04d}",
        amount_due=Decimal("1234.50") + number,
        letter_id=f"LTR-BENCH{number:020d}",
    )
