"""SEA-LION on any OpenAI-compatible server (``vllm serve``, llama.cpp's servers, hosted APIs).

One concept per module, in data-flow order: ``discovery`` (what the server is, found once
in ``load()``), ``backend`` (``OpenAIBackend``: the request builder and the stream loops),
``transport`` (HTTP clients and the one retry policy), ``reader`` (stream chunks ->
events, pure), ``counting`` (token counters: the server's endpoint or a local tokenizer).
"""

from sealion_agents.backends.openai.backend import OpenAIBackend
from sealion_agents.backends.openai.counting import local_token_counter
from sealion_agents.backends.openai.transport import API_KEY_ENV

__all__ = ["API_KEY_ENV", "OpenAIBackend", "local_token_counter"]
