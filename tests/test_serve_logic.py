"""Pure logic of the server's parts: limits, names, content types, the OpenAI shapes, and a
stream that fails after it started (fakes only where no runtime is involved)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import ValidationError

from sealion_agents.options import GenerationOptions, option_names
from sealion_agents.serve.documents.protocol import AskRequest, ask_input
from sealion_agents.serve.limits import Busy, GenerationQueue, ParallelLimit, RateLimiter
from sealion_agents.serve.metrics import Metrics
from sealion_agents.serve.openai_protocol import (
    REQUEST_OPTIONS,
    ChatRequest,
    RequestError,
    generation_options,
    reasoning_fields,
    request_options,
    to_messages,
)
from sealion_agents.serve.streaming import event_stream, json_event, started
from sealion_agents.serve.uploads import UploadError, check_content, safe_filename


def test_rate_limiter_refills_per_key() -> None:
    limiter = RateLimiter(per_minute=120, burst=2)
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(Busy) as busy:
        limiter.take("a")
    assert busy.value.retry_after == 1
    limiter.take("b")
    assert RateLimiter(0).take("a") is None  # 0: no limit


def test_parallel_limit_counts_in_and_out() -> None:
    limit = ParallelLimit(1)
    limit.enter("a")
    with pytest.raises(Busy):
        limit.enter("a")
    limit.enter("b")
    limit.leave("a")
    limit.enter("a")


def test_generation_queue_serves_in_order_and_refuses_beyond_its_size() -> None:
    async def scenario() -> list[str]:
        queue = GenerationQueue(slots=1, queue_size=2)
        order: list[str] = []
        await queue.enter()  # the running one

        async def waiter(name: str) -> None:
            await queue.enter()
            order.append(name)
            await queue.leave(0.1)

        tasks = [asyncio.create_task(waiter(n)) for n in ("first", "second")]
        await asyncio.sleep(0.01)
        assert queue.waiting == 2
        with pytest.raises(Busy) as busy:
            await queue.enter()
        assert busy.value.retry_after >= 1
        cancelled = asyncio.create_task(waiter("never"))
        await asyncio.sleep(0)
        cancelled.cancel()  # a client that gives up while waiting leaves its place
        await asyncio.gather(cancelled, return_exceptions=True)
        await queue.leave(1.0)
        await asyncio.gather(*tasks)
        assert queue.active == 0 and queue.waiting == 0
        return order

    assert asyncio.run(scenario()) == ["first", "second"]


@pytest.mark.parametrize(
    ("raw", "safe"),
    [("a.txt", "a.txt"), ("../../x.md", "x.md"), ("C:\\docs\\y.pdf", "y.pdf"),
     ("  คู่มือ พนักงาน.txt ", "คู่มือ พนักงาน.txt")],
)  # fmt: skip
def test_safe_filename(raw: str, safe: str) -> None:
    assert safe_filename(raw) == safe


@pytest.mark.parametrize("raw", ["", "..", "a/..", "x\x00.txt", "x\n.txt", "y" * 201])
def test_unsafe_filenames_are_refused(raw: str) -> None:
    with pytest.raises(UploadError) as refused:
        safe_filename(raw)
    assert refused.value.status == 400


def test_content_type_by_bytes(tmp_path: Path) -> None:
    cases = {
        ("a.txt", "ไทย text".encode()): None,
        ("a.txt", "\ufeffhi".encode("utf-16")): None,
        ("a.md", "é".encode() * 5000): None,  # a character cut at the sample's end is fine
        ("a.pdf", b"%PDF-1.7 ..."): None,
        ("a.html", b"\x00\x00binary"): 415,
        ("a.pdf", b"GIF89a"): 415,
        ("a.docx", b"PK\x03\x04garbage"): 415,
        ("a.png", b"\x89PNG"): 415,
    }
    for (name, data), status in cases.items():
        path = tmp_path / "upload"
        path.write_bytes(data)
        if status is None:
            check_content(path, name)
        else:
            with pytest.raises(UploadError) as refused:
                check_content(path, name)
            assert refused.value.status == status and name in str(refused.value)


def test_request_options_and_messages() -> None:
    request = ChatRequest(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        chat_template_kwargs={"thinking_mode": "off"},
        max_completion_tokens=50,
        thinking_budget=20,
        stop="END",
        temperature=0,
    )
    assert generation_options(request) == {
        "thinking": False,
        "max_thinking_tokens": 20,
        "max_tokens": 50,
        "temperature": 0,
        "stop": ["END"],
    }
    for value, thinking in (("on", True), (True, True), ("OFF", False)):
        kwargs = {"thinking_mode": value}
        options = generation_options(
            ChatRequest(model="m", messages=[{}], chat_template_kwargs=kwargs)
        )
        assert options["thinking"] is thinking
    messages = to_messages(
        [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": t} for t in "ab"]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"x": 1}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "2"},
        ]
    )  # fmt: skip
    assert [type(m) for m in messages] == [SystemMessage, HumanMessage, AIMessage, ToolMessage]
    assert messages[1].content == "ab"
    assert messages[2].tool_calls[0]["args"] == {"x": 1}
    with pytest.raises(RequestError, match="reads text only"):
        to_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])
    assert reasoning_fields("r", "reasoning") == {"reasoning": "r"}
    assert reasoning_fields("r", "both") == {"reasoning_content": "r", "reasoning": "r"}


def test_chat_and_ask_take_every_generation_option_the_same_way() -> None:
    """Both request models carry GenerationOptions' fields (bounds included) and one function
    maps either to GenerationOptions; the server backend's connection settings stay out."""
    assert set(REQUEST_OPTIONS) == set(option_names()) - {"timeout", "max_retries"}
    body = {
        "thinking": False,
        "max_thinking_tokens": 9,
        "max_tokens": 40,
        "temperature": 0.3,
        "top_p": 0.5,
        "top_k": 4,
        "seed": 11,
        "timeout": 1,  # not the client's to set: ignored, as any unknown field
    }
    chat = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], **body)
    ask = AskRequest(question="hi", **body)
    expected = GenerationOptions(**{k: v for k, v in body.items() if k != "timeout"})
    assert request_options(chat) == request_options(ask) == expected
    assert ask_input(ask)[1] == expected.model_dump(exclude_unset=True)
    assert ask_input(AskRequest(question="hi"))[1] == {}  # nothing set: the server's defaults
    for model, required in (
        (ChatRequest, {"model": "m", "messages": [{}]}),
        (AskRequest, {"question": "q"}),
    ):
        for name, bad in (("max_tokens", 0), ("top_p", 1.5), ("max_thinking_tokens", 0)):
            with pytest.raises(ValidationError, match=name):
                model(**required, **{name: bad})
    # OpenAI's and vLLM's own names: max_completion_tokens wins, max_thinking_tokens wins
    chat = ChatRequest(
        model="m",
        messages=[{}],
        max_tokens=5,
        max_completion_tokens=6,
        max_thinking_tokens=7,
        thinking_budget=8,
        thinking=True,
        chat_template_kwargs={"enable_thinking": False},
    )
    assert request_options(chat) == GenerationOptions(
        thinking=False, max_tokens=6, max_thinking_tokens=7
    )
    with pytest.raises(RequestError, match="thinking_mode must be 'on' or 'off'"):
        request_options(
            ChatRequest(model="m", messages=[{}], chat_template_kwargs={"thinking_mode": "x"})
        )


def test_a_stream_that_fails_after_it_started_ends_with_an_error_event() -> None:
    app = FastAPI()
    state = SimpleNamespace(metrics=Metrics())

    @app.get("/s")
    async def failing(request: Request) -> object:
        async def events():  # type: ignore[no-untyped-def]
            yield json_event({"n": 1})
            raise ValueError("the collection went away")

        return event_stream(state, request, events(), None, done=True)  # type: ignore[arg-type]

    with TestClient(app) as client:
        lines = [line for line in client.get("/s").text.splitlines() if line.startswith("data: ")]
    assert json.loads(lines[0][6:]) == {"n": 1}
    error = json.loads(lines[1][6:])["error"]
    assert (
        error["message"] == "the collection went away" and error["type"] == "invalid_request_error"
    )
    assert lines[2] == "data: [DONE]"
    assert state.metrics.active_streams._value.get() == 0
    counted = state.metrics.errors.labels("/s", "invalid_request_error")._value.get()
    assert counted == 1


def test_started_raises_before_the_first_item_and_replays_the_rest() -> None:
    closed: list[str] = []

    async def items(fail_first: bool, n: int):  # type: ignore[no-untyped-def]
        try:
            if fail_first:
                raise ValueError("prompt too long")
            for i in range(n):
                yield i
        finally:
            closed.append(f"{fail_first}-{n}")

    async def scenario() -> list[int]:
        with pytest.raises(ValueError, match="prompt too long"):
            await started(items(True, 3))
        assert [i async for i in await started(items(False, 0))] == []
        return [i async for i in await started(items(False, 3))]

    assert asyncio.run(scenario()) == [0, 1, 2]
    assert sorted(closed) == ["False-0", "False-3", "True-3"]


def test_errors_the_package_raises_get_their_status() -> None:
    from sealion_agents.retrievers.store import EmptyCollectionError

    from sealion_agents.errors import EngineError, ServerError, TokenizerUnavailableError
    from sealion_agents.serve.errors import error_for

    assert error_for(TokenizerUnavailableError("no window")).status == 502
    assert error_for(ServerError("down")).status == 502
    failed = error_for(EngineError("vLLM failed: IndexError: 3; load it again"))
    assert (failed.status, failed.code, str(failed)) == (
        500,
        "engine_error",
        "vLLM failed: IndexError: 3; load it again",
    )
    assert error_for(IndexError("3")).status == 500  # a bug: the message stays in the log
    assert "IndexError" in str(error_for(IndexError("3")))
    empty = error_for(EmptyCollectionError("collection 'acme:kb' holds no documents"))
    assert (empty.status, empty.code) == (409, "empty_collection")
    assert "acme:" not in str(empty)  # the tenant prefix of the stored name stays inside


def test_json_depth_counts_without_recursion_and_ignores_strings() -> None:
    from sealion_agents.serve.deps import MAX_JSON_DEPTH, json_depth, parse_json

    assert json_depth('{"a": [1, {"b": "[[[{{ \\" ]]"}]}') == 3
    assert json_depth("[" * 100_000 + "]" * 100_000) == MAX_JSON_DEPTH + 1  # stops counting
    assert json_depth('"' + '\\"' * 100_000) == 0  # unterminated: linear, left to json.loads
    assert parse_json(b'{"text": "[[[[", "n": [[1]]}') == {"text": "[[[[", "n": [[1]]}
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    assert parse_json(deep[1:-1].encode()) is not None  # exactly the limit is fine
    for bad, words in ((deep.encode(), "more than 64 deep"), (b"{", "not valid JSON")):
        with pytest.raises(RequestError, match=words):
            parse_json(bad)


def test_a_prompt_is_refused_only_when_its_bytes_cannot_fit() -> None:
    from sealion_agents.serve.chat.serving import check_fits
    from sealion_agents.serve.errors import ApiError

    state: Any = SimpleNamespace(context_window=10, token_bytes=4)
    check_fits([HumanMessage("a" * 40)], state)  # may be 10 tokens: not refused
    check_fits([HumanMessage(f"  {'a' * 40}\n"), AIMessage("b" * 999)], state)  # trimmed; no AI
    with pytest.raises(ApiError) as refused:
        check_fits([SystemMessage("a" * 20), HumanMessage("é" * 11)], state)
    assert refused.value.status == 400 and refused.value.code == "context_length_exceeded"
    assert "42 bytes" in str(refused.value) and "at least 11 tokens" in str(refused.value)
    unknown: Any = SimpleNamespace(context_window=None, token_bytes=4)
    check_fits([HumanMessage("a" * 10**6)], unknown)


def test_body_limit_and_longest_token_defaults() -> None:
    from sealion_agents.backends.openai import OpenAIBackend
    from sealion_agents.serve.config import ServeConfig
    from sealion_agents.serve.state import UNMEASURED_TOKEN_BYTES

    assert ServeConfig(data_dir=Path("x")).max_body_bytes == 4 * 1024 * 1024
    remote = OpenAIBackend("http://127.0.0.1:9/v1", model="m")  # construction reaches nothing
    assert remote.longest_token_bytes is None  # a server's vocabulary is not read
    assert UNMEASURED_TOKEN_BYTES > 128  # above Llama 3's longest token
