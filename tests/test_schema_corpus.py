"""A corpus of JSON schemas: each converts or is refused with an error naming the problem, and
every constrained generation over it is valid by ``jsonschema`` (more than 500 per run).

Generations run on llama.cpp (grammars; thinking on, so the grammar takes over after the
reasoning, the harder of the two starts) and on vLLM in-process (structured outputs,
batched; both templates, thinking on and off), as a structured answer and as a tool call's
arguments (vLLM: with and without parallel calls). That is 2 + 9 = 11 generations per
schema. The model's free reply is text: the JSON comes from decoding, every token of it
under the grammar's mask (the costly case). Constrained decoding with thinking off, from the
first token, is the same grammar started earlier: tests/test_tool_calling.py covers it on
every backend.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from sealion_agents import ChatSeaLion
from sealion_agents.backends.llamacpp import LlamaCppBackend
from sealion_agents.errors import UnsupportedSchemaError
from sealion_agents.grammars import schema_grammar
from sealion_agents.json_schema import prepare
from sealion_agents.tool_calls import AnswerPlan
from tests.conftest import LLAMA_TEST_KWARGS, VARIANTS
from tests.schema_corpus import ENFORCED, REFUSED
from tests.suite_model import suite_gguf

pytestmark = pytest.mark.timeout(600)

PROMPT = "Fill in the form."
SETTINGS = [("writes", True)]
_GGUF: dict[str, LlamaCppBackend] = {}


def tool_for(schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": "fill", "description": "Fill in the form.", "parameters": schema}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_schemas_name_the_problem(name: str) -> None:
    schema, fragment = REFUSED[name]
    with pytest.raises(UnsupportedSchemaError, match=re.escape(fragment)):
        AnswerPlan.for_json(schema)
    with pytest.raises(UnsupportedSchemaError, match=re.escape(fragment)):
        AnswerPlan.for_tools([tool_for(schema)], "fill")


@pytest.mark.parametrize("name", sorted(ENFORCED))
def test_enforced_schemas_convert(name: str) -> None:
    constraint = prepare(ENFORCED[name])
    grammar = schema_grammar(constraint.schema)
    assert grammar.startswith("root ::=") or "\nroot ::=" in grammar


def generations(llm: ChatSeaLion, schema: dict[str, Any], thinking: bool) -> list[Any]:
    """A structured answer and a tool call's arguments for one schema."""
    model = llm.model_copy(update={"thinking": thinking})
    raw = model.with_structured_output(schema, include_raw=True).invoke(PROMPT)
    assert raw["parsing_error"] is None, (raw["raw"].content, raw["parsing_error"])
    call = model.bind_tools([tool_for(schema)], tool_choice="fill").invoke(PROMPT)
    assert not call.invalid_tool_calls and len(call.tool_calls) == 1, call
    return [raw["parsed"], call.tool_calls[0]["args"]]


@pytest.mark.parametrize("name", sorted(ENFORCED))
def test_every_generation_on_llamacpp_is_valid(name: str) -> None:
    schema = ENFORCED[name]
    values = []
    for variant, thinking in SETTINGS:
        if variant not in _GGUF:
            _GGUF[variant] = LlamaCppBackend(suite_gguf(variant), **LLAMA_TEST_KWARGS)
        llm = ChatSeaLion(backend=_GGUF[variant], temperature=0, max_tokens=300)
        values += generations(llm, schema, thinking)
    for value in values:
        jsonschema.validate(value, schema)
    assert len(values) == 2 * len(SETTINGS)  # 2 per schema


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("thinking", [True, False])
def test_every_generation_on_vllm_is_valid(
    vllm_backends: dict[str, Any], variant: str, thinking: bool
) -> None:
    """The whole corpus in two batches (structured answers, tool calls): one engine call each."""
    llm = ChatSeaLion(
        backend=vllm_backends[variant], temperature=0, max_tokens=300, thinking=thinking
    )
    names = sorted(ENFORCED)
    runnables: dict[str, Any] = {}
    for n in names:
        tool = [tool_for(ENFORCED[n])]
        runnables[f"{n}/answer"] = llm.with_structured_output(ENFORCED[n], include_raw=True)
        runnables[f"{n}/call"] = llm.bind_tools(tool, tool_choice="fill")
        runnables[f"{n}/one-call"] = llm.bind_tools(
            tool, tool_choice="any", parallel_tool_calls=False
        )
    from langchain_core.runnables import RunnableParallel

    results = RunnableParallel(runnables).invoke(PROMPT)  # concurrent: batched by the engine
    checked = 0
    for n in names:
        answer = results[f"{n}/answer"]
        assert answer["parsing_error"] is None, (n, answer["raw"].content)
        jsonschema.validate(answer["parsed"], ENFORCED[n])
        for kind in ("call", "one-call"):
            reply = results[f"{n}/{kind}"]
            assert len(reply.tool_calls) == 1 and not reply.invalid_tool_calls, (n, reply)
            jsonschema.validate(reply.tool_calls[0]["args"], ENFORCED[n])
        checked += 3
    assert checked == 3 * len(ENFORCED)


def test_a_bound_decoding_cannot_enforce_is_validated_and_retried() -> None:
    """llama.cpp's grammar ignores a one-sided bound: the reply is checked and retried, and
    one that still breaks it is reported, never passed on as valid.

    One call: its attempts are seeded (``seed`` + 7919 per retry), so a second call repeats
    it token for token; thinking off renders one prompt for both templates (conftest).
    """
    variant = "writes"
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 5}},
        "required": ["n"],
    }
    if variant not in _GGUF:
        _GGUF[variant] = LlamaCppBackend(suite_gguf(variant), **LLAMA_TEST_KWARGS)
    llm = ChatSeaLion(backend=_GGUF[variant], temperature=0, max_tokens=100, seed=1)
    plan = AnswerPlan.for_json(schema)
    assert plan.constraint.checked_after == {"minimum"}
    call = llm.bind_tools([tool_for(schema)], tool_choice="fill").invoke(PROMPT, thinking=False)
    for good in call.tool_calls:
        assert good["args"]["n"] >= 5
    for bad in call.invalid_tool_calls:
        assert "minimum" in str(bad["error"]) or "less than" in str(bad["error"])
    assert call.tool_calls or call.invalid_tool_calls
