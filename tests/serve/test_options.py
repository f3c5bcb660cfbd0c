"""`sealion serve`'s options, seen in real responses: --openai-url in front of a real
llama.cpp model server (a 502 in OpenAI's shape once that server is gone), --name in
/v1/models and every reply, --reasoning-field reasoning_content (stream and not), and
``ServeConfig(sources_in_content=False)`` keeping a grounded answer's content bare."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sealion_agents import testing as tm
from sealion_agents.testing.servers import Server, free_port, llamacpp_server
from tests.serve.conftest import Served, make_keys, upload
from tests.serve_model import DOCS, GROUNDED, serve_gguf

NAME = "tiny-sealion"
"""The chat model's name given with --name."""
HELLO = {"model": NAME, "messages": [{"role": "user", "content": "hello"}]}
ASK = [{"role": "user", "content": "Where does the Merlion mascot stand?"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Server]:
    """A llama-cpp-python OpenAI server of its own (a test stops it), thinking on."""
    server = llamacpp_server({"serve": (serve_gguf(), "on")}, name="serve-upstream")
    try:
        yield server.start().wait(120)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def front(upstream: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`sealion serve --openai-url` over ``upstream``, renamed, reasoning in one field."""
    data_dir = tmp_path_factory.mktemp("front")
    keys = make_keys(data_dir, ("acme",))
    port = free_port()
    argv = [
        sys.executable, "-c", "from sealion_agents.cli import main; main()", "serve",
        "--openai-url", upstream.base_url, "--model", "serve", "--context-window", "1024",
        "--data-dir", str(data_dir), "--store", str(data_dir / "chroma"), "--port", str(port),
        "--name", NAME, "--reasoning-field", "reasoning_content", "--rate-limit", "0",
    ]  # fmt: skip
    env = {"HF_HUB_OFFLINE": "1", "SEALION_API_KEY": "", "SEALION_GGUF": "", "SEALION_VLLM": ""}
    server = Server("sealion-front", argv, port=port, env=env, health_path="/ready")
    try:
        yield Served(server.start().wait(180), keys, data_dir)
    finally:
        server.stop()


def chat_chunks(response: httpx.Response) -> list[dict[str, Any]]:
    """The chunks of a streamed chat completion, up to its ``[DONE]``."""
    lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]", lines[-3:]
    return [json.loads(line) for line in lines[:-1]]


def test_name_is_the_model_in_models_and_replies(front: Served) -> None:
    with front.client() as client:
        models = client.get("/v1/models").json()["data"]
        reply = client.post("/v1/chat/completions", json=HELLO)
        unknown = client.post("/v1/chat/completions", json=HELLO | {"model": "sealion"})
    assert [(m["id"], m["max_model_len"]) for m in models] == [(NAME, 1024)]
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == NAME
    assert unknown.status_code == 404 and f"lists '{NAME}'" in unknown.json()["error"]["message"]


def test_reasoning_field_reasoning_content_through_a_model_server(front: Served) -> None:
    with front.client() as client:
        whole = client.post("/v1/chat/completions", json=HELLO).json()
        with client.stream(
            "POST", "/v1/chat/completions", json=HELLO | {"stream": True}
        ) as response:  # fmt: skip
            chunks = chat_chunks(response)
    message = whole["choices"][0]["message"]
    assert message["content"] == tm.ANSWER and message["reasoning_content"] == tm.REASONING
    assert "reasoning" not in message  # the default (both) would add it
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == tm.REASONING
    assert "".join(d.get("content") or "" for d in deltas) == tm.ANSWER
    assert not any("reasoning" in d for d in deltas)
    assert {c["model"] for c in chunks} == {NAME}


def test_a_model_server_that_is_gone_is_a_502(front: Served, upstream: Server) -> None:
    """Last in this module: it stops the model server."""
    upstream.stop()
    with front.client() as client:
        reply = client.post("/v1/chat/completions", json=HELLO)
        streamed = client.post("/v1/chat/completions", json=HELLO | {"stream": True})
    for refused in (reply, streamed):  # a stream that cannot start fails before its headers
        assert refused.status_code == 502, refused.text
        error = refused.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "upstream_error"
        assert error["message"].startswith("the model server failed:")
        assert upstream.base_url.removesuffix("/v1") in error["message"]


# -- sources_in_content=False: a ServeConfig field (no flag), served in this process --------


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app with ``sources_in_content=False`` under uvicorn on 127.0.0.1, a thread here."""
    import chromadb
    import uvicorn

    from sealion_agents import ChatSeaLion
    from sealion_agents.serve import ServeConfig, create_app

    data_dir = tmp_path_factory.mktemp("bare")
    keys = make_keys(data_dir, ("acme",))
    config = ServeConfig(data_dir=data_dir, sources_in_content=False, rate_per_minute=0)
    app = create_app(
        config,
        ChatSeaLion.from_gguf(serve_gguf()),
        client=chromadb.PersistentClient(path=str(data_dir / "chroma")),
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="bare-server", daemon=True)
    thread.start()
    try:
        here = Server("sealion-in-process", [], port=port)  # not a process: its port only
        served = Served(here, keys, data_dir)
        _wait_ready(served, thread)
        with served.client() as client:
            assert client.post("/v1/collections", json={"name": "kb"}).status_code == 201
            assert upload(client, "kb", DOCS)["stage"] == "done"
        yield served
    finally:
        server.should_exit = True
        thread.join(60)


def _wait_ready(served: Served, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 120  # a bound on a hang, not a measured time
    while time.monotonic() < deadline and thread.is_alive():
        try:
            if httpx.get(f"{served.url}/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # /ready says when the model has loaded
    raise AssertionError("the in-process server never became ready")


def test_sources_in_content_false_leaves_the_answer_bare(bare: Served) -> None:
    body: dict[str, Any] = {"model": "qa/kb", "messages": ASK}
    with bare.client() as client:
        whole = client.post("/v1/chat/completions", json=body).json()
        with client.stream("POST", "/v1/chat/completions", json=body | {"stream": True}) as r:
            chunks = chat_chunks(r)
    assert whole["choices"][0]["message"]["content"] == GROUNDED  # no "Sources:" list
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == GROUNDED
    last = next(c for c in chunks if c.get("citations"))
    for reply in (whole, last):  # the sources travel in the fields only
        assert reply["citations"][0] == "merlion.md"  # [1]
        assert [s["source"] for s in reply["sources"] if s["cited"]] == ["merlion.md"]
