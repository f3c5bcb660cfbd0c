"""The langchain-tests integration suite configured for ChatSeaLion, shared by every backend.

Subclasses only say which backend to use (``chat_model_params``); the name has no ``Test``
prefix so pytest collects the subclasses, not this base.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests

from sealion_agents import ChatSeaLion


class SeaLionIntegrationSuite(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatSeaLion]:
        return ChatSeaLion

    @property
    def supports_model_override(self) -> bool:
        return False  # ChatSeaLion serves one model: a model= call option is an error

    @property
    def supports_json_mode(self) -> bool:
        return True  # with_structured_output(method="json_mode"): any JSON object, constrained

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[str]]:
        return {"invoke": ["reasoning_output"], "stream": ["reasoning_output"]}

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        llm = self.chat_model_class(**self.chat_model_params, thinking=True)
        if not stream:
            return llm.invoke("Hello")
        full: Any = None
        for chunk in llm.stream("Hello"):
            full = chunk if full is None else full + chunk
        return full
