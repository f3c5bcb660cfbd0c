"""Uploads and ingestion jobs: size counted while reading (413), type by content (415),
names that cannot escape the store, archive bombs and bad files failing only their own job,
progress as server-sent events, cancel, and nothing already stored ever lost."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve.conftest import Served, iter_sse_events, make_keys, sse_events, start, upload
from tests.serve_model import DOCS

LIMIT_MB = 2


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("uploads")
    keys = make_keys(data_dir, ("acme",))
    flags = ("--max-upload-mb", str(LIMIT_MB), "--rate-limit", "0", "--key-parallel", "16")
    server = start(data_dir, flags)
    try:
        served = Served(server, keys, data_dir)
        with served.client() as client:
            client.post("/v1/collections", json={"name": "docs"})
            assert upload(client, "docs", DOCS)["stage"] == "done"
        yield served
    finally:
        server.stop()


def sources(client: httpx.Client, collection: str = "docs") -> dict[str, int]:
    data = client.get(f"/v1/collections/{collection}/documents").json()["data"]
    return {d["source"]: d["chunks"] for d in data}


def files_under(folder: Path) -> list[Path]:
    return [Path(root) / f for root, _, files in os.walk(folder) for f in files]


def docx_bytes(text: str) -> bytes:
    from docx import Document

    document = Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_too_large_is_413_counted_while_reading(store: Served) -> None:
    sent = {"bytes": 0}

    def body() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        boundary = b"--xyz\r\n"
        yield boundary + b'Content-Disposition: form-data; name="files"; filename="big.txt"\r\n\r\n'
        for _ in range(LIMIT_MB * 64):
            sent["bytes"] += 64 * 1024
            yield b"a" * (64 * 1024)
        yield b"\r\n--xyz--\r\n"

    with store.client() as client:
        before = sources(client)
        try:
            response = client.post(
                "/v1/collections/docs/documents",
                content=body(),
                headers={"content-type": "multipart/form-data; boundary=xyz"},
            )
            status = response.status_code
            assert "larger than the limit" in response.json()["error"]["message"]
        except httpx.HTTPError:  # the server may close while we still send: also a refusal
            status = 413
        assert status == 413
        assert sources(client) == before
    assert not files_under(store.data_dir / "uploads")


@pytest.mark.parametrize(
    ("name", "data", "fragment"),
    [
        ("photo.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not a PDF"),
        ("notes.txt", b"\x00\x01\x02binary\x00" * 50, "not UTF-8"),
        ("report.docx", b"PK\x03\x04 not really a zip", "not a Word .docx"),
        ("tool.exe", b"MZ\x90\x00", "not supported"),
        ("archive.zip", b"PK\x03\x04", "not supported"),
    ],
)
def test_type_is_checked_by_content(store: Served, name: str, data: bytes, fragment: str) -> None:
    with store.client() as client:
        before = sources(client)
        response = client.post("/v1/collections/docs/documents", files=[("files", (name, data))])
        assert response.status_code == 415, response.text
        assert fragment in response.json()["error"]["message"]
        assert sources(client) == before


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("../../../../etc/passwd.txt", "passwd.txt"),
        ("/tmp/absolute.txt", "absolute.txt"),
        ("..\\..\\windows.txt", "windows.txt"),
        ("คู่มือ พนักงาน.txt", "คู่มือ พนักงาน.txt"),
    ],
)
def test_names_cannot_escape_the_store(store: Served, name: str, stored: str) -> None:
    with store.client() as client:
        job = upload(client, "docs", {name: f"Kaya toast note for {stored}."})
        assert job["stage"] == "done" and job["files"] == [stored]
        assert stored in sources(client)
        deleted = client.delete(f"/v1/collections/docs/documents/{stored}")
        assert deleted.status_code == 200 and deleted.json()["chunks"] >= 1
    assert not Path("/etc/passwd.txt").exists() and not Path("/tmp/absolute.txt").exists()
    assert not files_under(store.data_dir / "uploads")  # uploads go once ingested


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("bad\x00name.txt", "control characters"), ("x" * 300 + ".txt", "at most 200"),
     ("..", "names no file")],
)  # fmt: skip
def test_bad_names_are_a_clear_400(store: Served, name: str, fragment: str) -> None:
    # built by hand: httpx would percent-encode a NUL in a file name
    body = (
        b'--b0\r\nContent-Disposition: form-data; name="files"; filename="'
        + name.encode()
        + b'"\r\n\r\nhi\r\n--b0--\r\n'
    )
    headers = {"content-type": "multipart/form-data; boundary=b0"}
    with store.client() as client:
        response = client.post("/v1/collections/docs/documents", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]


def test_archive_bomb_fails_its_job_and_nothing_else(store: Served) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", " " * 60_000_000)
    assert len(bomb.getvalue()) < LIMIT_MB * 1024 * 1024
    with store.client() as client:
        before = sources(client)
        job = upload(client, "docs", {"bomb.docx": bomb.getvalue()})
        assert job["stage"] == "failed"
        assert "archive bomb" in job["error"] and "bomb.docx" in job["error"]
        mixed = upload(client, "docs", {"bomb.docx": bomb.getvalue(), "ok.docx": docx_bytes(
            "Satay is grilled meat on skewers.")})  # fmt: skip
        assert mixed["stage"] == "done"
        assert mixed["results"]["ok.docx"] == "added"
        assert mixed["results"]["bomb.docx"].startswith("failed: expands")
        after = sources(client)
        assert {k: v for k, v in after.items() if k in before} == before
        assert "ok.docx" in after and "bomb.docx" not in after
        client.delete("/v1/collections/docs/documents/ok.docx")


def test_a_broken_file_fails_readably_and_keeps_the_stored_version(store: Served) -> None:
    with store.client() as client:
        before = sources(client)
        job = upload(client, "docs", {"merlion.md": "\ufeff" + "   \n\n  "})  # no text at all
        assert job["stage"] == "failed" and "merlion.md" in job["error"]
        broken_pdf = upload(client, "docs", {"scan.pdf": b"%PDF-1.4 broken beyond repair"})
        assert broken_pdf["stage"] == "failed" and "PDF" in broken_pdf["error"]
        assert sources(client) == before  # the stored merlion.md is still whole


def test_reupload_is_unchanged_and_a_new_version_replaces(store: Served) -> None:
    with store.client() as client:
        again = upload(client, "docs", {"durian.md": DOCS["durian.md"]})
        assert again["results"] == {"durian.md": "unchanged"}
        changed = upload(client, "docs", {"durian.md": DOCS["durian.md"] + " It is loved."})
        assert changed["results"] == {"durian.md": "replaced"}
        assert sources(client)["durian.md"] == 1
        upload(client, "docs", {"durian.md": DOCS["durian.md"]})


def job_events(client: httpx.Client, job_id: str) -> list[tuple[str, Any]]:
    """Every event of a job, from its first step (replayed, however late we come) to its end."""
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        return sse_events(stream)


def post_files(client: httpx.Client, files: dict[str, str]) -> dict[str, Any]:
    """Upload files to "docs"; the job as the 202 gives it (not waited for)."""
    parts = [("files", (name, text.encode())) for name, text in files.items()]
    response = client.post("/v1/collections/docs/documents", files=parts)
    assert response.status_code == 202, response.text
    return response.json()


def test_job_progress_streams_as_server_sent_events(store: Served) -> None:
    text = "\n\n".join(f"Paragraph {i} about hawker centres and kopi." * 8 for i in range(40))
    with store.client() as client:
        job_id = post_files(client, {"hawkers.txt": text})["id"]
        events = job_events(client, job_id)
        late = job_events(client, job_id)  # a caller that comes after the end sees it all too
        client.delete("/v1/collections/docs/documents/hawkers.txt")
    assert late == events
    assert [k for k, _ in events] == ["progress"] * (len(events) - 1) + ["end"]
    end = events[-1][1]
    assert end["stage"] == "done" and end["chunks_stored"] == end["chunks_total"]
    steps = [e for k, e in events if k == "progress"]
    assert steps[0]["stage"] == "queued" and steps[-1] == end
    # each batch of stored chunks is a step: part-way progress is always seen
    stored = sorted({e["chunks_stored"] for e in steps if e["stage"] == "ingesting"} - {0})
    batch, total = stored[0], end["chunks_total"]
    assert batch < total and stored == [*range(batch, total, batch), total]
    progress = [e["progress"] for e in steps]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert any(0 < p < 1 for p in progress), progress


def test_cancel_removes_the_unfinished_file_and_keeps_the_rest(store: Served) -> None:
    text = "\n\n".join(f"Section {i}: rules for the night market stalls." * 10 for i in range(400))
    with store.client() as client:
        before = sources(client)
        running = post_files(client, {"market.txt": text})
        # jobs run one at a time: this one waits behind the market's, and a cancel ends it now
        queued = post_files(client, {"queue.txt": "Queue numbers at the clinic."})
        assert queued["stage"] == "queued"
        cancelled = client.post(f"/v1/jobs/{queued['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["stage"] == "cancelled"
        stages = [e["stage"] for k, e in job_events(client, queued["id"]) if k == "progress"]
        assert stages == ["queued", "cancelled"]  # it never started
        # the market's job is cancelled part-way, as its own events show it storing chunks
        with client.stream("GET", f"/v1/jobs/{running['id']}/events") as stream:
            events: list[tuple[str, Any]] = []
            for kind, event in iter_sse_events(stream):
                if event["chunks_stored"] > 0 and not any(e["chunks_stored"] for _, e in events):
                    cancel = client.post(f"/v1/jobs/{running['id']}/cancel")
                    assert cancel.status_code == 200
                events.append((kind, event))
        end = events[-1][1]
        assert end["stage"] == "cancelled", end  # (the job outran its cancel: make it longer)
        assert 0 < end["chunks_stored"] < end["chunks_total"]
        assert "market.txt" not in end["results"]
        assert sources(client) == before  # no chunk of either file is left
        ask = client.post("/v1/collections/docs/ask", json={"question": "night market stalls?"})
        assert all(s["source"] != "market.txt" for s in ask.json()["sources"])


def test_collections_create_list_delete(store: Served) -> None:
    with store.client() as client:
        assert client.post("/v1/collections", json={"name": "ชั่วคราว"}).status_code == 201
        assert client.post("/v1/collections", json={"name": "ชั่วคราว"}).status_code == 409
        for bad, fragment in (("../x", "not allowed"), ("a:b", "':'"), ("x" * 300, "200")):
            response = client.post("/v1/collections", json={"name": bad})
            assert response.status_code == 400 and fragment in response.json()["error"]["message"]
        names = [c["name"] for c in client.get("/v1/collections").json()["data"]]
        assert "ชั่วคราว" in names and "docs" in names
        upload(client, "ชั่วคราว", {"a.txt": "Temporary notes about laksa."})
        lexical = store.data_dir / "chroma" / "sealion-lexical"
        before = set(lexical.glob("*.sqlite3"))
        assert client.delete("/v1/collections/ชั่วคราว").status_code == 200
        assert len(before - set(lexical.glob("*.sqlite3"))) == 1  # its lexical index went too
        assert client.get("/v1/collections/ชั่วคราว/documents").status_code == 404
        assert (
            client.post(
                "/v1/collections/missing/documents", files=[("files", ("a.txt", b"x"))]
            ).status_code
            == 404
        )
