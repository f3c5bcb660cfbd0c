"""langchain-tests' standard suites for ChatSeaLion on the real llama.cpp runtime.

Tool calling, tool choice and structured output are on (``bind_tools`` and
``with_structured_output`` exist): the model is ``tests.suite_model``, which scripts
langchain-tests' tool prompts; its calls are decoded under their JSON schemas. The same
suites run on a non-Llama profile: the Qwen family (``tests.suite_model_qwen``: ChatML turns,
``enable_thinking``, Hermes ``<tool_call>`` calls) as ``qwen-sea-lion-v4.5-27b-it``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from sealion_agents import ChatSeaLion
from sealion_agents import testing as tiny_models
from sealion_agents.backends.llamacpp import LlamaCppBackend
from tests.conftest import LLAMA_TEST_KWARGS
from tests.suite_model import suite_gguf
from tests.suite_model_qwen import qwen_suite_gguf
from tests.suites import SeaLionIntegrationSuite


@cache
def shared_backend(variant: str) -> LlamaCppBackend:
    """One loaded model per variant for the whole suite."""
    return LlamaCppBackend(suite_gguf(variant), **LLAMA_TEST_KWARGS)


QWEN_PROFILE = "qwen-sea-lion-v4.5-27b-it"


@cache
def shared_qwen_backend() -> LlamaCppBackend:
    """The Qwen-family suite model, loaded once, with the Qwen v4.5 profile."""
    return LlamaCppBackend(qwen_suite_gguf(), profile=QWEN_PROFILE, **LLAMA_TEST_KWARGS)


class TestChatSeaLionUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatSeaLion]:
        return ChatSeaLion

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # a fresh, unloaded backend: construction must stay cheap
        return {"backend": LlamaCppBackend(tiny_models.tiny_gguf("writes"))}


class TestChatSeaLionIntegrationWrites(SeaLionIntegrationSuite):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"backend": shared_backend("writes")}


class TestChatSeaLionIntegrationPrefilled(TestChatSeaLionIntegrationWrites):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"backend": shared_backend("prefilled")}


class TestChatSeaLionQwenUnit(TestChatSeaLionUnit):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        # a fresh, unloaded backend: construction must stay cheap
        return {"backend": LlamaCppBackend(qwen_suite_gguf(), profile=QWEN_PROFILE)}


class TestChatSeaLionIntegrationQwen(SeaLionIntegrationSuite):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"backend": shared_qwen_backend()}
