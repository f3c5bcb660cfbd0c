"""Per-key rate and parallel limits, the bounded generation queue, a client that goes away,
and bounded JSON bodies: overflow is a 429 with Retry-After (never a 5xx), a disconnect
stops generating, a body over --max-body-mb is a 413 while it arrives, one nested too deep a
400, and a prompt too long for the window a 400 before it takes a place in the queue."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve.conftest import Served, make_keys, start
from tests.serve_model import MARATHON_MARKER, marathon_tokens

LONG = {
    "model": "sealion",
    "messages": [{"role": "user", "content": f"Run a{MARATHON_MARKER} for me."}],
    "chat_template_kwargs": {"thinking_mode": "off"},
    "max_tokens": 1000,
}
SHORT = {"model": "sealion", "messages": [{"role": "user", "content": "hello"}]}
BODY_MB = 2
"""The ``limited`` server's --max-body-mb."""
LLAMA3_LONGEST_TOKEN = 128
"""Bytes of Llama 3's longest token (128 spaces), which the tiny model's vocabulary shares."""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One generation at a time, one waiting; each key: 2 in flight; JSON bodies: 2 MB."""
    data_dir = tmp_path_factory.mktemp("limited")
    keys = make_keys(data_dir, ("acme", "other"))
    flags = ("--max-parallel", "1", "--queue-size", "1", "--key-parallel", "2",
             "--rate-limit", "0", "--max-body-mb", str(BODY_MB))  # fmt: skip
    server = start(data_dir, flags)
    try:
        yield Served(server, keys, data_dir)
    finally:
        server.stop()


RATE = 60
"""The ``rated`` server's --rate-limit: a bucket of 60 requests per key, one back a second."""


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Each key: RATE requests a minute."""
    data_dir = tmp_path_factory.mktemp("rated")
    keys = make_keys(data_dir, ("rate", "other"))
    server = start(data_dir, ("--rate-limit", str(RATE)))
    try:
        yield Served(server, keys, data_dir)
    finally:
        server.stop()


def _stream_in_thread(served: Served, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start a streaming request in a thread; the dict gets status, first_chunk_at, end."""
    seen: dict[str, Any] = {"started": threading.Event()}

    def run() -> None:
        with served.client(tenant) as client, client.stream(
            "POST", "/v1/chat/completions", json=body | {"stream": True}
        ) as response:  # fmt: skip
            seen["status"] = response.status_code
            seen["started"].set()
            seen["body"] = "".join(response.iter_text())
            seen["end"] = time.monotonic()

    seen["thread"] = threading.Thread(target=run, daemon=True)
    seen["thread"].start()
    return seen


def _wait_for_queue_depth(served: Served, depth: int, tenant: str = "other") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with served.client(tenant) as client:
            if f"sealion_queue_depth {depth:.1f}" in client.get("/metrics").text:
                return
        time.sleep(0.05)
    raise AssertionError(f"the queue never held {depth} request(s)")


def _generating(served: Served, tenant: str = "acme") -> int:
    with served.client(tenant) as client:
        text = client.get("/metrics").text
    line = next(line for line in text.splitlines() if line.startswith("sealion_generating "))
    return int(float(line.split()[1]))


def _until_refused(send: Callable[[], httpx.Response], passes: int) -> tuple[int, httpx.Response]:
    """Send until the rate limit refuses: (how many passed, the refusal). Each request that
    passes must answer ``passes``; refused ones take nothing, so the loop ends."""
    passed = 0
    while (response := send()).status_code != 429:
        assert response.status_code == passes, response.text
        passed += 1
    return passed, response


def test_rate_limit_is_per_key_with_retry_after(rated: Served) -> None:
    missing = "/v1/collections/missing"  # requests that pass end at once, in a 404
    chat = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
    file = [("files", ("a.txt", b"x"))]
    with rated.client("rate") as client:
        drained, first = _until_refused(lambda: client.get("/v1/collections"), 200)
        senders = {
            "chat": lambda: client.post("/v1/chat/completions", json=chat),
            "ask": lambda: client.post(f"{missing}/ask", json={"question": "q"}),
            "upload": lambda: client.post(f"{missing}/documents", files=file),
        }
        refusals = {"list": first} | {
            route: _until_refused(send, 404)[1] for route, send in senders.items()
        }
        assert drained >= RATE  # the whole bucket, and what flowed back meanwhile
        for route, refused in refusals.items():
            assert refused.json()["error"]["type"] == "rate_limit_exceeded", route
            assert int(refused.headers["Retry-After"]) >= 1, route
        with rated.client("other") as other:  # another key has its own allowance
            assert other.get("/v1/collections").status_code == 200
        # the bucket refills: after the time the last refusal named, the next request passes
        time.sleep(int(refusals["upload"].headers["Retry-After"]))
        assert client.get("/v1/collections").status_code == 200
        # monitoring is never throttled
        assert 'sealion_rejected_total{reason="rate"} 4.0' in client.get("/metrics").text


def test_queue_overflow_is_429_and_the_queued_request_is_served(limited: Served) -> None:
    running = _stream_in_thread(limited, "acme", LONG)  # holds the only slot
    assert running["started"].wait(60) and running["status"] == 200
    queued = _stream_in_thread(limited, "other", SHORT)  # waits: the queue holds one
    _wait_for_queue_depth(limited, 1)
    with limited.client("other") as client:
        overflow = client.post("/v1/chat/completions", json=SHORT)
    assert overflow.status_code == 429, overflow.text
    assert int(overflow.headers["Retry-After"]) >= 1
    assert "busy" in overflow.json()["error"]["message"]
    running["thread"].join(60)
    queued["thread"].join(60)
    assert queued["status"] == 200 and "data: [DONE]" in queued["body"]


def test_parallel_limit_per_key(limited: Served) -> None:
    first = _stream_in_thread(limited, "acme", LONG)
    assert first["started"].wait(60)
    second = _stream_in_thread(limited, "acme", SHORT)  # queued behind the first
    _wait_for_queue_depth(limited, 1)
    with limited.client("acme") as client:
        third = client.post("/v1/chat/completions", json=SHORT)
        # a token count takes neither a generation slot, a place in line nor a parallel place
        counted = client.post("/tokenize", json={"model": "sealion", "prompt": "hello"})
    assert third.status_code == 429 and "requests in flight" in third.json()["error"]["message"]
    assert third.headers["Retry-After"] == "1"  # a slot of the key comes back with a reply
    assert counted.status_code == 200 and counted.json()["count"] == 1, counted.text
    first["thread"].join(60)
    second["thread"].join(60)
    assert first["status"] == second["status"] == 200


def test_a_client_that_goes_away_stops_its_generation(limited: Served) -> None:
    with limited.client("acme") as client:
        started = time.monotonic()
        whole = client.post("/v1/chat/completions", json=LONG)
        full_seconds = time.monotonic() - started
    assert whole.status_code == 200
    assert whole.json()["usage"]["completion_tokens"] >= len(marathon_tokens()) - 5
    with limited.client("acme") as client, client.stream(
        "POST", "/v1/chat/completions", json=LONG | {"stream": True}
    ) as response:  # fmt: skip
        lines = response.iter_lines()
        for _ in range(6):
            next(lines)
        gone_at = time.monotonic()
    # the connection is closed: the slot and the engine must be free long before the reply
    # would have ended
    with limited.client("other") as client:
        reply = client.post("/v1/chat/completions", json=SHORT)
    waited = time.monotonic() - gone_at
    assert reply.status_code == 200
    assert waited < full_seconds / 2, (waited, full_seconds)
    assert _generating(limited, "other") == 0


def test_no_request_gets_a_5xx_under_a_burst(limited: Served, tmp_path: Path) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def one(tenant: str) -> None:
        try:
            with limited.client(tenant) as client:
                status = client.post("/v1/chat/completions", json=SHORT).status_code
        except httpx.HTTPError as exc:  # a refused connection would be a failure too
            status = -1
            print(exc)
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one, args=(t,)) for t in ("acme", "other") * 5]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(statuses) == 10
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 2


def _rss_kb(pid: int) -> int:
    status = open(f"/proc/{pid}/status").read()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def _post_raw(
    served: Served, headers: dict[str, str], chunks: Iterable[bytes] = ()
) -> tuple[int, dict[str, Any], int]:
    """POST a chat over a bare socket, its body chunked as ``chunks`` yields it, sending only
    until the server answers: (status, JSON body, body bytes sent)."""
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=60) as sock:
        head = {"Host": "127.0.0.1", "Authorization": f"Bearer {served.keys['acme']}",
                "Content-Type": "application/json", **headers}  # fmt: skip
        lines = ["POST /v1/chat/completions HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sent = 0
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:  # answered: stop sending
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:  # closed by the server after its answer
                break
            sent += len(chunk)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read()), sent


def test_a_body_over_the_limit_is_413_while_it_arrives(limited: Served) -> None:
    with limited.client("other") as client:  # warm: RSS after the first generation
        assert client.post("/v1/chat/completions", json=SHORT).status_code == 200
    before = _rss_kb(limited.server.pid)
    big_mb, seen = 40, dict[str, Any]()

    def body() -> Iterator[bytes]:  # 40 MB of message, streamed (no Content-Length)
        yield b'{"model": "sealion", "messages": [{"role": "user", "content": "'
        for i in range(big_mb * 16):
            if i == 8:  # half a MB in: another client's chat streams to its end meanwhile
                with limited.client("other") as client, client.stream(
                    "POST", "/v1/chat/completions", json=SHORT | {"stream": True}
                ) as response:  # fmt: skip
                    seen["status"] = response.status_code
                    seen["body"] = response.read().decode()
            yield b"a" * (64 * 1024)
        yield b'"}]}'

    status, error, sent = _post_raw(limited, {"Transfer-Encoding": "chunked"}, body())
    assert status == 413, error
    assert error["error"]["type"] == "request_too_large"
    assert f"limit of {BODY_MB * 1024 * 1024:,} bytes" in error["error"]["message"]
    assert sent < big_mb * 1024 * 1024 / 2  # refused while reading, not after
    assert seen["status"] == 200 and seen["body"].rstrip().endswith("data: [DONE]"), seen
    assert _rss_kb(limited.server.pid) <= before * 1.1


def test_a_content_length_over_the_limit_is_413_before_reading(limited: Served) -> None:
    status, error, _ = _post_raw(limited, {"Content-Length": str(50 * 1024 * 1024)})
    assert status == 413 and error["error"]["code"] == "too_large", error


def test_json_nested_too_deep_is_400(limited: Served) -> None:
    nested = b"[" * 100_000 + b"]" * 100_000
    with limited.client("acme") as client:
        response = client.post(
            "/v1/chat/completions",
            content=b'{"model": "sealion", "messages": ' + nested + b"}",
            headers={"Content-Type": "application/json"},
        )
        created = client.post("/v1/collections", content=b'{"name": ' + nested + b"}")
    for refused in (response, created):
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["type"] == "invalid_request_error" and "more than 64 deep" in error["message"]


def test_a_prompt_too_long_for_the_window_is_400_before_the_queue(limited: Served) -> None:
    with limited.client("acme") as client:
        window = client.get("/v1/models").json()["data"][0]["max_model_len"]
    over = LONG | {"messages": [{"role": "user", "content": "a" * (128 * window + 1)}]}
    running = _stream_in_thread(limited, "acme", LONG)  # holds the only slot
    assert running["started"].wait(60) and running["status"] == 200
    queued = _stream_in_thread(limited, "other", SHORT)  # fills the queue: more would be 429
    _wait_for_queue_depth(limited, 1)
    with limited.client("other") as client:
        refused = client.post("/v1/chat/completions", json=over)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert f"at most {LLAMA3_LONGEST_TOKEN} bytes" in error["message"]
    assert f"context window of {window:,} tokens" in error["message"]
    running["thread"].join(60)
    queued["thread"].join(60)
    assert queued["status"] == 200 and "data: [DONE]" in queued["body"]
