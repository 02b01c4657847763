"""The broker's look on the portal page: a brand colour white text stays readable on (WCAG AA), a
retention within bounds, and a logo recognised by its bytes, not by what its header claims."""

from __future__ import annotations

import pytest

from chalicelib.domain.accounts import (
    checked_brand_color,
    checked_retention_days,
    contrast_with_white,
    sniffed_logo,
)
from chalicelib.domain.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32


def test_white_on_black_is_the_widest_contrast_and_white_on_white_the_narrowest() -> None:
    assert contrast_with_white("#000000") == pytest.approx(21.0)
    assert contrast_with_white("#FFFFFF") == pytest.approx(1.0)


def test_a_dark_blue_is_accepted_and_upper_cased() -> None:
    assert checked_brand_color("#1f4e79") == "#1F4E79"


@pytest.mark.parametrize("color", ["#FFCC00", "#777777", "#FF0000"])
def test_a_colour_white_text_cannot_be_read_on_is_refused(color: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        checked_brand_color(color)
    assert refused.value.details[0].field == "brand_color"
    assert "4.5:1" in refused.value.message


@pytest.mark.parametrize("color", ["1F4E79", "#1F4E7", "#GGGGGG", "blue"])
def test_a_colour_not_written_hash_and_six_hex_digits_is_refused(color: str) -> None:
    with pytest.raises(InvalidInput):
        checked_brand_color(color)


def test_retention_is_kept_between_30_days_and_ten_years() -> None:
    assert checked_retention_days(30) == 30
    assert checked_retention_days(3650) == 3650
    for days in (29, 3651, 0):
        with pytest.raises(InvalidInput):
            checked_retention_days(days)


def test_a_logo_is_png_or_jpeg_by_its_first_bytes() -> None:
    assert sniffed_logo(PNG, "image/png").content_type == "image/png"
    assert sniffed_logo(JPEG, "image/jpeg").content_type == "image/jpeg"
    with pytest.raises(UnsupportedMediaType):
        sniffed_logo(b"GIF89a" + b"\x00" * 10, "image/png")
    with pytest.raises(InvalidInput):
        sniffed_logo(PNG, "image/jpeg")


def test_a_logo_above_200_kb_is_too_large() -> None:
    assert sniffed_logo(PNG + b"\x00" * (200 * 1024 - len(PNG)), "image/png").data.startswith(PNG)
    with pytest.raises(PayloadTooLarge):
        sniffed_logo(PNG + b"\x00" * (200 * 1024), "image/png")
