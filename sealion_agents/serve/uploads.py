"""Uploaded files: read as they arrive, named safely, typed by content.

The size is counted while reading, so a too-large upload is refused before it is stored.

data flow: the request body, chunk by chunk -> python-multipart's streaming parser -> each
file part written to ``tmp/<n>`` under a fresh folder (never a name the client chose) while
the bytes are counted (over the limit: :class:`UploadError` 413 at once) -> ``safe_filename``
(no folders, no NUL or control characters, at most 200 characters; Thai and spaces are
fine) -> ``check_content``: the bytes must be what the suffix says (415 otherwise).
"""

from __future__ import annotations

import os
import unicodedata
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from sealion_agents.retrievers.loaders import HTML_SUFFIXES, SUPPORTED_SUFFIXES, TEXT_SUFFIXES

__all__ = ["MAX_NAME", "UploadError", "Uploaded", "check_content", "read_uploads", "safe_filename"]

MAX_NAME = 200
"""Longest file name kept (characters)."""
_SNIFF = 8192
_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")


class UploadError(Exception):
    """An upload refused; ``status`` is the HTTP status to answer (400, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Uploaded:
    """One received file: the name the client gave (made safe) and where its bytes are."""

    name: str
    path: Path
    size: int = 0


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    upload: Uploaded | None = None
    handle: BinaryIO | None = None


def safe_filename(raw: str) -> str:
    """The file's own name, safe to store: folders dropped, control characters refused.

    Raises:
        UploadError: empty, NUL or control characters, "." or "..", longer than 200 characters.
    """
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if any(unicodedata.category(c) == "Cc" for c in raw):
        raise UploadError(400, f"file name {raw!r} holds control characters (NUL...); rename it")
    if name in {"", ".", ".."}:
        raise UploadError(400, f"file name {raw!r} names no file; send the file's own name")
    if len(name) > MAX_NAME:
        raise UploadError(400, f"file name is {len(name)} characters long; use at most {MAX_NAME}")
    return unicodedata.normalize("NFC", name)


def check_content(path: Path, name: str) -> None:
    """Raise :class:`UploadError` 415 unless the file's bytes are of the type its suffix says."""
    suffix = Path(name).suffix.lower()
    supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
    if suffix not in SUPPORTED_SUFFIXES:
        raise UploadError(
            415, f"{name}: file type {suffix or '(no suffix)'!r} is not supported; use {supported}"
        )
    with open(path, "rb") as f:
        head = f.read(_SNIFF)
    if suffix == ".pdf":
        ok = head.startswith(b"%PDF-")
        what = "a PDF"
    elif suffix == ".docx":
        ok = head.startswith(b"PK\x03\x04") and _is_docx(path)
        what = "a Word .docx document"
    else:
        ok = _looks_like_text(head)
        what = "HTML text" if suffix in HTML_SUFFIXES else "UTF-8 (or UTF-16/32) text"
        assert suffix in TEXT_SUFFIXES | HTML_SUFFIXES
    if not ok:
        raise UploadError(
            415, f"{name}: the content is not {what}, although the name ends in {suffix}"
        )


def _is_docx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _looks_like_text(head: bytes) -> bool:
    if head.startswith(_BOMS) or head[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        return True
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the end of the sample is fine
        return exc.start >= len(head) - 3
    return True


class _Reader:
    """python-multipart callbacks that write file parts to disk and count every byte."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[Uploaded] = []
        self.problems: list[UploadError] = []
        self.total = 0
        self.part = _Part()
        self._field = b""
        self._value = b""

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        raw = options.get(b"filename")
        if raw is None:
            return
        try:
            name = safe_filename(raw.decode("utf-8"))
        except UnicodeDecodeError:
            self.problems.append(UploadError(400, "a file name is not valid UTF-8; rename it"))
            name = "unnamed"
        except UploadError as exc:
            self.problems.append(exc)
            name = "unnamed"
        upload = Uploaded(name=name, path=self.folder / f"part-{len(self.files)}")
        self.part.upload = upload
        self.part.handle = open(upload.path, "wb")  # noqa: SIM115 - closed at the part's end
        self.files.append(upload)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        self.total += size
        if self.part.upload is not None and self.part.handle is not None:
            self.part.upload.size += size
            self.part.handle.write(data[start:end])

    def on_part_end(self) -> None:
        self.close()

    def close(self) -> None:
        if self.part.handle is not None:
            self.part.handle.close()
            self.part.handle = None


async def read_uploads(
    content_type: str, body: AsyncIterator[bytes], folder: Path, max_bytes: int
) -> list[Uploaded]:
    """Parse a multipart body into files under ``folder`` (plain fields are counted, not kept).

    Raises:
        UploadError: not multipart (400), more than ``max_bytes`` in all (413), a bad name.
    """
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(400, "send the files as multipart/form-data (field 'files')")
    folder.mkdir(parents=True, exist_ok=True)
    reader = _Reader(folder)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in body:
            parser.write(chunk)
            if reader.total > max_bytes:
                raise UploadError(
                    413,
                    f"the upload is larger than the limit of {max_bytes:,} bytes; send smaller "
                    "files or ask the operator to raise --max-upload-mb",
                )
        parser.finalize()
    except UploadError:
        raise
    except Exception as exc:  # python-multipart's own parse errors
        raise UploadError(400, f"the multipart body could not be read ({exc})") from exc
    finally:
        reader.close()
    if reader.problems:
        raise reader.problems[0]
    if not reader.files:
        raise UploadError(400, "no file in the upload: send them in the multipart field 'files'")
    for upload in reader.files:
        os.chmod(upload.path, 0o600)
    return reader.files
