"""Per-key rate and parallel limits, the bounded generation queue, and a client that goes
away: overflow is a 429 with Retry-After (never a 5xx), and a disconnect stops generating."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One generation at a time, one waiting; each key: 2 in flight."""
    data_dir = tmp_path_factory.mktemp("limited")
    keys = make_keys(data_dir, ("acme", "other"))
    flags = ("--max-parallel", "1", "--queue-size", "1", "--key-parallel", "2",
             "--rate-limit", "0")  # fmt: skip
    server = start(data_dir, flags)
    try:
        yield Served(server, keys, data_dir)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Each key: 4 requests a minute."""
    data_dir = tmp_path_factory.mktemp("rated")
    keys = make_keys(data_dir, ("rate", "other"))
    server = start(data_dir, ("--rate-limit", "4"))
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


def test_rate_limit_is_per_key_with_retry_after(rated: Served) -> None:
    with rated.client("rate") as client:
        statuses = [client.get("/v1/collections").status_code for _ in range(6)]
        refused = client.get("/v1/collections")
    assert statuses[:4] == [200] * 4 and statuses[4:] == [429, 429]
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    with rated.client("other") as other:  # another key has its own allowance
        assert other.get("/v1/collections").status_code == 200
    with rated.client("rate") as client:  # monitoring is never throttled
        assert client.get("/metrics").status_code == 200
        assert 'sealion_rejected_total{reason="rate"} 3.0' in client.get("/metrics").text


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
