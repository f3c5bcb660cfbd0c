"""Loaders: each supported format, and an exact error for each kind of bad file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sealion_agents.retrievers import LoadError, load_file

from .conftest import require_retrieval_deps
from .pdfs import write_pdf

require_retrieval_deps()


def test_text_and_markdown(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("\ufeffสวัสดีครับ", encoding="utf-8")  # BOM dropped
    (tmp_path / "b.md").write_text("# Title\n\nBody", encoding="utf-8")
    [a] = load_file(tmp_path / "a.txt")
    [b] = load_file(tmp_path / "b.md")
    assert a.page_content == "สวัสดีครับ"
    assert a.metadata == {"source": str(tmp_path / "a.txt")}
    assert b.page_content == "# Title\n\nBody"


def test_html_keeps_visible_text_only(tmp_path: Path) -> None:
    (tmp_path / "p.html").write_text(
        "<html><head><title>T</title><style>p{}</style></head><body><script>var x=1;</script>"
        "<h1>Hà Nội</h1><p>là thủ đô &amp; trung tâm</p></body></html>",
        encoding="utf-8",
    )
    [doc] = load_file(tmp_path / "p.html")
    assert doc.page_content == "Hà Nội\nlà thủ đô & trung tâm"


def test_pdf_gives_one_document_per_page(tmp_path: Path) -> None:
    write_pdf(tmp_path / "r.pdf", ["First page text", "Second page text"])
    docs = load_file(tmp_path / "r.pdf")
    assert [d.page_content for d in docs] == ["First page text", "Second page text"]
    assert [d.metadata["page"] for d in docs] == [1, 2]


def test_docx(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("ภาษาไทย")
    document.save(tmp_path / "d.docx")
    [doc] = load_file(tmp_path / "d.docx")
    assert doc.page_content == "ภาษาไทย"


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.txt", b"", "empty file (0 bytes); nothing to index"),
        ("blank.txt", b" \n\t\n", "no extractable text"),
        ("bin.txt", b"\x7fELF\x00\x00\x01", "looks like a binary file (NUL bytes), not text"),
        ("latin1.txt", "café".encode("latin-1"), "invalid UTF-8 at byte 3; re-save the file"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage", "not a readable PDF"),
        ("image.png", b"\x89PNG\r\n", "unsupported file type '.png'"),
    ],
)
def test_bad_files_raise_a_clear_error(
    tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError) as info:
        load_file(path)
    assert info.value.source == str(path)
    assert info.value.problem.startswith(problem)


def test_scanned_pdf_asks_for_ocr(tmp_path: Path) -> None:
    """A PDF whose pages hold no text layer (a scan) is refused with what to do."""
    from .pdfs import write_pdf

    path = write_pdf(tmp_path / "scan.pdf", ["", ""])
    with pytest.raises(LoadError) as info:
        load_file(path)
    assert info.value.problem.startswith("no extractable text")
    assert "a scanned PDF needs OCR first" in info.value.problem


def test_file_larger_than_the_limit_is_refused_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:  # sparse: 64 GiB on paper, no disk used
        f.truncate(64 * 1024**3)
    with pytest.raises(LoadError, match="file is 68,719,476,736 bytes, above max_file_bytes"):
        load_file(path)


def test_undecodable_file_name_becomes_valid_utf8(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    with open(raw, "wb") as f:
        f.write(b"coffee")
    [doc] = load_file(os.fsdecode(raw))
    assert doc.metadata["source"] == f"{tmp_path}/caf\\xe9.txt"
    doc.metadata["source"].encode("utf-8")  # would raise on surrogates


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_files_are_read_by_their_byte_order_mark(
    tmp_path: Path, encoding: str
) -> None:
    import codecs

    boms = {
        "utf-16-le": codecs.BOM_UTF16_LE,
        "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE,
        "utf-32-be": codecs.BOM_UTF32_BE,
    }
    text = "สวัสดีครับ ยินดีต้อนรับสู่สิงคโปร์\nXin chào."
    path = tmp_path / "notes.txt"
    path.write_bytes(boms[encoding] + text.encode(encoding))
    (doc,) = load_file(path)
    assert doc.page_content == text


def test_docx_that_expands_a_thousandfold_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", " " * 20_000_000)  # 20 MB of blanks
    assert path.stat().st_size < 100_000  # compressed: a thousandfold smaller
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def recording_open(self: zipfile.ZipFile, name: object, *args: object, **kwargs: object):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", recording_open)
    with pytest.raises(LoadError) as info:
        load_file(path, max_file_bytes=1_000_000)
    assert info.value.problem.startswith("expands to 20,000,")
    assert "archive bomb" in info.value.problem
    assert "word/document.xml" not in opened  # refused from the archive's directory alone


def test_docx_bomb_under_the_size_bound_is_refused_by_its_ratio(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", " " * 40_000_000)  # 40 MB: under 4 x 64 MB
    with pytest.raises(LoadError) as info:
        load_file(path)
    assert "times (to 40,000," in info.value.problem and "archive bomb" in info.value.problem


def test_pdf_whose_streams_expand_past_the_bound_is_refused(tmp_path: Path) -> None:
    """A small PDF of compressed page streams that decompress to far more text than allowed."""
    from .pdfs import write_pdf

    pages = 4
    path = write_pdf(tmp_path / "bomb.pdf", ["SEA " * 50_000] * pages, compress=True)
    assert path.stat().st_size < 10_000  # 800 KB of text in a few KB
    with pytest.raises(LoadError) as info:
        load_file(path, max_file_bytes=100_000)
    assert info.value.problem.startswith("expands to more than 400,000 bytes of text by page 3")
    assert len(load_file(path, max_file_bytes=1_000_000)) == pages  # within the bound: read


def test_html_table_cells_and_list_items_are_not_glued(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text(
        "<table><tr><td>Annual</td><td>14 <b>days</b></td></tr></table>"
        "<ul><li>Sick</li><li>Maternity</li></ul>",
        encoding="utf-8",
    )
    [doc] = load_file(tmp_path / "t.html")
    assert doc.page_content == "Annual\n14 days\nSick\nMaternity"
