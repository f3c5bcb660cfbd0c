"""The batch path of ChatSeaLion (one engine call per round) on the real llama.cpp runtime.

``OneCallBatch`` puts the real GGUF backend behind the ``supports_batch`` capability and
records each engine round, so the chat model's batching logic is checked without vLLM.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage

from sealion_agents import ChatSeaLion
from sealion_agents.backends.base import ChatBackend, Event, GenerationRequest
from sealion_agents.testing import ANSWER, REASONING


class OneCallBatch(ChatBackend):
    supports_batch = True

    def __init__(self, inner: ChatBackend) -> None:
        self.inner = inner
        self.rounds: list[list[GenerationRequest]] = []

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def load(self) -> None:
        self.inner.load()

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        return self.inner.stream(request)

    def close(self) -> None:
        self.inner.close()

    def generate_batch(self, requests: list[GenerationRequest]) -> list[list[Event] | Exception]:
        self.rounds.append(list(requests))
        return [list(self.inner.stream(request)) for request in requests]


class Ends(BaseCallbackHandler):
    def __init__(self) -> None:
        self.started = 0
        self.ended: list[str] = []

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.started += 1

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.ended.append(response.generations[0][0].message.content)


@pytest.fixture
def batching(gguf_backends: dict[str, Any], variant: str) -> OneCallBatch:
    return OneCallBatch(gguf_backends[variant])


def test_batch_is_one_engine_call(batching: OneCallBatch) -> None:
    llm = ChatSeaLion(backend=batching)
    inputs = [[HumanMessage(f"Hello {i}")] for i in range(5)]
    handler = Ends()
    results = llm.batch(inputs, config={"callbacks": [handler]})
    assert len(batching.rounds) == 1 and len(batching.rounds[0]) == 5
    assert [(r.additional_kwargs["reasoning_content"], r.content) for r in results] == [
        (REASONING, ANSWER)
    ] * 5
    assert handler.started == 5 and handler.ended == [ANSWER] * 5


def test_bound_thinking_reaches_every_input(batching: OneCallBatch) -> None:
    results = ChatSeaLion(backend=batching).with_thinking(False).batch([[HumanMessage("a")]] * 3)
    assert [r.content for r in results] == [ANSWER] * 3
    assert all("reasoning_content" not in r.additional_kwargs for r in results)
    assert [req.thinking for req in batching.rounds[0]] == [False] * 3


def test_budget_needs_a_second_round_for_cut_inputs(batching: OneCallBatch) -> None:
    llm = ChatSeaLion(backend=batching, max_thinking_tokens=3)
    results = llm.batch([[HumanMessage("a")], [HumanMessage("b")]])
    assert [len(r) for r in batching.rounds] == [2, 2]
    assert all(r.content == ANSWER for r in results)
    assert all(r.response_metadata["thinking_budget_reached"] for r in results)
    assert all(req.assistant_prefix.endswith("</think>") for req in batching.rounds[1])


def test_one_bad_input_fails_alone(batching: OneCallBatch) -> None:
    llm = ChatSeaLion(backend=batching)
    bad = [HumanMessage(content=[{"type": "image", "url": "http://x/y.png"}])]
    results = llm.batch([[HumanMessage("a")], bad], return_exceptions=True)
    assert results[0].content == ANSWER
    assert isinstance(results[1], ValueError) and "content block of type 'image'" in str(results[1])
    assert len(batching.rounds) == 1 and len(batching.rounds[0]) == 1
    with pytest.raises(ValueError, match="SEA-LION reads text only"):
        llm.batch([[HumanMessage("a")], bad])


async def test_abatch_is_one_engine_call(batching: OneCallBatch) -> None:
    llm = ChatSeaLion(backend=batching)
    results = await llm.abatch([[HumanMessage("x")], [HumanMessage("y")]], thinking=False)
    assert [r.content for r in results] == [ANSWER, ANSWER]
    assert len(batching.rounds) == 1 and len(batching.rounds[0]) == 2
