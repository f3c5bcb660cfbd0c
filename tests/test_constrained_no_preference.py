"""Constrained replies end on every backend, even from a model with no preference at all.

The model (``tiny_no_preference_gguf`` / ``tiny_no_preference_hf_folder``) gives every token
the same logit, so only the grammar decides when a constrained reply ends: greedy decoding
takes the lowest allowed token id, sampling draws uniformly from the allowed tokens. A
grammar with free whitespace lets it write whitespace until ``max_tokens`` (vLLM 0.32
ignores the per-request ``disable_any_whitespace``, so its JSON grammar allowed any run of
whitespace); with bounded whitespace every reply ends.

The schema's values are bounded (an enum, a small integer range, a boolean) and a tool call
is a single call (``parallel_tool_calls=False``): with no preference, a free string or an
open-ended array would not end under any grammar (greedy decoding takes the lowest allowed
id every time: ``!`` (id 0) inside a string, ``,`` (id 11) rather than ``]`` in an array).

Backends: llama.cpp in-process (GGUF), vLLM in-process, a vLLM server and llama-cpp-python's
server (grammar mode), the two servers through ``OpenAIBackend``. ``sealion serve`` is not
among them: ``OpenAIBackend`` sends it no constraint (it validates and retries), so a model
with no preference cannot answer it validly by design.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from sealion_agents import ChatSeaLion
from sealion_agents import testing as tiny_models
from sealion_agents.backends.base import ChatBackend
from tests.conftest import LLAMA_TEST_KWARGS

pytestmark = pytest.mark.timeout(600)

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"enum": ["Bangkok", "Hanoi", "Jakarta"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 5},
        "urgent": {"type": "boolean"},
    },
    "required": ["city", "days", "urgent"],
}
TOOL = {"name": "book_trip", "description": "Book a trip.", "parameters": SCHEMA}
# "llamacpp-server" shares the module's ``servers`` (a vLLM server too): it runs beside vLLM
BACKENDS = ["gguf", "vllm", "vllm-server", pytest.param("llamacpp-server", marks=pytest.mark.vllm)]
MAX_TOKENS = 200  # a compact reply is 77 tokens at most (greedy writes one byte per token)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    """A vLLM server and a llama-cpp-python server on the model, started together."""
    from sealion_agents.testing.servers import llamacpp_server, vllm_server

    started = {
        "vllm-server": vllm_server(
            tiny_models.tiny_no_preference_hf_folder(),
            reasoning_parser=None,
            name="vllm-no-preference",
        ),
        "llamacpp-server": llamacpp_server(
            {"no-preference-off": (tiny_models.tiny_no_preference_gguf(), "off")},
            name="llamacpp-no-preference",
        ),
    }
    try:
        for server in started.values():
            server.start()
        for server in started.values():
            server.wait(timeout=300)
        yield started
    finally:
        for server in started.values():
            server.stop()


_ENGINE: list[Any] = []


def vllm_engine() -> Any:
    """An in-process vLLM engine on the model, started once.

    It is never shut down before the session ends: vLLM's shutdown tears down process-wide
    parallel state that the session's other engine still uses.
    """
    if not _ENGINE:
        from sealion_agents.backends.vllm import guard_kernel_scan
        from sealion_agents.testing.servers import VLLM_ENGINE_KWARGS, VLLM_ENV

        for key, value in VLLM_ENV.items():
            os.environ.setdefault(key, value)
        guard_kernel_scan()
        import vllm

        folder = tiny_models.tiny_no_preference_hf_folder()
        _ENGINE.append(vllm.LLM(model=str(folder), **VLLM_ENGINE_KWARGS))
    return _ENGINE[0]


_BACKENDS: dict[tuple[str, str | None], ChatBackend] = {}


def _backend(request: pytest.FixtureRequest, name: str, profile: str | None) -> ChatBackend:
    """The backend ``name`` on the model, with a profile (None: the one detected), kept."""
    key = (name, profile)
    if key not in _BACKENDS:
        if name == "gguf":
            from sealion_agents.backends.llamacpp import LlamaCppBackend

            path = tiny_models.tiny_no_preference_gguf()
            _BACKENDS[key] = LlamaCppBackend(path, profile=profile, **LLAMA_TEST_KWARGS)
        elif name == "vllm":
            from sealion_agents.backends.vllm import VLLMBackend

            engine = vllm_engine()
            _BACKENDS[key] = VLLMBackend(llm=engine, name="no-preference", profile=profile)
        else:
            from sealion_agents.backends.openai import OpenAIBackend

            server = request.getfixturevalue("servers")[name]
            model = "sealion-tiny" if name == "vllm-server" else "no-preference-off"
            _BACKENDS[key] = OpenAIBackend(server.base_url, model=model, profile=profile)
    return _BACKENDS[key]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> ChatBackend:
    return _backend(request, str(request.param), None)


def model(backend: ChatBackend, temperature: float) -> ChatSeaLion:
    return ChatSeaLion(
        backend=backend, thinking=False, temperature=temperature, seed=7, max_tokens=MAX_TOKENS
    )


def assert_ended(message: Any) -> None:
    reason = message.response_metadata["finish_reason"]
    assert reason != "length", (reason, message.content, message.additional_kwargs)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_forced_tool_call_ends_valid(backend: ChatBackend, temperature: float) -> None:
    llm = model(backend, temperature).bind_tools(
        [TOOL], tool_choice="any", parallel_tool_calls=False
    )
    reply = llm.invoke("Book me a trip.")
    assert_ended(reply)
    assert not reply.invalid_tool_calls, reply.invalid_tool_calls
    assert [call["name"] for call in reply.tool_calls] == ["book_trip"]
    jsonschema.validate(reply.tool_calls[0]["args"], SCHEMA)


#: A profile per call format added with the native formats: Nemotron's XML, Gemma 4's
#: native calls, Apertus's listed calls (Python and Hermes calls: test_profiles).
NATIVE_FORMATS = [
    "nemotron-sea-lion-v4.8",
    "gemma-sea-lion-v4.5-e2b-it",
    "apertus-sea-lion-v4-8b-it",
]


@pytest.mark.parametrize("profile", NATIVE_FORMATS)
def test_a_forced_call_in_each_native_format_ends_valid(
    request: pytest.FixtureRequest, backend: ChatBackend, profile: str
) -> None:
    """Only the format's grammar decides (greedy: the lowest allowed token each time), and the
    call it lets through is read back valid."""
    name = next(k[0] for k, v in _BACKENDS.items() if v is backend)
    native = _backend(request, name, profile)
    assert native.profile.name == profile
    llm = model(native, 0.0).bind_tools([TOOL], tool_choice="any", parallel_tool_calls=False)
    reply = llm.invoke("Book me a trip.")
    assert_ended(reply)
    assert not reply.invalid_tool_calls, reply.invalid_tool_calls
    assert [call["name"] for call in reply.tool_calls] == ["book_trip"]
    jsonschema.validate(reply.tool_calls[0]["args"], SCHEMA)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_structured_output_ends_valid(backend: ChatBackend, temperature: float) -> None:
    llm = model(backend, temperature).with_structured_output(SCHEMA, include_raw=True)
    result = llm.invoke("Plan a trip.")
    assert_ended(result["raw"])
    assert result["parsing_error"] is None, result["raw"].content
    jsonschema.validate(result["parsed"], SCHEMA)


def hide_modules(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``importlib.util.find_spec`` report ``names`` as not installed (no grammar cache)."""
    import importlib.util

    from sealion_agents import grammars

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in names else real(name, *a)
    )
    monkeypatch.setattr(grammars, "_bounded_grammar", grammars._bounded_grammar.__wrapped__)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_without_xgrammar_a_vllm_server_gets_llama_cpp_grammar(
    servers: dict[str, Any], monkeypatch: pytest.MonkeyPatch, temperature: float
) -> None:
    """A client without vLLM (so without xgrammar) sends llama.cpp's grammar: vLLM reads it."""
    from sealion_agents.backends.openai import OpenAIBackend
    from sealion_agents.grammars import structured_outputs

    hide_modules(monkeypatch, "xgrammar")
    assert 'space ::= " "?' in structured_outputs(SCHEMA)["grammar"]  # llama.cpp's GBNF
    url = servers["vllm-server"].base_url
    backend = OpenAIBackend(url, model="sealion-tiny", structured_output="structured_outputs")
    llm = model(backend, temperature).bind_tools(
        [TOOL], tool_choice="any", parallel_tool_calls=False
    )
    reply = llm.invoke("Book me a trip.")
    assert_ended(reply)
    assert not reply.invalid_tool_calls and len(reply.tool_calls) == 1, reply
    jsonschema.validate(reply.tool_calls[0]["args"], SCHEMA)


def test_without_any_converter_the_schema_itself_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    from sealion_agents.grammars import structured_outputs

    hide_modules(monkeypatch, "xgrammar", "llama_cpp")
    assert structured_outputs(SCHEMA) == {"json": SCHEMA, "disable_any_whitespace": True}
