"""What kind of OpenAI-compatible server this is, found once: ``discover`` -> ``ServerFacts``.

Data flow: a ``Transport`` -> ``GET /v1/models`` (the model is served; ``sealion serve``
told apart by its models' ``owned_by``; vLLM's ``max_model_len``) -> the server's own
endpoints, tried in order: llama-cpp-python's ``/extras/tokenize/count``, llama.cpp's
``/props`` (its ``n_ctx``), ``/tokenize`` (vLLM, llama.cpp, ``sealion serve``) -> on vLLM,
one ``/tokenize`` of a chat prompt with thinking on (does the template pre-fill the
opening reasoning tag, ``<think>``?) -> one frozen ``ServerFacts``, which the backend's
properties read.

``sealion serve`` answers vLLM's ``/tokenize`` and ``max_model_len`` too, but continues no
assistant message and reads none of vLLM's constraint fields: it gets plain chat
completions (constrained answers validated and retried, reasoning prefill learnt from the
output).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

from sealion_agents.backends.openai.transport import Retryable, Transport
from sealion_agents.errors import ServerModelNotFoundError, ServerUnavailableError
from sealion_agents.reasoning import THINK_TAGS, ReasoningTags

__all__ = ["SEALION_SERVE_OWNER", "ServerFacts", "discover"]

logger = logging.getLogger(__name__)

SEALION_SERVE_OWNER = "sealion-agents"
"""``owned_by`` of the models ``sealion serve`` lists (vLLM-like counting, no continuation)."""

TOKENIZE = "/tokenize"
"""vLLM's and llama.cpp's tokenize endpoint (returns the tokens)."""
COUNT = "/extras/tokenize/count"
"""llama-cpp-python's tokenize endpoint (returns a count, BOS included)."""


@dataclass(frozen=True)
class ServerFacts:
    """What the server is and offers, found once by ``discover``."""

    kind: str
    """"vllm", "llama-cpp-python", "llama.cpp", "sealion-serve" or "other"."""
    context_window: int | None
    """The served context length (vLLM's ``max_model_len``, llama.cpp's ``n_ctx``), if told."""
    tokenize_path: str | None
    """The endpoint that counts tokens (``TOKENIZE`` or ``COUNT``), if any."""
    tokenize_offset: int = 0
    """Tokens the endpoint counts for empty text (llama-cpp-python's BOS)."""
    reasoning_prefilled: bool | None = None
    """Whether the prompt ends with the opening reasoning tag with thinking on (vLLM only;
    None: unknown)."""

    @property
    def structured_mode(self) -> str:
        """How this kind of server constrains output: its own field, grammars, or not at all."""
        if self.kind == "vllm":
            return "structured_outputs"
        if self.kind in ("llama-cpp-python", "llama.cpp"):
            # its grammars are built with llama-cpp-python's converter
            return "grammar" if importlib.util.find_spec("llama_cpp") is not None else "none"
        return "none"


def discover(
    transport: Transport,
    model: str,
    *,
    thinking_off_model: str | None,
    chat_template: str | None,
    probe_prefill: bool,
    thinking_variables: dict[str, Any] | None = None,
    tags: ReasoningTags = THINK_TAGS,
) -> ServerFacts:
    """Ask the server what it is (raises when it is unreachable or lacks the model)."""
    models = _models(transport, model, thinking_off_model)
    sealion_serve = any(
        m.get("id") == model and m.get("owned_by") == SEALION_SERVE_OWNER for m in models
    )
    window = None
    for entry in models:
        if entry.get("id") == model and entry.get("max_model_len"):
            window = int(entry["max_model_len"])  # vLLM
    kind, path, offset = "other", None, 0
    count = transport.post(COUNT, {"model": model, "input": ""})
    if count.status_code == 200:
        kind, path, offset = "llama-cpp-python", COUNT, int(count.json().get("count", 0))
    props = transport.get("/props", root=True)
    if props.status_code == 200:  # llama.cpp's C++ server
        if kind == "other":
            kind = "llama.cpp"
        if window is None:
            settings = props.json().get("default_generation_settings") or {}
            n_ctx = settings.get("n_ctx") or props.json().get("n_ctx")
            window = int(n_ctx) if n_ctx else None
    body = {"model": model, "prompt": "", "content": "", "add_special_tokens": False}
    if transport.post(TOKENIZE, body).status_code == 200:
        path = TOKENIZE
        if kind == "other":
            kind = "sealion-serve" if sealion_serve else "vllm"
    elif sealion_serve:
        kind = "sealion-serve"
    prefilled = None
    if kind == "vllm" and probe_prefill:
        variables = thinking_variables or {}
        prefilled = _prefilled(transport, model, chat_template, variables, tags.open)
    return ServerFacts(kind, window, path, offset, prefilled)


def _models(transport: Transport, model: str, thinking_off_model: str | None) -> list[Any]:
    """The server's model list, checked to hold the model names asked for."""
    response = transport.get("/models")
    if response.status_code == 404:
        return []  # a server without a model list: nothing to check
    if response.status_code != 200:
        error = transport.failure(response.status_code, response.text, None)
        if isinstance(error, Retryable):
            raise ServerUnavailableError(str(error))
        raise error
    models = [m for m in response.json().get("data", []) if isinstance(m, dict)]
    names = {str(m.get("id")) for m in models}
    wanted = {model} | ({thinking_off_model} if thinking_off_model else set())
    missing = sorted(wanted - names)
    if missing and names:
        raise ServerModelNotFoundError(
            f"{transport.base_url} does not serve {missing[0]!r}; it serves {sorted(names)}."
        )
    return models


def _prefilled(
    transport: Transport,
    model: str,
    chat_template: str | None,
    variables: dict[str, Any],
    opening: str,
) -> bool | None:
    """Ask vLLM's ``/tokenize`` whether a thinking prompt ends with the ``opening`` tag."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "."}],
        "add_generation_prompt": True,
        "return_token_strs": True,
        "chat_template_kwargs": variables,
    }
    if chat_template is not None:
        body["chat_template"] = chat_template
    try:
        response = transport.post(TOKENIZE, body)
        if response.status_code != 200:
            return None
        document = response.json()
        tokens, strings = document.get("tokens") or [], document.get("token_strs") or []
        if strings:  # the tag is one token (<think>) or several
            return "".join(strings).endswith(opening)
        if not tokens:
            return None
        response = transport.post("/detokenize", {"model": model, "tokens": tokens})
        if response.status_code == 200:
            return bool(response.json().get("prompt", "").endswith(opening))
    except Exception:  # a server that answers otherwise: learn from the output instead
        logger.debug("no chat /tokenize on %s", transport.root, exc_info=True)
    return None
