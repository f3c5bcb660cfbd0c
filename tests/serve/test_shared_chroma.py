"""Growing past one machine: two `sealion serve` processes over one Chroma server. A
document uploaded through one is answered from through the other; keys are shared through
one key file, and neither server keeps state the other needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from sealion_agents.testing.servers import Server, chroma_server
from tests.serve.conftest import Served, make_keys, start, upload
from tests.serve_model import DOCS, GROUNDED


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = chroma_server(tmp_path_factory.mktemp("chroma-server")).start()
    try:
        yield server.wait(60)
    finally:
        server.stop()


def test_two_servers_share_one_chroma_server(chroma: Server, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{chroma.port}"
    keys = make_keys(tmp_path / "shared", ("acme",))
    flags = ("--rate-limit", "0", "--keys-file", str(tmp_path / "shared" / "keys.json"))
    one = start(tmp_path / "one", flags, chroma_url=url)
    try:
        two = start(tmp_path / "two", flags, chroma_url=url)
        try:
            first, second = Served(one, keys, tmp_path / "one"), Served(two, keys, tmp_path / "two")
            with first.client() as client:
                assert client.post("/v1/collections", json={"name": "shared"}).status_code == 201
                assert (
                    upload(client, "shared", {"merlion.md": DOCS["merlion.md"]})["stage"] == "done"
                )
            with second.client() as client:
                names = [c["name"] for c in client.get("/v1/collections").json()["data"]]
                assert names == ["shared"]
                docs = client.get("/v1/collections/shared/documents").json()["data"]
                assert [d["source"] for d in docs] == ["merlion.md"]
            reply = OpenAI(
                base_url=f"{second.url}/v1", api_key=keys["acme"]
            ).chat.completions.create(
                model="qa/shared",
                messages=[{"role": "user", "content": "Where does the Merlion mascot stand?"}],
            )
            assert reply.choices[0].message.content.startswith(GROUNDED)
            assert reply.model_extra["citations"] == ["merlion.md"]
            with second.client() as client:  # a document added through two ...
                upload(client, "shared", {"durian.md": DOCS["durian.md"]})
            with first.client() as client:  # ... is listed and searched through one
                docs = client.get("/v1/collections/shared/documents").json()["data"]
                assert sorted(d["source"] for d in docs) == ["durian.md", "merlion.md"]
                assert client.delete("/v1/collections/shared").status_code == 200
            with second.client() as client:
                assert client.get("/v1/collections/shared/documents").status_code == 404
        finally:
            two.stop()
    finally:
        one.stop()
