"""How values read in a French email: dates `01/03/2027`, amounts `1 234,50 €`.

API.md fixes the typography: a narrow no-break space between thousands and a no-break space before the
currency sign, so that an amount never wraps in the middle in a mail client.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

NARROW_NO_BREAK_SPACE = "\u202f"
NO_BREAK_SPACE = "\u00a0"
_CURRENCY_SIGNS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF", "XPF": "F CFP"}


def french_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def french_amount(amount: Decimal, currency: str = "EUR") -> str:
    """`Decimal("1234.5")` → `1 234,50 €` (cents always shown, rounded half up)."""
    cents = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if cents < 0 else ""
    units, _, decimals = f"{abs(cents):.2f}".partition(".")
    groups: list[str] = []
    while units:
        groups.insert(0, units[-3:])
        units = units[:-3]
    number = f"{sign}{NARROW_NO_BREAK_SPACE.join(groups)},{decimals}"
    return f"{number}{NO_BREAK_SPACE}{_CURRENCY_SIGNS.get(currency, currency)}"


_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


def french_long_date(day: date) -> str:
    """The date a letter is written on, in words: `1er mars 2027`, `12 mars 2027` (the first of a month is
    an ordinal in French)."""
    number = "1er" if day.day == 1 else str(day.day)
    return f"{number}{NO_BREAK_SPACE}{_MONTHS[day.month - 1]} {day.year}"
