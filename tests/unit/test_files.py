"""Content sniffing: the first bytes decide, not the name or the declared type."""

from __future__ import annotations

import pytest

from chalicelib.domain.files import mismatch, sniffed_type


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"%PDF-1.7\n%\xe2\xe3", "application/pdf"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypheic", "image/heic"),
        (b"MZ\x90\x00\x03\x00", None),
        (b"\x7fELF\x02\x01", None),
        (b"", None),
    ],
)
def test_the_first_bytes_tell_the_type(head: bytes, kind: str | None) -> None:
    assert sniffed_type(head) == kind


def test_a_renamed_executable_is_refused_with_a_reason() -> None:
    assert mismatch("application/pdf", b"MZ\x90\x00") == "the file's content is not application/pdf"


def test_a_png_declared_as_a_pdf_is_named_for_what_it_is() -> None:
    assert (
        mismatch("application/pdf", b"\x89PNG\r\n\x1a\n")
        == "the file is a image/png file, not the declared application/pdf"
    )


def test_a_matching_file_passes() -> None:
    assert mismatch("application/pdf", b"%PDF-1.4") is None
