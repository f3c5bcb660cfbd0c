"""Load .txt, .md, .html, .pdf and .docx files (and whole folders) into page Documents.

data flow: path -> size / binary / encoding checks -> text per page -> Document(page_content,
metadata={"source", "page"?}). Every problem a file can have becomes a :class:`LoadError` that
names the file, the problem and what to do; callers (ingestion) report it and go on.

Web loaders (langchain-community's): loader -> :func:`web_loaders` (copies that raise on HTTP
4xx/5xx; a WebBaseLoader split per URL) -> page soup -> :func:`soup_text` (a line per block
element) -> Document. HTML text from files and pages never glues two blocks together.
"""

from __future__ import annotations

import copy
import html.parser
import logging
import os
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from sealion_agents.retrievers._deps import require

from sealion_agents.errors import SeaLionError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "SUPPORTED_SUFFIXES",
    "LoadError",
    "iter_files",
    "load_file",
    "soup_text",
    "source_name",
    "web_loaders",
]

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
"""Files above this size are refused (whole text is held in memory while splitting)."""
MAX_EXPANSION = 4
"""A compressed document (.docx) may expand to at most this many times max_file_bytes."""
MAX_RATIO = 100
"""...and, beyond 16 MiB, to at most this many times its own size (real documents stay under
about 20x; archive bombs reach 1000x)."""
_RATIO_FLOOR = 16 * 1024 * 1024

_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


class LoadError(SeaLionError):
    """A file could not be read; the message names the problem and what to do."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


def source_name(path: str | os.PathLike[str]) -> str:
    r"""The ``source`` metadata for a path: absolute, and always valid UTF-8.

    Undecodable bytes in a file name (allowed on Linux) are written as ``\xNN`` escapes.
    """
    raw = os.fsencode(os.path.abspath(path))
    return raw.decode("utf-8", "backslashreplace")


def iter_files(
    path: str | os.PathLike[str], on_error: Callable[[OSError], None] | None = None
) -> Iterator[Path]:
    """Yield ``path`` itself, or every file below it in sorted order.

    Symbolic links below a folder are yielded as they are (callers decide; ``ingest`` does not
    follow them), linked folders are not entered, and folders that cannot be read go to
    ``on_error``.
    """
    p = Path(path)
    if not p.is_dir():
        yield p
        return
    for root, dirs, files in os.walk(p, onerror=on_error):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def _check_size(path: Path, source: str, max_bytes: int) -> int:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError(source, f"cannot read the file ({exc.strerror}); check it exists") from exc
    if not path.is_file():
        raise LoadError(source, "not a regular file; pass files or folders")
    if size == 0:
        raise LoadError(source, "empty file (0 bytes); nothing to index")
    if size > max_bytes:
        raise LoadError(
            source,
            f"file is {size:,} bytes, above max_file_bytes={max_bytes:,}; split it into smaller "
            "files or raise max_file_bytes if the machine has the memory",
        )
    return size


def _read_text(path: Path, source: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(
            source, f"cannot read the file ({exc.strerror}); check its permissions"
        ) from exc
    for bom, encoding in _BOMS:  # UTF-16/32 text holds NUL bytes: known by its byte-order mark
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise LoadError(
                    source, f"invalid {encoding.upper()} at byte {exc.start}; re-save as UTF-8"
                ) from exc
    if b"\x00" in data[:8192]:
        raise LoadError(
            source,
            "looks like a binary file (NUL bytes), not text; remove it or "
            "convert it to .txt/.md/.html/.pdf",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(
            source,
            f"invalid UTF-8 at byte {exc.start}; re-save the file as UTF-8 "
            "(e.g. iconv -f <encoding> -t UTF-8)",
        ) from exc
    return text


BLOCK_TAGS = frozenset(
    "address article aside blockquote br caption dd details div dl dt figcaption figure "
    "footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table "
    "td th title tr ul".split()
)
"""Elements that start a new line of text; others (<b>, <a>, <span>...) stay inside theirs."""


class _HTMLText(html.parser.HTMLParser):
    """Visible text of an HTML page; block elements become line breaks."""

    _SKIP = frozenset({"script", "style", "noscript", "template", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _lines(text: str) -> str:
    """``text`` with runs of spaces made one space and blank lines dropped."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _html_text(raw: str) -> str:
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    return _lines("".join(parser.parts))


def _pdf_pages(path: Path, source: str, max_bytes: int) -> list[tuple[int, str]]:
    """Text per page; compressed streams may not expand past ``MAX_EXPANSION * max_bytes``.

    pypdf bounds each stream it decompresses; the running total bounds the whole document.
    """
    pypdf = require("pypdf", "Loading PDF files")
    limit = MAX_EXPANSION * max_bytes
    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as exc:
                raise LoadError(source, "encrypted PDF; decrypt it first") from exc
        pages: list[tuple[int, str]] = []
        total = 0
        for i, page in enumerate(reader.pages):
            text = page.extract_text() or ""
            total += len(text.encode("utf-8"))
            if total > limit:
                raise LoadError(
                    source,
                    f"expands to more than {limit:,} bytes of text by page {i + 1} "
                    f"({MAX_EXPANSION} x max_file_bytes); a decompression bomb or a huge "
                    "document: split it, or raise max_file_bytes",
                )
            pages.append((i + 1, text))
        return pages
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many types for broken files
        raise LoadError(
            source, f"not a readable PDF ({type(exc).__name__}: {exc}); re-export or repair it"
        ) from exc


def _check_expansion(path: Path, source: str, max_bytes: int) -> None:
    """Refuse a zip-based document whose parts expand beyond ``MAX_EXPANSION * max_bytes``."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise LoadError(source, f"not a readable .docx ({type(exc).__name__}: {exc})") from exc
    limit = MAX_EXPANSION * max_bytes
    if expanded > limit:
        raise LoadError(
            source,
            f"expands to {expanded:,} bytes, above {limit:,} ({MAX_EXPANSION} x max_file_bytes); "
            "an archive bomb or a huge document: split it, or raise max_file_bytes",
        )
    size = max(1, path.stat().st_size)
    if expanded > _RATIO_FLOOR and expanded > MAX_RATIO * size:
        raise LoadError(
            source,
            f"expands {expanded // size:,} times (to {expanded:,} bytes), above {MAX_RATIO}x: "
            "an archive bomb, not a document",
        )


def _docx_text(path: Path, source: str) -> str:
    docx = require("docx", "Loading .docx files")
    try:
        document = docx.Document(str(path))
    except Exception as exc:
        raise LoadError(source, f"not a readable .docx ({type(exc).__name__}: {exc})") from exc
    return "\n".join(p.text for p in document.paragraphs)


def load_file(
    path: str | os.PathLike[str], max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> list[Document]:
    """Load one file as page Documents (one per PDF page, one for other formats).

    Raises:
        LoadError: unsupported type, empty, too large, binary, invalid UTF-8, corrupt PDF,
            or no extractable text.
    """
    p = Path(path)
    source = source_name(p)
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(
            source,
            f"unsupported file type {suffix or '(no suffix)'!r}; supported: "
            + ", ".join(sorted(SUPPORTED_SUFFIXES)),
        )
    _check_size(p, source, max_file_bytes)
    if suffix == ".pdf":
        pages = _pdf_pages(p, source, max_file_bytes)
    elif suffix == ".docx":
        _check_expansion(p, source, max_file_bytes)
        pages = [(0, _docx_text(p, source))]
    elif suffix in HTML_SUFFIXES:
        pages = [(0, _html_text(_read_text(p, source)))]
    else:
        pages = [(0, _read_text(p, source))]
    docs = []
    for number, text in pages:
        if not text.strip():
            continue
        meta: dict[str, object] = {"source": source}
        if number:
            meta["page"] = number
        docs.append(Document(page_content=text, metadata=meta))
    if not docs:
        hint = " (a scanned PDF needs OCR first)" if suffix == ".pdf" else ""
        raise LoadError(source, f"no extractable text{hint}")
    return docs


# -- web pages: langchain-community's WebBaseLoader and loaders like it --------------------

_STATUS_SWITCHES = ("raise_for_status", "check_response_status")
"""Loader attributes that make a web loader refuse HTTP error pages (4xx, 5xx)."""
_SEPARATED = {"separator": "\n", "strip": True}
"""BeautifulSoup get_text arguments that keep the texts of elements apart."""


def web_loaders(loader: Any) -> list[Any]:
    """``loader`` as loaders that never return an HTTP error page as a document.

    A loader with a switch in ``_STATUS_SWITCHES`` turned off is copied with it on (the
    caller's object is not changed). A WebBaseLoader becomes one copy per URL (a dead link
    fails alone) whose text comes from :func:`soup_text`; other loaders with
    ``bs_get_text_kwargs`` get a newline separator. A separator the user set is kept.
    """
    changes: dict[str, Any] = {s: True for s in _STATUS_SWITCHES if getattr(loader, s, 0) is False}
    text_kwargs = getattr(loader, "bs_get_text_kwargs", None)
    own_text = not isinstance(text_kwargs, dict) or "separator" in text_kwargs
    if not _is_web_base(loader):
        if isinstance(text_kwargs, dict) and not own_text:
            changes["bs_get_text_kwargs"] = {**_SEPARATED, **text_kwargs}
        return [_copy(loader, changes)] if changes else [loader]
    pages = [_copy(loader, {**changes, "web_paths": [url]}) for url in loader.web_paths]
    if not own_text:
        for page in pages:
            page.lazy_load = partial(_web_page, page)
    return pages


def _is_web_base(loader: Any) -> bool:
    """Whether ``loader`` loads as langchain-community's WebBaseLoader: a page per URL."""
    module = sys.modules.get("langchain_community.document_loaders.web_base")
    web_base = getattr(module, "WebBaseLoader", None)
    return (
        web_base is not None
        and isinstance(loader, web_base)
        and type(loader).lazy_load is web_base.lazy_load
    )


def _copy(loader: Any, changes: dict[str, Any]) -> Any:
    new = copy.copy(loader)
    for name, value in changes.items():
        setattr(new, name, value)
    return new


def _web_page(page: Any) -> Iterator[Document]:
    """The page of a one-URL WebBaseLoader, as its ``lazy_load`` gives it but for the text."""
    url = page.web_paths[0]
    soup = page.scrape(parser="xml" if url.endswith(".xml") else None)
    metadata = {"source": url}
    if title := soup.find("title"):
        metadata["title"] = title.get_text()
    description = soup.find("meta", attrs={"name": "description"})
    if description is not None and description.get("content"):
        metadata["description"] = description["content"]
    if (root := soup.find("html")) and root.get("lang"):
        metadata["language"] = root["lang"]
    yield Document(page_content=soup_text(soup), metadata=metadata)


def soup_text(soup: Any) -> str:
    """The text of a BeautifulSoup page, a line per block element (:data:`BLOCK_TAGS`).

    Inline elements stay in their line: ``<p>Full-time <b>staff</b> get</p>`` gives
    ``Full-time staff get``. Changes ``soup`` (marks its blocks).
    """
    for tag in soup.find_all(BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    return _lines(soup.get_text())
