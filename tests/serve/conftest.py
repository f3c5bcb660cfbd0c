"""`sealion serve` as a real process on 127.0.0.1, on the scripted tiny model, a temporary
store and keys made before it starts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealion_agents.serve.keys import KeyStore
from sealion_agents.testing.servers import Server, sealion_server
from tests.serve_model import DOCS, serve_gguf


@dataclass
class Served:
    """A running server, its keys (tenant -> secret) and its data folder."""

    server: Server
    keys: dict[str, str]
    data_dir: Path
    uploaded: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def client(self, tenant: str = "acme", **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"} if tenant else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **kwargs)


def make_keys(data_dir: Path, tenants: tuple[str, ...] = ("acme", "other")) -> dict[str, str]:
    store = KeyStore(data_dir / "keys.json")
    return {tenant: store.create(tenant, f"{tenant} tests")[1] for tenant in tenants}


def iter_sse_events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """(event name, JSON data) of each server-sent event of a streamed response, as it comes."""
    kind = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, json.loads(line[6:])


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event name, JSON data) of each server-sent event of a streamed response."""
    return list(iter_sse_events(response))


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["stage"] in {"done", "failed", "cancelled"}:
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not end: {job}")


def upload(
    client: httpx.Client, collection: str, files: Mapping[str, bytes | str]
) -> dict[str, Any]:
    """Upload files, wait for their job, return the finished job."""
    parts = [
        ("files", (name, data.encode() if isinstance(data, str) else data))
        for name, data in files.items()
    ]
    response = client.post(f"/v1/collections/{collection}/documents", files=parts)
    assert response.status_code == 202, response.text
    return wait_for_job(client, response.json()["id"])


def start(
    data_dir: Path, extra: tuple[str, ...] = (), gguf: Path | None = None, **kwargs: Any
) -> Server:
    """``sealion serve`` on ``gguf`` (default: the serve model), started and ready."""
    server = sealion_server(gguf or serve_gguf(), data_dir, extra=extra, **kwargs).start()
    try:
        return server.wait(180)
    except BaseException:
        server.stop()
        raise


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server with a collection "kb" of tenant acme holding the test documents."""
    data_dir = tmp_path_factory.mktemp("serve")
    keys = make_keys(data_dir)
    server = start(data_dir, ("--rate-limit", "0", "--key-parallel", "64", "--queue-size", "64"))
    try:
        result = Served(server, keys, data_dir)
        with result.client() as client:
            assert client.post("/v1/collections", json={"name": "kb"}).status_code == 201
            job = upload(client, "kb", DOCS)
            assert job["stage"] == "done", job
            result.uploaded = job
        yield result
    finally:
        server.stop()
