r"""Tiny models that behave like other SEA-LION families: Qwen (v4, v4.5) and Gemma (v4).

Data flow: a family's chat template (written here, behaving like the family's: its turn
tokens, its thinking switch, how it describes tools, its history rule) + the scripted
scenario ``family_rules`` -> a prompt-keyed model (``rules``) in an architecture llama.cpp and
vLLM load -> a cached GGUF or Hugging Face folder.

The scenario, for both families (``<|im_end|>`` or ``<end_of_turn>`` ends each turn):

* a greeting: with thinking on ``<think>I should greet.</think>\n\nHello!``; with thinking
  off (the template closes an empty reasoning) ``Hello!``;
* a question with the word " weather": the model reasons (thinking on) and then opens a call
  in its family's format (Qwen: ``<tool_call>``, the JSON follows the opener the decoder puts
  in the prompt: ``WEATHER_CALL``); Gemma opens a ```` ```tool_code ```` block and writes
  ``GEMMA_WEATHER_CALL`` after the opener the decoder puts in the prompt; with the word
  " forecast" the models write ``WRONG_CALL`` / ``GEMMA_WRONG_CALL`` (a number where the
  tool takes a string);
* after the tool's result (``<tool_response>`` in the Qwen prompt, "sunny" in Gemma's):
  ``SUNNY``.

The same scenario for two more profiles: ``gemma4_rules`` (family "gemma4": Gemma 4 turns in
``GEMMA4_TEMPLATE``, Qwen's reasoning script, bare JSON calls ``PARAMETERS_WEATHER_CALL`` /
``PARAMETERS_WRONG_CALL``) and ``llama3_it_rules`` (the Llama 3 headers of
``testing.tiny_rules_gguf``, no reasoning, the same JSON calls).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sealion_agents.testing.agent import _split_at_parameters
from sealion_agents.testing.cache import (
    GENERATOR_VERSION,
    _cache_dir,
    build_file_once,
    build_folder_once,
)
from sealion_agents.testing.files import build_gguf, save_hf_folder
from sealion_agents.testing.rules import JSON_PREFERENCES, KEYED_VERSION, Preference, Rule
from sealion_agents.testing.vocab import (
    END_OF_TURN_ID,
    EOT_ID,
    IM_END_ID,
    NEWLINES_ID,
    THINK_CLOSE_ID,
    THINK_OPEN_ID,
    TOOL_CALL_OPEN_ID,
    TOOL_RESPONSE_OPEN_ID,
    encode,
    encode_one,
)

__all__ = [
    "FAMILY_ARCHITECTURES",
    "as_qwen_rules",
    "FAMILY_TEMPLATES",
    "GEMMA4_TEMPLATE",
    "GEMMA_WEATHER_CALL",
    "GEMMA_WRONG_CALL",
    "GREETING",
    "PARAMETERS_WEATHER_CALL",
    "PARAMETERS_WRONG_CALL",
    "SUNNY",
    "WEATHER_CALL",
    "WRONG_CALL",
    "family_rules",
    "gemma4_rules",
    "llama3_it_rules",
    "tiny_family_gguf",
    "tiny_family_hf_folder",
    "tiny_family_rules_gguf",
]

GREETING = "Hello!"
SUNNY = "It is sunny in Bangkok!"
#: The calls as the models write them (compact JSON: see ``agent.call_rules``).
WEATHER_CALL = '{"name":"get_weather","arguments":{"city":"Bangkok"}}'
#: A call whose argument has the wrong type (the tool takes a string).
WRONG_CALL = '{"name":"get_weather","arguments":{"city":42}}'
#: Gemma's call, as Python in its ``tool_code`` block.
GEMMA_WEATHER_CALL = 'get_weather(city="Bangkok")'
#: Gemma's call with the wrong type (the tool takes a string).
GEMMA_WRONG_CALL = "get_weather(city=42)"
#: The call of the JSON formats (``JSON_CALLS``, ``JSON_USER_RESULTS``: "parameters"), as
#: Gemma 4 and Llama 3.1 write it.
PARAMETERS_WEATHER_CALL = '{"name":"get_weather","parameters":{"city":"Bangkok"}}'
#: That call with the wrong type (the tool takes a string).
PARAMETERS_WRONG_CALL = '{"name":"get_weather","parameters":{"city":42}}'

#: Qwen-style ChatML: tools described in the system turn, thinking switched by
#: ``enable_thinking`` (an empty reasoning closes the prompt when off), earlier reasoning kept
#: in the history when ``reasoning_content`` is given (Qwen3.6's "thinking preservation"),
#: tool results as ``<tool_response>`` in a user turn. Calls of earlier turns arrive as
#: content text; a ``tool_calls`` field would be written as ``<tool_call>`` blocks.
QWEN_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\nFunctions you may call:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>\\nWrite a call as a JSON object with name and arguments in tool_call "
    "tags.<|im_end|>\\n' }}"
    "{%- elif messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' %}"
    "{{- '<|im_start|>user\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if message.reasoning_content %}"
    "{{- '<think>' + message.reasoning_content + '</think>\\n\\n' }}"
    "{%- endif %}"
    "{{- message.content }}"
    "{%- for call in message.tool_calls or [] %}"
    "{{- '<tool_call>\\n' + (call.function | tojson) + '\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + "
    "'\\n</tool_response><|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

#: Gemma-style turns: no system role (a system message opens the first user turn), no
#: thinking switch, strictly alternating user and model turns (else the template raises).
GEMMA_TEMPLATE = (
    "{{- bos_token }}"
    "{%- set first = messages[0].content + '\\n\\n' if messages[0].role == 'system' else '' %}"
    "{%- set turns = messages[1:] if messages[0].role == 'system' else messages %}"
    "{%- for message in turns %}"
    "{%- if (message.role == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/...') }}"
    "{%- endif %}"
    "{%- set role = 'model' if message.role == 'assistant' else message.role %}"
    "{{- '<start_of_turn>' + role + '\\n' + (first if loop.first else '') }}"
    "{{- message.content + '<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"
)

#: Gemma-4-style turns: Gemma's turn tokens with a native system turn, no alternation check,
#: thinking switched by ``enable_thinking`` (off unless true; off closes an empty reasoning, as
#: Gemma 4 closes an empty thought channel), reasoning in ``<think>`` tags (the profile's),
#: earlier reasoning never rendered (Gemma 4 drops it). Tools are described by the caller's
#: system message and results arrive as user turns (``JSON_USER_RESULTS``).
GEMMA4_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- set role = 'model' if message.role == 'assistant' else message.role %}"
    "{{- '<start_of_turn>' + role + '\\n' + message.content + '<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<start_of_turn>model\\n' }}"
    "{%- if not (enable_thinking is defined and enable_thinking) %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

FAMILY_TEMPLATES = {"qwen": QWEN_TEMPLATE, "gemma": GEMMA_TEMPLATE, "gemma4": GEMMA4_TEMPLATE}
_END = {"qwen": IM_END_ID, "gemma": END_OF_TURN_ID, "gemma4": END_OF_TURN_ID}


def family_rules(family: str) -> list[Rule | Preference]:
    """The scripted scenario (module docstring) for ``family`` ("qwen", "gemma", "gemma4")."""
    if family == "gemma4":
        return gemma4_rules()
    end = _END[family]
    weather, forecast = encode_one(" weather"), encode_one(" forecast")
    sunny = encode_one(" sunny")
    prompt_end = encode("\n")  # "<|im_start|>assistant\n", "<start_of_turn>model\n"
    rules: list[Rule | Preference] = []
    if family == "qwen":
        gap = encode("\n\n")  # after "</think>", and the end of a thinking-off prompt
        result = frozenset({weather, TOOL_CALL_OPEN_ID, TOOL_RESPONSE_OPEN_ID})

        def reasoning(text: str, when: frozenset[int] = frozenset()) -> Rule:
            return Rule([*prompt_end, THINK_OPEN_ID, *encode(text), THINK_CLOSE_ID, *gap], when)

        rules += [reasoning("I should greet."), Rule([*gap, *encode(GREETING), end])]
        for marker, call in ((weather, WEATHER_CALL), (forecast, WRONG_CALL)):
            rules += [
                reasoning(
                    f"I need the{' weather' if marker == weather else ' forecast'} tool.",
                    frozenset({marker}),
                ),
                Rule([*gap, TOOL_CALL_OPEN_ID], when=frozenset({marker})),
                # the decoder continues after "<tool_call>\n": the call's JSON
                *_split_at_parameters(
                    prompt_end, call, [end], frozenset({marker, TOOL_CALL_OPEN_ID})
                ),
            ]
        rules += [
            reasoning("The tool answered.", result),
            Rule([*gap, *encode(SUNNY), end], result),
        ]
    else:
        rules += [
            Rule([*prompt_end, *encode(GREETING), end]),
            # the model opens its block; once the decoder continues after the opener, the
            # scripted "```" is not allowed: its preference starts the call, the chain ends it
            Rule([*prompt_end, *encode("```tool_code")], when=frozenset({weather})),
            Rule([*encode(GEMMA_WEATHER_CALL), end], when=frozenset({weather})),
            Rule([*prompt_end, *encode("```tool_code")], when=frozenset({forecast})),
            Rule([*encode(GEMMA_WRONG_CALL), end], when=frozenset({forecast})),
            Preference(encode(GEMMA_WEATHER_CALL)[:1]),
            Rule([*prompt_end, *encode(SUNNY), end], when=frozenset({weather, sunny})),
        ]
    return [*rules, *JSON_PREFERENCES]


def gemma4_rules() -> list[Rule | Preference]:
    r"""The scenario the Gemma 4 way (``GEMMA4_TEMPLATE``): Qwen's script, other turns and calls.

    Thinking on: ``<think>...</think>\n\n`` after ``<start_of_turn>model\n`` (a call right
    after ``</think>``); off: the reply starts after the prompt's closed empty reasoning.
    Calls are bare compact JSON
    (``PARAMETERS_WEATHER_CALL``, ``PARAMETERS_WRONG_CALL``); the answer ``SUNNY`` follows a result
    (a user turn) that holds " sunny".
    """
    end = END_OF_TURN_ID
    weather, forecast = encode_one(" weather"), encode_one(" forecast")
    result = frozenset({weather, encode_one(" sunny")})
    prompt_end, gap = encode("\n"), encode("\n\n")

    def reasoning(text: str, when: frozenset[int] = frozenset(), after: int = gap[0]) -> Rule:
        return Rule([*prompt_end, THINK_OPEN_ID, *encode(text), THINK_CLOSE_ID, after], when)

    rules: list[Rule | Preference] = [
        reasoning("I should greet."),
        Rule([*gap, *encode(GREETING), end]),
    ]
    for marker, word, call in (
        (weather, "weather", PARAMETERS_WEATHER_CALL),
        (forecast, "forecast", PARAMETERS_WRONG_CALL),
    ):
        when = frozenset({marker})
        # the call follows "</think>" at once (the decoder reads a JSON answer from its
        # first token), or the closed empty reasoning of a thinking-off prompt
        rules += [
            reasoning(f"I need the {word} tool.", when, after=encode(call)[0]),
            *_split_at_parameters(gap, call, [end], when),
        ]
    rules += [reasoning("The tool answered.", result), Rule([*gap, *encode(SUNNY), end], result)]
    return [*rules, *JSON_PREFERENCES]


def llama3_it_rules() -> list[Rule | Preference]:
    r"""The scenario the Llama 3.1 Instruct way (SEA-LION v3 IT: no reasoning, ``JSON_CALLS``).

    For ``testing.tiny_rules_gguf`` (Llama 3 headers): after the prompt's ``"\n\n"`` the
    reply, ended by ``<|eot_id|>``: ``GREETING``; a bare compact JSON call where " weather"
    (``PARAMETERS_WEATHER_CALL``) or " forecast" (``PARAMETERS_WRONG_CALL``) occurs; ``SUNNY``
    after a result (the ``ipython`` turn) that holds " sunny".
    """
    weather, forecast = encode_one(" weather"), encode_one(" forecast")
    result = frozenset({weather, encode_one(" sunny")})
    rules: list[Rule | Preference] = [Rule([NEWLINES_ID, *encode(GREETING), EOT_ID])]
    for marker, call in ((weather, PARAMETERS_WEATHER_CALL), (forecast, PARAMETERS_WRONG_CALL)):
        rules += _split_at_parameters([NEWLINES_ID], call, [EOT_ID], frozenset({marker}))
    rules.append(Rule([NEWLINES_ID, *encode(SUNNY), EOT_ID], result))
    return [*rules, *JSON_PREFERENCES]


#: The architecture of each family's models (Qwen3, Gemma 3), as llama.cpp and vLLM load them.
FAMILY_ARCHITECTURES = {"qwen": "qwen3", "gemma": "gemma3", "gemma4": "gemma3"}


def tiny_family_gguf(family: str, *, architecture: str | None = None) -> Path:
    """The family's scripted model as a GGUF (default: in its own architecture), cached."""
    return _family_file("gguf", family, architecture)


def tiny_family_rules_gguf(family: str, rules: Sequence[Rule | Preference]) -> Path:
    """Other scripts (``rules``) in the family's architecture and template, cached."""
    return _family_file("gguf", family, None, list(rules))


def as_qwen_rules(rules: Sequence[Rule | Preference]) -> list[Rule | Preference]:
    r"""Llama-format scripts as the Qwen family writes them.

    A thinking-on reply starts after ``"\n"`` (not ``"\n\n"``), the answer after
    ``"</think>\n\n"``; a thinking-off reply starts after the prompt's ``"\n\n"`` (not after
    ``</think>``); ``<|im_end|>`` ends a turn instead of ``<|eot_id|>``.
    """
    newline, gap = encode("\n"), encode("\n\n")
    out: list[Rule | Preference] = []
    for rule in rules:
        if not isinstance(rule, Rule):
            out.append(rule)
            continue
        chain = list(rule.chain)
        if chain[0] == NEWLINES_ID:
            chain = [*newline, *chain[1:]]
        elif chain[0] == THINK_CLOSE_ID:
            chain = [*gap, *chain[1:]]
        if THINK_CLOSE_ID in chain[1:]:
            cut = chain.index(THINK_CLOSE_ID, 1) + 1
            chain = [*chain[:cut], *gap, *chain[cut:]]
        chain = [IM_END_ID if token == EOT_ID else token for token in chain]
        out.append(Rule(chain, when=rule.when))
    return out


def tiny_family_hf_folder(family: str, *, architecture: str | None = None) -> Path:
    """The same model as a Hugging Face folder (vLLM), built once and cached."""
    return _family_file("hf", family, architecture)


def _family_file(
    kind: str,
    family: str,
    architecture: str | None,
    rules: list[Rule | Preference] | None = None,
) -> Path:
    if family not in FAMILY_TEMPLATES:
        raise ValueError(f"unknown family {family!r}; choose from {sorted(FAMILY_TEMPLATES)}")
    architecture = architecture or FAMILY_ARCHITECTURES[family]
    rules = family_rules(family) if rules is None else rules
    spec = {
        "generator": GENERATOR_VERSION,
        "keyed": KEYED_VERSION,
        "kind": kind,
        "family": family,
        "architecture": architecture,
        "template": FAMILY_TEMPLATES[family],
        "rules": [rule.spec() for rule in rules],  # type: ignore[misc]
        "code": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    options: dict[str, Any] = {
        "rules": rules,
        "chat_template": FAMILY_TEMPLATES[family],
        "architecture": architecture,
        "eos_token_id": _END[family],
    }
    stem = f"sealion-tiny-{family}-{architecture}-{digest}"
    if kind == "gguf":
        return build_file_once(
            _cache_dir() / f"{stem}.gguf", lambda tmp: build_gguf(tmp, **options)
        )
    return build_folder_once(_cache_dir() / stem, lambda tmp: save_hf_folder(tmp, **options))
