"""langchain-tests' standard suites for ChatSeaLion on the real llama.cpp runtime.

Tool calling, tool choice and structured output are on (``bind_tools`` and
``with_structured_output`` exist): the model is ``tests.suite_model``, which scripts
langchain-tests' tool prompts; its calls are decoded under their JSON schemas.
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
from tests.suites import SeaLionIntegrationSuite


@cache
def shared_backend(variant: str) -> LlamaCppBackend:
    """One loaded model per variant for the whole suite."""
    return LlamaCppBackend(suite_gguf(variant), **LLAMA_TEST_KWARGS)


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
