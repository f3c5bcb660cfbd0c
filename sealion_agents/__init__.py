"""sealion-agents: grounded chatbots, agents and document Q&A on AI Singapore's SEA-LION.

``import sealion_agents`` needs none of the heavy runtimes (llama.cpp, vLLM, torch,
Chroma); each is imported when first used, with an error naming the extra to install.
"""

from sealion_agents.chat_model import ChatSeaLion
from sealion_agents.errors import ContextWindowExceededError, ModelDownloadError
from sealion_agents.reasoning import ReasoningParser

__all__ = [
    "ChatSeaLion",
    "ContextWindowExceededError",
    "ModelDownloadError",
    "ReasoningParser",
    "__version__",
]

__version__ = "0.1.0"
