"""What a file really is, from its first bytes: an upload is accepted only if they match its declared type,
so a renamed executable is rejected with a reason, never taken for a PDF."""

from __future__ import annotations

from dataclasses import dataclass

SNIFF_BYTES = 16


@dataclass(frozen=True)
class StoredObject:
    """What the check of an upload reads of its object: its size, its first bytes, and the version
    those bytes belong to (so that only this version is ever served)."""

    size: int
    head: bytes
    version: str | None


_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
}


def sniffed_type(head: bytes) -> str | None:
    """The type the first bytes show, or None when they match nothing Relais accepts."""
    for content_type, signatures in _SIGNATURES.items():
        if head.startswith(signatures):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
        return "image/heic"
    return None


def mismatch(declared: str, head: bytes) -> str | None:
    """Why the bytes do not match the declared type, or None when they do."""
    found = sniffed_type(head)
    if found == declared:
        return None
    if found is None:
        return f"the file's content is not {declared}"
    return f"the file is a {found} file, not the declared {declared}"
