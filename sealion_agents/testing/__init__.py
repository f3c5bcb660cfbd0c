r"""Tiny "SEA-LION-shaped" models whose greedy output is a scripted lookup table: for tests.

Use them to test your own chains deterministically on the REAL runtimes (llama.cpp, vLLM),
offline and in seconds::

    from sealion_agents import ChatSeaLion
    from sealion_agents.testing import ANSWER, REASONING, tiny_gguf

    llm = ChatSeaLion.from_gguf(tiny_gguf(), temperature=0)
    reply = llm.invoke("Hi")   # reply.content == ANSWER, its reasoning == REASONING

Needs the ``testing`` extra (``pip install -e ".[testing]"`` in a clone) plus the Llama 3
tokenizer file that ``llama-models`` ships (``pip install --no-deps llama-models==0.3.0``).
Files are built once and cached in ``$SEALION_TEST_CACHE`` (default
``~/.cache/sealion-agents/tiny-models``).

The models use the Llama 3.1 architecture and the full Llama 3 tokenizer (128,256 tokens, with
``<think>`` and ``</think>`` as single tokens at ids 128013/128014 like DeepSeek-R1-Distill-Llama).
Attention and MLP outputs are zero, so each position's residual stream is its own token embedding
and the next token depends only on the last token of the context:

* every token of a script chain has a one-hot embedding in its own hidden dimension, and
  ``output.weight`` maps it to its successor with a logit of 64 against 0;
* every other token shares one "default" dimension that maps to ``<|eot_id|>``, so an unscripted
  context ends the generation at once.

The same weights are written as a GGUF file (llama.cpp) and as a Hugging Face Llama folder (vLLM).
The default script answers any chat: the last token of the Llama 3 generation prompt (``"\n\n"``)
leads to ``<think>REASONING</think>ANSWER<|eot_id|>``.

Prompt-keyed scripts (:class:`Rule`, :func:`tiny_rules_gguf`) make the output depend on the
prompt's content too: a rule applies only where its marker tokens occur anywhere in the context.
That model is a small "compiled" transformer (attention heads detect the markers, MLP units
compute "token AND markers"); see :mod:`sealion_agents.testing.rules`. Usage::

    rules = [
        Rule(default_chains()[0]),  # no markers: the fallback
        Rule([THINK_CLOSE_ID, *encode("It is in Marina Bay [1]."), EOT_ID],
             when={encode_one(" Singapore")}),
    ]
    path = tiny_rules_gguf("qa", rules)  # and tiny_rules_hf_folder("qa", rules) for vLLM
    expected = rule_continuation(rules, prompt_ids)  # the same answer in plain Python

Data flow: a script (:mod:`.scripts`: the default chain and chat templates; :mod:`.agent`: a
tool-calling agent; or your own :class:`Rule` list) over the Llama 3 vocabulary (:mod:`.vocab`)
-> weights (:mod:`.weights` for the lookup table, :mod:`.rules` compiles prompt-keyed rules)
-> a GGUF file or Hugging Face folder (:mod:`.files`) -> cached on disk under a key of its spec
(:mod:`.cache`) -> the path the ``tiny_*`` functions below return. :mod:`.reference` is a numpy
forward pass to check the weights; :mod:`.servers` starts real model servers for tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sealion_agents.reasoning import THINK_CLOSE, THINK_OPEN
from sealion_agents.testing.agent import (
    AGENT_ANSWER,
    AGENT_CALLS,
    AGENT_PASSAGE,
    AGENT_QUESTION,
    AGENT_REASONING,
    AGENT_RESPONSE,
    JSON_IN_REASONING,
    JSON_IN_REASONING_ANSWER,
    JSON_IN_REASONING_QUESTION,
    agent_rules,
    call_rules,
)
from sealion_agents.testing.cache import GENERATOR_VERSION as GENERATOR_VERSION
from sealion_agents.testing.cache import (
    _cache_dir,
    _cache_key,
    _no_preference_key,
    _rules_key,
    build_file_once,
    build_folder_once,
)
from sealion_agents.testing.files import build_gguf, save_hf_folder
from sealion_agents.testing.files import rule_weights as rule_weights
from sealion_agents.testing.reference import reference_hidden as reference_hidden
from sealion_agents.testing.reference import reference_logits as reference_logits
from sealion_agents.testing.rules import (
    JSON_PREFERENCES,
    Preference,
    Rule,
    rule_continuation,
)
from sealion_agents.testing.rules import rule_successor as rule_successor
from sealion_agents.testing.scripts import ANSWER, REASONING, TEMPLATES, default_chains
from sealion_agents.testing.vocab import BOS_ID as BOS_ID
from sealion_agents.testing.vocab import (
    EOT_ID,
    THINK_CLOSE_ID,
    THINK_OPEN_ID,
    encode,
    encode_one,
    hf_tokenizer,
)
from sealion_agents.testing.vocab import N_BASE_TOKENS as N_BASE_TOKENS
from sealion_agents.testing.vocab import N_VOCAB as N_VOCAB
from sealion_agents.testing.vocab import NEWLINES_ID as NEWLINES_ID
from sealion_agents.testing.vocab import llama3_vocab as llama3_vocab

# The ``name as name`` imports are re-exported outside ``__all__`` (this repository's tests
# use them).
__all__ = [
    "ANSWER",
    "EOT_ID",
    "REASONING",
    "TEMPLATES",
    "THINK_CLOSE",
    "THINK_CLOSE_ID",
    "THINK_OPEN",
    "THINK_OPEN_ID",
    "AGENT_ANSWER",
    "AGENT_CALLS",
    "AGENT_PASSAGE",
    "AGENT_QUESTION",
    "AGENT_REASONING",
    "AGENT_RESPONSE",
    "JSON_IN_REASONING",
    "JSON_IN_REASONING_ANSWER",
    "JSON_IN_REASONING_QUESTION",
    "JSON_PREFERENCES",
    "Preference",
    "Rule",
    "build_gguf",
    "default_chains",
    "encode",
    "encode_one",
    "hf_tokenizer",
    "rule_continuation",
    "save_hf_folder",
    "agent_rules",
    "call_rules",
    "tiny_agent_gguf",
    "tiny_agent_hf_folder",
    "tiny_gguf",
    "tiny_hf_folder",
    "tiny_no_preference_gguf",
    "tiny_no_preference_hf_folder",
    "tiny_rules_gguf",
    "tiny_rules_hf_folder",
]

# The builders below look up ``build_gguf`` and ``save_hf_folder`` in this module, so a test
# that replaces ``testing.build_gguf`` sees whether a cached model is built again.


def tiny_gguf(variant: str = "writes", *, context_length: int = 4096) -> Path:
    """The default-script GGUF with template ``TEMPLATES[variant]``, built once and cached."""
    target = _cache_dir() / (_cache_key("gguf", variant, context_length) + ".gguf")
    return build_file_once(
        target,
        lambda tmp: build_gguf(
            tmp,
            chains=default_chains(),
            chat_template=TEMPLATES[variant],
            context_length=context_length,
        ),
    )


def tiny_hf_folder(variant: str = "writes", *, context_length: int = 4096) -> Path:
    """The default-script Hugging Face folder with ``TEMPLATES[variant]``, built once and cached."""
    target = _cache_dir() / _cache_key("hf", variant, context_length)
    return build_folder_once(
        target,
        lambda tmp: save_hf_folder(
            tmp,
            chains=default_chains(),
            chat_template=TEMPLATES[variant],
            context_length=context_length,
        ),
    )


def tiny_rules_gguf(
    name: str,
    rules: Iterable[Rule | Preference],
    variant: str = "writes",
    *,
    context_length: int = 4096,
) -> Path:
    """A prompt-keyed GGUF (see :class:`Rule`) with ``TEMPLATES[variant]``, built once and cached.

    ``name`` (letters, digits, ``-``/``_``) only names the file; the cache key covers the rules
    (in order: ties between equally specific rules go to the earlier one) and the generator code.
    """
    rules = list(rules)
    target = _cache_dir() / (_rules_key("gguf", name, rules, variant, context_length) + ".gguf")
    return build_file_once(
        target,
        lambda tmp: build_gguf(
            tmp, rules=rules, chat_template=TEMPLATES[variant], context_length=context_length
        ),
    )


def tiny_rules_hf_folder(
    name: str,
    rules: Iterable[Rule | Preference],
    variant: str = "writes",
    *,
    context_length: int = 4096,
) -> Path:
    """The same prompt-keyed model as a Hugging Face folder (vLLM), built once and cached."""
    rules = list(rules)
    target = _cache_dir() / _rules_key("hf", name, rules, variant, context_length)
    return build_folder_once(
        target,
        lambda tmp: save_hf_folder(
            tmp, rules=rules, chat_template=TEMPLATES[variant], context_length=context_length
        ),
    )


def tiny_agent_gguf(variant: str = "writes") -> Path:
    """The scripted agent (``agent_rules``) as a GGUF, built once and cached."""
    return tiny_rules_gguf("agent", agent_rules(), variant)


def tiny_agent_hf_folder(variant: str = "writes") -> Path:
    """The scripted agent (``agent_rules``) as a Hugging Face folder (vLLM), built once."""
    return tiny_rules_hf_folder("agent", agent_rules(), variant)


def tiny_no_preference_gguf(variant: str = "writes") -> Path:
    """A model with no preference at all, as a GGUF: every token always equally likely.

    It is the default-script model with ``output.weight`` set to zero, so every logit is 0:
    greedy decoding takes the lowest allowed token id, sampling draws uniformly from what a
    grammar allows. A constrained reply ends only if the grammar makes it end. Cached.
    """

    def write(tmp: Path) -> None:
        import gguf

        build_gguf(tmp, chains=default_chains(), chat_template=TEMPLATES[variant])
        reader = gguf.GGUFReader(str(tmp), "r+")
        (output,) = [t for t in reader.tensors if t.name == "output.weight"]
        output.data[...] = 0
        reader.data.flush()
        del output, reader

    return build_file_once(_cache_dir() / (_no_preference_key("gguf", variant) + ".gguf"), write)


def tiny_no_preference_hf_folder(variant: str = "writes") -> Path:
    """The same model with no preference as a Hugging Face folder (vLLM), built once."""

    def write(tmp: Path) -> None:
        from safetensors.numpy import load_file, save_file

        save_hf_folder(tmp, chains=default_chains(), chat_template=TEMPLATES[variant])
        weights = load_file(str(tmp / "model.safetensors"))
        weights["lm_head.weight"][...] = 0.0
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})

    return build_folder_once(_cache_dir() / _no_preference_key("hf", variant), write)
