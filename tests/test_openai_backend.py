"""ChatSeaLion on real OpenAI-compatible servers on 127.0.0.1, with the tiny scripted models.

Servers (started once per session by fixtures in conftest, stopped by pid):

* "vllm": ``vllm.entrypoints.openai.api_server`` without a reasoning parser: the reasoning
  arrives inline in ``content``;
* "vllm-r1": the same with ``--reasoning-parser deepseek_r1``: it arrives in ``reasoning``;
* "llamacpp": llama-cpp-python's server. It ignores per-request ``chat_template_kwargs``,
  so each variant is served twice, as "<variant>-on" and "<variant>-off" (thinking mode
  set in the server's config file), and the backend switches model by thinking mode.

Both vLLM servers run the "writes" folder; the "prefilled" variant is its template sent
per request (``extra_body={"chat_template": ...}``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealion_agents import ChatSeaLion
from sealion_agents import testing as tiny_models
from sealion_agents.backends.base import ChatBackend, GenerationRequest
from sealion_agents.backends.openai import API_KEY_ENV, OpenAIBackend
from sealion_agents.backends.openai.reader import ChunkReader as _ChunkReader
from sealion_agents.errors import (
    ServerAuthenticationError,
    ServerError,
    ServerModelNotFoundError,
    ServerUnavailableError,
)
from sealion_agents.options import GenerationOptions
from sealion_agents.testing import ANSWER, REASONING, TEMPLATES
from sealion_agents.testing.servers import free_port, llamacpp_server
from tests import test_chat_gguf as shared
from tests.conftest import LLAMACPP_TEST_KEY
from tests.suites import SeaLionIntegrationSuite
from tests.test_chat_gguf import (  # noqa: F401  (the shared matrix, collected here too)
    QUESTION,
    REASONING_PIECES,
    collect,
    expected,
    split_of,
    test_abandoned_astream_releases_the_model,
    test_abatch,
    test_batch_mixes_modes,
    test_budget_larger_than_the_reasoning_changes_nothing,
    test_configurable_field,
    test_content_blocks_hold_a_standard_reasoning_block,
    test_max_tokens_inside_answer,
    test_max_tokens_inside_reasoning,
    test_per_chain_step,
    test_seed_temperature_top_p_are_accepted,
    test_stop_sequence_cuts_the_answer,
    test_unknown_call_option_is_a_clear_error,
    test_usage_metadata_counts_reasoning,
)

pytestmark = pytest.mark.timeout(300)

SERVERS = ["vllm", "vllm-r1", "llamacpp"]
_BACKENDS: dict[tuple[str, str], OpenAIBackend] = {}


def make_backend(request: pytest.FixtureRequest, server: str, variant: str) -> OpenAIBackend:
    """One backend per (server, variant) for the session, so what it learns is kept."""
    key = (server, variant)
    if key not in _BACKENDS:
        if server == "llamacpp":
            process = request.getfixturevalue("llamacpp_server")
            _BACKENDS[key] = OpenAIBackend(
                process.base_url,
                model=f"{variant}-on",
                thinking_off_model=f"{variant}-off",
                api_key=LLAMACPP_TEST_KEY,
            )
        else:
            process = request.getfixturevalue("vllm_servers")[server]
            _BACKENDS[key] = OpenAIBackend(
                process.base_url,
                model="sealion-tiny",
                extra_body={"chat_template": TEMPLATES[variant]},
            )
    return _BACKENDS[key]


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(request: pytest.FixtureRequest, server: str, variant: str) -> OpenAIBackend:
    return make_backend(request, server, variant)


@pytest.fixture
def llm(backend: OpenAIBackend) -> ChatSeaLion:
    return ChatSeaLion(backend=backend)


# -- the call styles of the shared matrix, thinking on and off ---------------------------
# The "default" case of test_chat_gguf resolves to thinking on in ChatSeaLion, before any
# backend code: the request it sends is the "on" request byte for byte (test_chat_gguf runs it).

SERVER_THINKING_CASES = shared.THINKING_CASES[:2]
SERVER_THINKING_IDS = ["on", "off"]


@pytest.mark.parametrize(("options", "thinking"), SERVER_THINKING_CASES, ids=SERVER_THINKING_IDS)
def test_invoke(llm: ChatSeaLion, options: dict[str, Any], thinking: bool) -> None:
    shared.test_invoke(llm, options, thinking)


@pytest.mark.parametrize(("options", "thinking"), SERVER_THINKING_CASES, ids=SERVER_THINKING_IDS)
def test_stream(llm: ChatSeaLion, options: dict[str, Any], thinking: bool) -> None:
    shared.test_stream(llm, options, thinking)


@pytest.mark.parametrize(("options", "thinking"), SERVER_THINKING_CASES, ids=SERVER_THINKING_IDS)
async def test_ainvoke(llm: ChatSeaLion, options: dict[str, Any], thinking: bool) -> None:
    await shared.test_ainvoke(llm, options, thinking)


@pytest.mark.parametrize(("options", "thinking"), SERVER_THINKING_CASES, ids=SERVER_THINKING_IDS)
async def test_astream(llm: ChatSeaLion, options: dict[str, Any], thinking: bool) -> None:
    await shared.test_astream(llm, options, thinking)


@pytest.mark.parametrize("variant", ["writes"])
def test_sixteen_threads_on_one_instance(llm: ChatSeaLion) -> None:
    """One template: what runs concurrently is the client (and the server), the same for both
    templates; each template's replies are checked by the call styles above."""
    shared.test_sixteen_threads_on_one_instance(llm)


def test_backend_implements_the_protocol(backend: OpenAIBackend) -> None:
    assert isinstance(backend, ChatBackend)


def test_instance_default_off(backend: OpenAIBackend) -> None:
    llm = ChatSeaLion(backend=backend, thinking=False)
    assert split_of(llm.invoke(QUESTION)) == expected(False)
    assert split_of(llm.invoke(QUESTION, thinking=True)) == expected(True)


def test_thinking_budget_on_servers_that_continue(
    llm: ChatSeaLion, server: str, variant: str
) -> None:
    """vLLM continues the assistant turn (``continue_final_message``); llama.cpp cannot.

    The budget is checked per streamed chunk, and a vLLM server merges deltas when its client
    lags (seen under load), so the cut may come one chunk late: at least the budget, and the
    reasoning kept is a prefix of the model's.
    """
    budget = 4
    if server == "llamacpp":
        with pytest.raises(ServerError, match="cannot continue"):
            llm.invoke(QUESTION, max_thinking_tokens=budget)
        return
    tag = 1 if variant == "writes" else 0  # the model's own <think> counts as reasoning
    for result in (
        llm.invoke(QUESTION, max_thinking_tokens=budget),
        collect(list(llm.stream(QUESTION, max_thinking_tokens=budget))),
    ):
        reasoning, answer = split_of(result)
        assert answer == ANSWER
        assert REASONING.startswith(reasoning)
        assert reasoning.startswith("".join(REASONING_PIECES[: budget - tag]).strip())
        assert result.response_metadata["thinking_budget_reached"] is True
        assert budget <= result.usage_metadata["output_token_details"]["reasoning"] <= budget + 2


# -- what the servers really send -------------------------------------------------------


def raw_stream(base_url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    chunks = []
    with httpx.stream("POST", base_url + "/chat/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data:") and "[DONE]" not in line:
                chunks.append(json.loads(line[5:]))
    return chunks


def test_the_r1_server_splits_reasoning_and_the_plain_one_does_not(
    vllm_servers: dict[str, Any],
) -> None:
    body = {
        "model": "sealion-tiny",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
    }
    for name, splits in (("vllm-r1", True), ("vllm", False)):
        deltas = [
            c["choices"][0]["delta"]
            for c in raw_stream(vllm_servers[name].base_url, body)
            if c["choices"]
        ]
        reasoning = "".join(d.get("reasoning") or "" for d in deltas)
        content = "".join(d.get("content") or "" for d in deltas)
        if splits:
            # the parser keeps "<think>" when a busy server sends it in one delta with more
            # tokens (vLLM's DeepSeekR1 parser); the client drops it (the next test)
            assert (reasoning.removeprefix("<think>"), content) == (REASONING, ANSWER)
        else:
            assert (reasoning, content) == ("", f"<think>{REASONING}</think>{ANSWER}")


def test_a_think_tag_the_server_leaves_in_the_reasoning_field_is_dropped() -> None:
    """What vLLM's r1 parser sends when ``<think>`` shares a delta with more tokens."""
    from sealion_agents.backends.base import ReasoningDelta, TextDelta
    from sealion_agents.backends.openai.reader import ChunkReader as _ChunkReader

    reader = _ChunkReader(thinking=True, opens=False, continuing=False)
    events = []
    for delta in ({"reasoning": "<think>The user"}, {"reasoning": " said <think> hi"},
                  {"content": "Hello!"}):  # fmt: skip
        events += reader.feed_chunk({"choices": [{"delta": delta}]})
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert reasoning == "The user said <think> hi"  # only the opening tag goes
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello!"


def test_non_streaming_answer_filed_as_reasoning_is_the_answer(
    vllm_servers: dict[str, Any],
) -> None:
    """vLLM's r1 parser, thinking off, non-streaming: ``content: null`` and the answer in
    ``reasoning``. The reader gives the user the answer as content."""
    body = {
        "model": "sealion-tiny",
        "messages": [{"role": "user", "content": "Hi"}],
        "chat_template_kwargs": {"thinking_mode": "off"},
    }
    response = httpx.post(
        vllm_servers["vllm-r1"].base_url + "/chat/completions", json=body, timeout=60
    )
    document = response.json()
    message = document["choices"][0]["message"]
    reader = _ChunkReader(thinking=False, opens=False, continuing=False)
    events = reader.feed_chunk(document) + reader.finish()
    text = "".join(getattr(e, "text", "") for e in events)
    assert text == ANSWER
    assert (message.get("content") or "") + (message.get("reasoning") or "") == ANSWER


def test_reasoning_content_field_is_read_too() -> None:
    """Older vLLM and llama.cpp's C++ server name the field ``reasoning_content``."""
    reader = _ChunkReader(thinking=True, opens=False, continuing=False)
    chunks = [
        {
            "choices": [{"delta": {"role": "assistant"}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 0},
        },
        {"choices": [{"delta": {"reasoning_content": "Think"}}]},
        {"choices": [{"delta": {"reasoning_content": " more"}}]},
        {"choices": [{"delta": {"content": "Done"}}]},
        {"choices": [{"delta": {}, "finish_reason": "stop"}]},
    ]
    events = [e for chunk in chunks for e in reader.feed_chunk(chunk)] + reader.finish()
    kinds = [(type(e).__name__, getattr(e, "text", None)) for e in events]
    assert kinds == [
        ("PromptInfo", None),
        ("ReasoningDelta", "Think"),
        ("ReasoningDelta", " more"),
        ("TextDelta", "Done"),
        ("Finished", None),
    ]  # typed events: no tags rebuilt for the parser to find again
    assert events[0].prompt_tokens == 7  # type: ignore[union-attr]


def test_prefilled_template_is_detected_on_vllm(request: pytest.FixtureRequest) -> None:
    backend = make_backend(request, "vllm", "prefilled")
    ChatSeaLion(backend=backend).invoke(QUESTION)
    assert backend._prefilled[True] is True


def test_prefilled_template_is_learned_on_llamacpp(request: pytest.FixtureRequest) -> None:
    backend = make_backend(request, "llamacpp", "prefilled")
    ChatSeaLion(backend=backend).invoke(QUESTION)
    assert backend._prefilled[True] is True


# -- errors and faults ------------------------------------------------------------------


def test_server_not_up_retries_then_fails_clearly() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = ChatSeaLion.from_openai(url, model="sealion-x", max_retries=2, timeout=2)
    with pytest.raises(ServerUnavailableError) as error:
        llm.invoke(QUESTION)
    message = str(error.value)
    assert url in message and "'sealion-x'" in message and "3 attempt(s)" in message


async def test_server_not_up_async() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = ChatSeaLion.from_openai(url, model="sealion-x", max_retries=1, timeout=2)
    with pytest.raises(ServerUnavailableError, match="2 attempt"):
        await asyncio.wait_for(llm.ainvoke(QUESTION), timeout=10)


def test_wrong_api_key_is_a_clear_error_that_never_shows_the_key(
    llamacpp_server: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-wrong-key-123456"
    monkeypatch.setenv(API_KEY_ENV, secret)
    caplog.set_level(logging.DEBUG)
    llm = ChatSeaLion.from_openai(llamacpp_server.base_url, model="writes-on")
    assert llm.backend._api_key == secret  # read from the environment
    with pytest.raises(ServerAuthenticationError) as error:
        llm.invoke(QUESTION)
    message = str(error.value)
    assert llamacpp_server.base_url in message and "'writes-on'" in message and "401" in message
    assert secret not in message + repr(llm) + repr(llm.backend) + caplog.text


def test_unknown_model_is_a_clear_error(vllm_servers: dict[str, Any]) -> None:
    url = vllm_servers["vllm"].base_url
    llm = ChatSeaLion.from_openai(url, model="no-such-model")
    with pytest.raises(ServerModelNotFoundError) as error:
        llm.invoke(QUESTION)
    assert url in str(error.value) and "'no-such-model'" in str(error.value)


@pytest.fixture(scope="module")
def endless_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose script loops: "\\n\\n" -> A -> B -> A ... until max_tokens."""
    a, b = tiny_models.encode(" tick")[0], tiny_models.encode(" tock")[0]
    path = tmp_path_factory.mktemp("endless") / "endless.gguf"
    return tiny_models.build_gguf(
        path, chains=[[tiny_models.NEWLINES_ID, a, b, a]], chat_template=TEMPLATES["writes"]
    )


def test_server_killed_mid_stream_is_a_clear_error(endless_gguf: Path) -> None:
    server = llamacpp_server({"endless": (endless_gguf, "on")}, name="doomed").start().wait(60)
    try:
        llm = ChatSeaLion.from_openai(
            server.base_url, model="endless", max_retries=0, timeout=20, thinking=False
        )
        stream = llm.stream(QUESTION, max_tokens=1000)
        first = next(stream)
        assert "t" in first.content
        server.kill()
        with pytest.raises(
            ServerError, match="closed the stream before the reply was complete"
        ) as error:
            for _chunk in stream:
                pass
        # found from the broken connection, not by waiting out the read timeout
        assert not isinstance(error.value.__cause__, httpx.TimeoutException), error.value
    finally:
        server.stop()


async def test_server_killed_mid_astream_is_a_clear_error(endless_gguf: Path) -> None:
    server = (
        llamacpp_server({"endless": (endless_gguf, "on")}, name="doomed-async").start().wait(60)
    )
    try:
        llm = ChatSeaLion.from_openai(
            server.base_url, model="endless", max_retries=0, timeout=20, thinking=False
        )
        stream = llm.astream(QUESTION, max_tokens=1000)
        await stream.__anext__()
        server.kill()
        with pytest.raises(ServerError, match="closed the stream"):
            async with asyncio.timeout(20):
                async for _chunk in stream:
                    pass
    finally:
        server.stop()


# -- langchain-tests' standard suite, on each server ------------------------------------


class _OpenAISuite(SeaLionIntegrationSuite):
    server_name = "vllm"

    @pytest.fixture(autouse=True)
    def _backend(self, request: pytest.FixtureRequest) -> None:
        type(self).backend = make_backend(request, self.server_name, "writes")

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"backend": type(self).backend}


class TestOpenAIOnVLLM(_OpenAISuite):
    server_name = "vllm"


class TestOpenAIOnVLLMReasoningParser(_OpenAISuite):
    server_name = "vllm-r1"


class TestOpenAIOnLlamaCpp(_OpenAISuite):
    server_name = "llamacpp"


@pytest.mark.vllm
def test_requests_carry_thinking_per_request(request: pytest.FixtureRequest) -> None:
    backend = make_backend(request, "vllm", "writes")
    on = backend.build(GenerationRequest(messages=[{"role": "user", "content": "x"}]))
    off = backend.build(
        GenerationRequest(
            messages=[], options=GenerationOptions(thinking=False, max_tokens=5, top_k=3)
        )
    )
    assert on.body["chat_template_kwargs"]["thinking_mode"] == "on"
    assert off.body["chat_template_kwargs"]["thinking_mode"] == "off"
    assert off.body["max_tokens"] == 5 and off.body["top_k"] == 3
    assert on.body["chat_template"] == TEMPLATES["writes"]
    # vLLM keeps tokens a tokenizer marks special (Gemma 4's thought channel, Apertus's tags)
    assert on.body["skip_special_tokens"] is False


def test_other_servers_get_no_vllm_fields(request: pytest.FixtureRequest) -> None:
    backend = make_backend(request, "llamacpp", "writes")
    body = backend.build(GenerationRequest(messages=[{"role": "user", "content": "x"}])).body
    assert "skip_special_tokens" not in body


# -- retries: a real loopback HTTP server that fails before it answers --------------------


class FlakyHandler:
    """Answers with the given error statuses first, then streams a scripted reply."""

    @staticmethod
    def serve(statuses: list[int]) -> tuple[Any, list[float]]:
        import http.server
        import threading

        seen: list[float] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                if not self.path.endswith("/chat/completions"):  # e.g. vLLM's /tokenize
                    self.send_response(404)
                    self.end_headers()
                    return
                seen.append(time.monotonic())
                if statuses:
                    status = statuses.pop(0)
                    self.send_response(status)
                    if status == 429:
                        self.send_header("retry-after", "0.2")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "busy"}}')
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for piece in ("<think>", "hm", "</think>", "ok"):
                    chunk = {"choices": [{"delta": {"content": piece}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                done = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())

            def log_message(self, *args: Any) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd, seen


@pytest.mark.parametrize("statuses", [[503, 502], [429, 500]], ids=["5xx", "429"])
def test_retries_with_backoff_then_answers(statuses: list[int]) -> None:
    httpd, seen = FlakyHandler.serve(list(statuses))
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        llm = ChatSeaLion.from_openai(url, model="m", max_retries=2, timeout=5)
        result = llm.invoke(QUESTION)
    finally:
        httpd.shutdown()
    assert split_of(result) == ("hm", "ok")
    assert len(seen) == 3
    assert seen[1] - seen[0] >= 0.15 and seen[2] - seen[1] >= 0.15  # backed off


def test_gives_up_after_max_retries_with_the_server_and_model_named() -> None:
    httpd, seen = FlakyHandler.serve([503, 503, 503])
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        llm = ChatSeaLion.from_openai(url, model="m", max_retries=1, timeout=5)
        with pytest.raises(ServerUnavailableError, match="HTTP 503") as error:
            llm.invoke(QUESTION)
    finally:
        httpd.shutdown()
    assert len(seen) == 2 and url in str(error.value) and "'m'" in str(error.value)


def test_max_retries_per_call_overrides_the_instance() -> None:
    """``llm.invoke(msgs, timeout=5, max_retries=1)``: the call's settings win, both ways."""
    httpd, seen = FlakyHandler.serve([503, 503])
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        patient = ChatSeaLion.from_openai(url, model="m", max_retries=3, timeout=5)
        with pytest.raises(ServerUnavailableError, match="after 1 attempt"):
            patient.invoke(QUESTION, max_retries=0)
        assert len(seen) == 1
        hasty = ChatSeaLion.from_openai(url, model="m", max_retries=0, timeout=5)
        result = hasty.invoke(QUESTION, timeout=5, max_retries=1)
    finally:
        httpd.shutdown()
    assert split_of(result) == ("hm", "ok")
    assert len(seen) == 3  # the first call's 503, then this call's 503 and its retry


def test_client_errors_are_not_retried() -> None:
    httpd, seen = FlakyHandler.serve([400])
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        with pytest.raises(ServerError, match="HTTP 400"):
            ChatSeaLion.from_openai(url, model="m", max_retries=3).invoke(QUESTION)
    finally:
        httpd.shutdown()
    assert len(seen) == 1
