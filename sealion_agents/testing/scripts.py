r"""The default script and the chat templates every tiny model carries.

Data flow: a chat -> ``TEMPLATES[variant]`` (Llama 3 headers, ``thinking_mode``) -> a prompt that
ends in ``"\n\n"`` (or ``"\n\n<think>"``) -> the default script :func:`default_chains` ->
``<think>REASONING</think>ANSWER<|eot_id|>``.
"""

from __future__ import annotations

from sealion_agents.reasoning import THINK_CLOSE, THINK_OPEN
from sealion_agents.testing.vocab import (
    EOT_ID,
    NEWLINES_ID,
    THINK_CLOSE_ID,
    THINK_OPEN_ID,
    encode,
)

#: The model's thinking, written between ``<think>`` and ``</think>``.
REASONING = "The user said hello, so greet them back warmly."
#: The model's answer, written after ``</think>``.
ANSWER = "Hello! How can I help you today?"

#: The Llama 3 header format up to the assistant's header (templates add the thinking part).
TEMPLATE_HEAD = (
    "{{- bos_token }}\n"
    "{%- for message in messages %}\n"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}\n"
    "{{- (message['content'] or '') | trim }}\n"
    "{{- '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
)
_THINKING_OFF = "{{- '" + THINK_OPEN + THINK_CLOSE + "' }}\n"

#: Chat templates (Llama 3 header format) taking ``thinking_mode`` ("on" when undefined, or "off").
#: ``writes``: with thinking on, the model writes ``<think>`` itself; ``prefilled``: the prompt
#: ends with ``<think>``. Thinking off ends the prompt with ``<think></think>`` in both.
TEMPLATES: dict[str, str] = {
    "writes": TEMPLATE_HEAD
    + (
        "{%- if thinking_mode is defined and thinking_mode == 'off' %}\n"
        + _THINKING_OFF
        + "{%- endif %}\n"
        "{%- endif %}\n"
    ),
    "prefilled": TEMPLATE_HEAD
    + (
        "{%- if thinking_mode is defined and thinking_mode == 'off' %}\n"
        + _THINKING_OFF
        + "{%- else %}\n"
        "{{- '" + THINK_OPEN + "' }}\n"
        "{%- endif %}\n"
        "{%- endif %}\n"
    ),
}


def default_chains() -> list[list[int]]:
    r"""The default script: ``"\n\n"`` -> <think> REASONING </think> ANSWER <|eot_id|>."""
    return [
        [NEWLINES_ID, THINK_OPEN_ID, *encode(REASONING), THINK_CLOSE_ID, *encode(ANSWER), EOT_ID]
    ]
