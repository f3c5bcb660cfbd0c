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
compute "token AND markers"); see :func:`_keyed_weights`. Usage::

    rules = [
        Rule(default_chains()[0]),  # no markers: the fallback
        Rule([THINK_CLOSE_ID, *encode("It is in Marina Bay [1]."), EOT_ID],
             when={encode_one(" Singapore")}),
    ]
    path = tiny_rules_gguf("qa", rules)  # and tiny_rules_hf_folder("qa", rules) for vLLM
    expected = rule_continuation(rules, prompt_ids)  # the same answer in plain Python
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
import inspect
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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

# Bump when the generated files change in any way, so cached files are rebuilt.
GENERATOR_VERSION = 1

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
THINK_OPEN_ID = 128013
THINK_CLOSE_ID = 128014
BOS_ID = 128000  # <|begin_of_text|>
END_OF_TEXT_ID = 128001  # <|end_of_text|>
EOM_ID = 128008  # <|eom_id|>
EOT_ID = 128009  # <|eot_id|>
NEWLINES_ID = 271  # "\n\n", the last token of the Llama 3 generation prompt
N_BASE_TOKENS = 128_000
N_VOCAB = 128_256
HEAD_DIM = 32
SCRIPT_LOGIT = 64.0

#: The model's thinking, written between ``<think>`` and ``</think>``.
REASONING = "The user said hello, so greet them back warmly."
#: The model's answer, written after ``</think>``.
ANSWER = "Hello! How can I help you today?"

#: Llama 3's pre-tokenizer regex (from llama_models/llama3/tokenizer.py).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_TEMPLATE_HEAD = (
    "{{- bos_token }}\n"
    "{%- for message in messages %}\n"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}\n"
    "{{- (message['content'] or '') | trim }}\n"
    "{{- '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
)

#: Chat templates (Llama 3 header format) taking ``thinking_mode`` ("on" when undefined, or "off").
#: ``writes``: with thinking on, the model writes ``<think>`` itself; ``prefilled``: the prompt
#: ends with ``<think>``. Thinking off ends the prompt with ``<think></think>`` in both.
TEMPLATES: dict[str, str] = {
    "writes": _TEMPLATE_HEAD
    + (
        "{%- if thinking_mode is defined and thinking_mode == 'off' %}\n"
        "{{- '<think></think>' }}\n"
        "{%- endif %}\n"
        "{%- endif %}\n"
    ),
    "prefilled": _TEMPLATE_HEAD
    + (
        "{%- if thinking_mode is defined and thinking_mode == 'off' %}\n"
        "{{- '<think></think>' }}\n"
        "{%- else %}\n"
        "{{- '<think>' }}\n"
        "{%- endif %}\n"
        "{%- endif %}\n"
    ),
}


# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Llama3Vocab:
    """The Llama 3 vocabulary in GGUF / Hugging Face form (GPT-2 byte-level strings)."""

    tokens: list[str]
    """All 128,256 token strings; base tokens in the GPT-2 byte-to-unicode alphabet."""
    token_types: list[int]
    """GGUF token types: 1 normal, 3 control (``<|...|>``), 4 user-defined (think tags)."""
    merges: list[tuple[str, str]]
    """BPE merges in priority order (every split of a base token into two base tokens)."""
    special: dict[str, int]
    """The 256 special tokens (ids 128000..128255), by name."""
    bos_id: int = BOS_ID
    eos_id: int = EOT_ID
    eot_id: int = EOT_ID
    think_open_id: int = THINK_OPEN_ID
    think_close_id: int = THINK_CLOSE_ID


def _special_token_names() -> list[str]:
    """Llama 3.1's special tokens, with <think>/</think> in two reserved slots."""
    names = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>",
        "<|finetune_right_pad_id|>",
        "<|reserved_special_token_2|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eom_id|>",
        "<|eot_id|>",
        "<|python_tag|>",
    ]
    names += [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + 256 - len(names))]
    names[THINK_OPEN_ID - N_BASE_TOKENS] = THINK_OPEN
    names[THINK_CLOSE_ID - N_BASE_TOKENS] = THINK_CLOSE
    return names


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def _tokenizer_model_path() -> Path:
    spec = importlib.util.find_spec("llama_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "llama_models is not installed: pip install --no-deps llama-models==0.3.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "llama3" / "tokenizer.model"
    if not path.exists():
        raise FileNotFoundError(path)
    return path


@functools.lru_cache(maxsize=1)
def llama3_vocab() -> Llama3Vocab:
    """Parse Llama 3's tiktoken ranks (from ``llama-models``) into a BPE vocabulary."""
    ranked: list[bytes] = []
    for line in _tokenizer_model_path().read_bytes().splitlines():
        if line:
            b64, rank = line.split()
            if int(rank) != len(ranked):
                raise ValueError(f"tokenizer.model: rank {rank.decode()} out of order")
            ranked.append(base64.b64decode(b64))
    if len(ranked) != N_BASE_TOKENS:
        raise ValueError(f"tokenizer.model has {len(ranked)} ranks, expected {N_BASE_TOKENS}")
    ranks = {piece: i for i, piece in enumerate(ranked)}
    byte_map = _bytes_to_unicode()
    to_str = [byte_map[b] for b in range(256)]

    def text(piece: bytes) -> str:
        return "".join([to_str[b] for b in piece])

    # Every split of a token into two tokens is a merge, ordered by the merged token's rank and
    # then by the parts' ranks: BPE then merges, like tiktoken, the adjacent pair whose
    # concatenation ranks lowest. (Running BPE on each token's bytes to find a single merge does
    # not work: token 100421 b".:.:" ends in three parts.) This reproduces the 280,147 merges of
    # llama.cpp's reference Llama 3 vocabulary (models/ggml-vocab-llama-bpe.gguf) exactly.
    merges: list[tuple[str, str]] = []
    for piece in ranked:
        splits = []
        for i in range(1, len(piece)):
            left = ranks.get(piece[:i])
            if left is not None:
                right = ranks.get(piece[i:])
                if right is not None:
                    splits.append((left, right, i))
        splits.sort()
        merges += [(text(piece[:i]), text(piece[i:])) for _, _, i in splits]

    specials = _special_token_names()
    tokens = [text(piece) for piece in ranked] + specials
    types = [1] * N_BASE_TOKENS + [3] * len(specials)
    types[THINK_OPEN_ID] = types[THINK_CLOSE_ID] = 4
    return Llama3Vocab(
        tokens=tokens,
        token_types=types,
        merges=merges,
        special={name: N_BASE_TOKENS + i for i, name in enumerate(specials)},
    )


def _tokenizer_json() -> dict[str, Any]:
    """A Hugging Face ``tokenizer.json`` document equivalent to Llama 3's (plus think tags)."""
    vocab = llama3_vocab()
    added = [
        {
            "id": token_id,
            "content": name,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": vocab.token_types[token_id] == 3,
        }
        for name, token_id in vocab.special.items()
    ]
    bos = "<|begin_of_text|>"
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": LLAMA3_PATTERN},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {
                    "type": "ByteLevel",
                    "add_prefix_space": False,
                    "trim_offsets": True,
                    "use_regex": False,
                },
            ],
        },
        "post_processor": {
            "type": "Sequence",
            "processors": [
                {
                    "type": "ByteLevel",
                    "add_prefix_space": True,
                    "trim_offsets": False,
                    "use_regex": True,
                },
                {
                    "type": "TemplateProcessing",
                    "single": [
                        {"SpecialToken": {"id": bos, "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}},
                    ],
                    "pair": [
                        {"SpecialToken": {"id": bos, "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}},
                        {"SpecialToken": {"id": bos, "type_id": 1}},
                        {"Sequence": {"id": "B", "type_id": 1}},
                    ],
                    "special_tokens": {bos: {"id": bos, "ids": [BOS_ID], "tokens": [bos]}},
                },
            ],
        },
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": {tok: i for i, tok in enumerate(vocab.tokens[:N_BASE_TOKENS])},
            "merges": [list(m) for m in vocab.merges],
        },
    }


@functools.lru_cache(maxsize=1)
def _tokenizer_json_text() -> str:
    return json.dumps(_tokenizer_json(), ensure_ascii=False)


@functools.lru_cache(maxsize=1)
def hf_tokenizer() -> Any:
    """A ``tokenizers.Tokenizer`` equivalent to Llama 3's, with ``<think>``/``</think>``."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_tokenizer_json_text())


def encode(text: str) -> list[int]:
    """Token ids of ``text`` (special tokens parsed, no BOS added), as llama.cpp gives them."""
    return list(hf_tokenizer().encode(text, add_special_tokens=False).ids)


def encode_one(text: str) -> int:
    """The id of ``text`` if it is a single token (as in a longer text), else ``ValueError``.

    Mind the leading space: ``encode_one(" Merlion")`` is the word inside a sentence.
    """
    ids = encode(text)
    if len(ids) != 1:
        raise ValueError(f"{text!r} is {len(ids)} tokens {ids}, not a single token")
    return ids[0]


# --------------------------------------------------------------------------- weights


def default_chains() -> list[list[int]]:
    r"""The default script: ``"\n\n"`` -> <think> REASONING </think> ANSWER <|eot_id|>."""
    return [
        [NEWLINES_ID, THINK_OPEN_ID, *encode(REASONING), THINK_CLOSE_ID, *encode(ANSWER), EOT_ID]
    ]


def _successors(chains: Sequence[Sequence[int]]) -> dict[int, int]:
    succ: dict[int, int] = {}
    for chain in chains:
        if len(chain) < 2:
            raise ValueError(f"a chain needs at least two tokens: {list(chain)!r}")
        for token in chain:
            if not 0 <= int(token) < N_VOCAB:
                raise ValueError(f"token id {token} is outside the vocabulary (0..{N_VOCAB - 1})")
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            a, b = int(a), int(b)
            if succ.setdefault(a, b) != b:
                raise ValueError(
                    f"chain conflict: token {a} ({llama3_vocab().tokens[a]!r}) is followed by "
                    f"token {succ[a]} in one place and by token {b} in another"
                )
    return succ


def _hf_weights(chains: Sequence[Sequence[int]]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Hugging Face Llama weights (float32, exact in float16) and their shape parameters."""
    succ = _successors(chains)
    n_dims = len(succ) + 1  # one per scripted token, plus the shared default dimension
    hidden = max(64, HEAD_DIM * math.ceil(n_dims / HEAD_DIM))
    n_head = hidden // HEAD_DIM
    ffn = 2 * hidden
    default_dim = len(succ)
    # After the final RMSNorm a one-hot residual becomes sqrt(hidden) in its dimension.
    scale = SCRIPT_LOGIT / math.sqrt(hidden)

    embed = np.zeros((N_VOCAB, hidden), dtype=np.float32)
    embed[:, default_dim] = 1.0
    lm_head = np.zeros((N_VOCAB, hidden), dtype=np.float32)
    lm_head[EOT_ID, default_dim] = scale
    for dim, (token, nxt) in enumerate(succ.items()):
        embed[token, default_dim] = 0.0
        embed[token, dim] = 1.0
        lm_head[nxt, dim] = scale

    rng = np.random.default_rng(1234)

    def small(*shape: int) -> np.ndarray:
        # Random but exact in float16, so the GGUF (f16) and the safetensors (f32) agree.
        return (rng.standard_normal(shape) * 0.02).astype(np.float16).astype(np.float32)

    ones = np.ones(hidden, dtype=np.float32)
    weights = {
        "model.embed_tokens.weight": embed,
        "model.layers.0.input_layernorm.weight": ones.copy(),
        "model.layers.0.self_attn.q_proj.weight": small(hidden, hidden),
        "model.layers.0.self_attn.k_proj.weight": small(hidden, hidden),
        "model.layers.0.self_attn.v_proj.weight": small(hidden, hidden),
        "model.layers.0.self_attn.o_proj.weight": np.zeros((hidden, hidden), np.float32),
        "model.layers.0.post_attention_layernorm.weight": ones.copy(),
        "model.layers.0.mlp.gate_proj.weight": small(ffn, hidden),
        "model.layers.0.mlp.up_proj.weight": small(ffn, hidden),
        "model.layers.0.mlp.down_proj.weight": np.zeros((hidden, ffn), np.float32),
        "model.norm.weight": ones.copy(),
        "lm_head.weight": lm_head,
    }
    return weights, {"hidden": hidden, "n_head": n_head, "ffn": ffn}


def _permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF -> GGUF rotary layout of q/k rows (as llama.cpp's convert_hf_to_gguf does)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


# --------------------------------------------------------------------------- prompt-keyed rules

#: Version of the prompt-keyed ("compiled") weights below; part of ``tiny_rules_gguf``'s cache key.
KEYED_VERSION = 2
#: Attention score of a marker token (vs 0 for every other token): softmax puts all but
#: ``N * exp(-24)`` (< 2e-7 at 4096 tokens) of the weight on the markers.
MARKER_SCORE = 24.0
#: Rotary pair (HF ``rotate_half`` layout: rows 15 and 31 of a head) with the lowest frequency,
#: 500000 ** (-30 / 32) = 4.6e-6 rad per position: 4096 positions turn it by 0.019 rad, so the
#: marker score changes by under 0.02 %. llama.cpp's GGUF layout has it at rows 30 and 31, which
#: is where ``_permute_qk`` moves row 15.
MARKER_ROPE_ROW = HEAD_DIM // 2 - 1
#: The MLP gate of a conjunction unit is +-GATE_MARGIN (or more) away from zero, so silu is
#: either linear or below 2e-6.
GATE_MARGIN = 16.0
#: Output (residual) of one firing rule unit of weight 1, at the largest RMSNorm divisor.
UNIT_OUTPUT = 8.0
#: A rule is silenced by each marker that alone would make a more specific (or earlier) rule of
#: its token apply. Rules that may still fire together (the winner has two or more markers the
#: other lacks) get output weights 1, 3, 7...: the winner's successor gets at least twice what
#: they give any other successor together, so it leads after the final RMSNorm by about
#: SCRIPT_LOGIT / 2. The cap keeps the residual stream within float16 (vLLM may run in float16).
MAX_RULE_WEIGHT = 255


@dataclass(frozen=True)
class Rule:
    """A script chain, applied only where every ``when`` marker token occurs in the context.

    In ``chain`` each token is followed by the next one. For each step the most specific
    applicable rule wins: the one with the most markers, then the earliest in the list given
    to the builder; rules without markers are the fallback, and a token with no applicable rule
    is followed by ``<|eot_id|>``. Markers are token ids (a ``str`` is converted with
    :func:`encode_one`); they count anywhere in the context, the current token and the tokens
    generated so far included (a scripted answer that contains a marker word turns it on).

    Within one marker set a token has one successor (a chain that repeats a token, like ``"."``
    twice, conflicts unless both are followed by the same token). :func:`rule_continuation`
    gives the expected output in plain Python.
    """

    chain: Sequence[int]
    when: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        chain = tuple(int(t) for t in self.chain)
        if len(chain) < 2:
            raise ValueError(f"a chain needs at least two tokens: {list(chain)!r}")
        markers: set[int] = set()
        raw: Iterable[int | str] = (
            [self.when] if isinstance(self.when, (str, int)) else self.when  # type: ignore[list-item]
        )
        for marker in raw:
            if isinstance(marker, str):
                marker = encode_one(marker)
            if isinstance(marker, bool) or not isinstance(marker, (int, np.integer)):
                raise ValueError(f"a marker must be a single token id or text, not {marker!r}")
            markers.add(int(marker))
        for token in (*chain, *markers):
            if not 0 <= token < N_VOCAB:
                raise ValueError(f"token id {token} is outside the vocabulary (0..{N_VOCAB - 1})")
        object.__setattr__(self, "chain", chain)
        object.__setattr__(self, "when", frozenset(markers))

    def spec(self) -> dict[str, list[int]]:
        """A JSON-able form (for cache keys)."""
        return {"chain": list(self.chain), "when": sorted(self.when)}


PREFERENCE_LOGIT = 60.0
"""Logit of the first preferred token (the next ones 2 less each) where nothing is scripted.

Below the 64 of ``<|eot_id|>`` there; above the pull of a known token towards itself
(``64 / sqrt(2)`` in the same units) where a script is running, and far below its successor.
"""


@dataclass(frozen=True)
class Preference:
    """Tokens the model leans to, in order, with a logit wherever nothing else is scripted.

    The first gets ``logit``, the next ones 2 less each. Scripted successors and the
    ``<|eot_id|>`` of unscripted tokens (both about 64) win wherever they may be written;
    preferences decide among the tokens a grammar leaves when it forbids those (constrained
    decoding). ``JSON_PREFERENCES`` close strings, objects and arrays as early as a grammar
    lets them, so a constrained reply always ends.
    """

    tokens: Sequence[int]
    logit: float = PREFERENCE_LOGIT

    def __post_init__(self) -> None:
        tokens = tuple(encode_one(t) if isinstance(t, str) else int(t) for t in self.tokens)
        if not 0 < self.logit <= PREFERENCE_LOGIT or self.logit - 2 * len(tokens) < 0:
            raise ValueError(
                f"preference logits must lie in (0, {PREFERENCE_LOGIT}]: {len(tokens)} tokens "
                f"from {self.logit}"
            )
        object.__setattr__(self, "tokens", tokens)

    def spec(self) -> dict[str, list[float]]:
        """A JSON-able form (for cache keys)."""
        return {"prefer": [*self.tokens], "logit": [self.logit]}


JSON_PREFERENCES = (Preference([1, 92, 60, 90, 11, 25]), Preference([16], logit=4.0))
"""Close a string (``"``), an object (``}``), an array (``]``), open an object (``{``), then
``,`` and ``:`` before any whitespace; and start numbers with ``1`` (weakly: a known token's
pull towards itself must not keep a number going)."""


def _as_rules(
    chains: Sequence[Sequence[int]] | None, rules: Iterable[Rule | Preference] | None
) -> list[Rule | Preference]:
    out: list[Rule | Preference] = [Rule(chain) for chain in chains or []]
    for rule in rules or []:
        if not isinstance(rule, (Rule, Preference)):
            raise TypeError(f"rules must be Rule objects, not {type(rule).__name__}")
        out.append(rule)
    if not any(isinstance(rule, Rule) for rule in out):
        raise ValueError("give at least one chain or rule")
    return out


@dataclass
class _Unit:
    token: int
    when: frozenset[int]
    successor: int
    order: int
    weight: int = 1
    inhibitors: frozenset[int] = frozenset()


def _rule_units(rules: Sequence[Rule]) -> tuple[list[int], list[int], list[_Unit]]:
    """Known tokens (one hidden dimension each), markers, and one MLP unit per (token, rule)."""
    tokens = _token_name
    by_token: dict[int, dict[frozenset[int], _Unit]] = {}
    known: dict[int, None] = {}
    markers: dict[int, None] = {}
    order = 0
    for rule in rules:
        for m in sorted(rule.when):
            markers.setdefault(m, None)
        for a, b in zip(rule.chain[:-1], rule.chain[1:], strict=True):
            known.setdefault(a, None)
            known.setdefault(b, None)
            units = by_token.setdefault(a, {})
            unit = units.get(rule.when)
            if unit is None:
                units[rule.when] = _Unit(a, rule.when, b, order)
                order += 1
            elif unit.successor != b:
                where = f" when {sorted(rule.when)} occur" if rule.when else ""
                raise ValueError(
                    f"rule conflict: token {a} ({tokens(a)}) is followed by token "
                    f"{unit.successor} ({tokens(unit.successor)}) in one place and by token {b} "
                    f"({tokens(b)}) in another{where}"
                )
    for m in markers:
        known.setdefault(m, None)
    known.setdefault(EOT_ID, None)
    units_out: list[_Unit] = []
    for token in known:
        units = by_token.setdefault(token, {})
        if frozenset() not in units:  # the fallback: <|eot_id|>
            units[frozenset()] = _Unit(token, frozenset(), EOT_ID, -1)
        ranked = sorted(units.values(), key=lambda u: (len(u.when), -u.order))
        for j, unit in enumerate(ranked):
            # A rule that wins over this one with a single marker more silences it (linearly,
            # through that marker's dimension): they never fire together.
            unit.inhibitors = frozenset(
                m for h in ranked[j + 1 :] if len(extra := h.when - unit.when) == 1 for m in extra
            )
            # Less specific rules that may still fire with this one: its successor gets at least
            # twice what they give any other successor together.
            totals: dict[int, int] = {}
            for lower in ranked[:j]:
                if lower.successor != unit.successor and len(unit.when - lower.when) >= 2:
                    totals[lower.successor] = totals.get(lower.successor, 0) + lower.weight
            unit.weight = 1 + 2 * max(totals.values(), default=0)
            if unit.weight > MAX_RULE_WEIGHT:
                raise ValueError(
                    f"too many rules for token {token} ({tokens(token)}) that may apply "
                    "together: simplify their marker sets"
                )
        units_out += ranked
    return list(known), list(markers), units_out


def rule_successor(rules: Sequence[Rule | Preference], ids: Sequence[int]) -> int:
    """What the keyed model writes after ``ids`` (the rules' meaning in plain Python)."""
    present = set(ids)
    best: tuple[int, int] | None = None
    successor = EOT_ID
    for order, rule in enumerate(r for r in rules if isinstance(r, Rule)):
        if rule.when <= present:
            for a, b in zip(rule.chain[:-1], rule.chain[1:], strict=True):
                if a == ids[-1] and (best is None or (len(rule.when), -order) > best):
                    best, successor = (len(rule.when), -order), b
    return successor


def rule_continuation(
    rules: Sequence[Rule], ids: Sequence[int], max_tokens: int = 256
) -> list[int]:
    """The greedy continuation of ``ids`` up to and including ``<|eot_id|>`` (plain Python)."""
    prefix = list(ids)
    out: list[int] = []
    while len(out) < max_tokens:
        out.append(rule_successor(rules, prefix + out))
        if out[-1] == EOT_ID:
            break
    return out


def _token_name(token: int) -> str:
    return repr(llama3_vocab().tokens[token])


def _f16(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float16).astype(np.float32)


def _keyed_weights(
    rules: Sequence[Rule | Preference],
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Hugging Face Llama weights of a one-layer "compiled" transformer for prompt-keyed rules.

    Residual dimensions: 0 a constant bias (1 in every embedding), 1 the shared dimension of
    unscripted tokens, then one per known token (one-hot in its embedding; also the output
    dimension of "followed by this token"), then one "marker present" dimension per marker.

    * attention: head ``i`` finds marker ``i``: its query is a constant (from the bias), its key
      is large only at the marker (in the lowest-frequency rotary pair, so position barely
      matters), its value is 1 at the marker and 0 elsewhere, copied to the marker-present
      dimension: about 1 where the marker occurs in the context, exactly 0 where it does not;
    * MLP: one SwiGLU unit per (token, rule) whose gate is
      ``w * (token + markers - inhibitors - n - 0.5)`` times the RMSNorm factor (the threshold
      comes through the bias, so it scales alike): ``+16`` or more when the token and all ``n``
      markers are on and no inhibitor (see ``MAX_RULE_WEIGHT``), ``-16`` or less otherwise; its up
      projection is the bias, and it writes ``weight * 8`` (or more) to the successor's dimension;
    * ``lm_head`` reads the known-token dimensions (plus the unscripted one, as ``<|eot_id|>``).
    """
    preferred = [
        (token, r.logit - 2 * rank)
        for r in rules
        if isinstance(r, Preference)
        for rank, token in enumerate(r.tokens)
    ]
    known, markers, units = _rule_units([r for r in rules if isinstance(r, Rule)])
    n_markers = len(markers)
    n_dims = 2 + len(known) + n_markers
    hidden = max(64, HEAD_DIM * math.ceil(n_dims / HEAD_DIM), HEAD_DIM * n_markers)
    n_head = hidden // HEAD_DIM
    ffn = max(64, 32 * math.ceil(len(units) / 32))
    bias_dim, default_dim = 0, 1
    tok_dim = {token: 2 + i for i, token in enumerate(known)}
    present_dim = {m: 2 + len(known) + i for i, m in enumerate(markers)}

    embed = np.zeros((N_VOCAB, hidden), dtype=np.float32)
    embed[:, bias_dim] = 1.0
    embed[:, default_dim] = 1.0
    for token, dim in tok_dim.items():
        embed[token, default_dim] = 0.0
        embed[token, dim] = 1.0

    # Attention. Every embedding has squared norm 2, so attn_norm scales it by s = sqrt(hidden/2).
    s = math.sqrt(hidden / 2)
    qk = math.sqrt(MARKER_SCORE * math.sqrt(HEAD_DIM) / s**2)
    wq = np.zeros((hidden, hidden), np.float32)
    wk = np.zeros((hidden, hidden), np.float32)
    wv = np.zeros((hidden, hidden), np.float32)
    wo = np.zeros((hidden, hidden), np.float32)
    for head, m in enumerate(markers):
        row = head * HEAD_DIM + MARKER_ROPE_ROW
        wq[row, bias_dim] = qk
        wk[row, tok_dim[m]] = qk
        wv[head * HEAD_DIM, tok_dim[m]] = 1.0 / s
        wo[present_dim[m], head * HEAD_DIM] = 1.0

    # MLP. After attention the residual has squared norm 2 + (markers present), so ffn_norm
    # scales it by rho in [rho_min, sqrt(hidden/2)].
    rho_min = math.sqrt(hidden / (2 + n_markers))
    w = 2 * GATE_MARGIN / rho_min
    down_scale = UNIT_OUTPUT / (GATE_MARGIN * rho_min)
    gate = np.zeros((ffn, hidden), np.float32)
    up = np.zeros((ffn, hidden), np.float32)
    down = np.zeros((hidden, ffn), np.float32)
    for u, unit in enumerate(units):
        gate[u, tok_dim[unit.token]] = w
        for m in unit.when:
            gate[u, present_dim[m]] = w
        for m in unit.inhibitors:
            gate[u, present_dim[m]] = -w
        gate[u, bias_dim] = -(len(unit.when) + 0.5) * w
        up[u, bias_dim] = 1.0
        down[tok_dim[unit.successor], u] = unit.weight * down_scale

    # Output: a winning unit's dimension dominates the final RMSNorm, giving about SCRIPT_LOGIT.
    lm_head = np.zeros((N_VOCAB, hidden), dtype=np.float32)
    for token, dim in tok_dim.items():
        lm_head[token, dim] = SCRIPT_LOGIT / math.sqrt(hidden)
    lm_head[EOT_ID, default_dim] = SCRIPT_LOGIT * math.sqrt(2 / hidden)
    for token, logit in preferred:  # through the bias: a logit everywhere
        lm_head[token, bias_dim] = logit * math.sqrt(2 / hidden)

    ones = np.ones(hidden, dtype=np.float32)
    weights = {
        "model.embed_tokens.weight": embed,
        "model.layers.0.input_layernorm.weight": ones.copy(),
        "model.layers.0.self_attn.q_proj.weight": _f16(wq),
        "model.layers.0.self_attn.k_proj.weight": _f16(wk),
        "model.layers.0.self_attn.v_proj.weight": _f16(wv),
        "model.layers.0.self_attn.o_proj.weight": wo,
        "model.layers.0.post_attention_layernorm.weight": ones.copy(),
        "model.layers.0.mlp.gate_proj.weight": _f16(gate),
        "model.layers.0.mlp.up_proj.weight": up,
        "model.layers.0.mlp.down_proj.weight": _f16(down),
        "model.norm.weight": ones.copy(),
        "lm_head.weight": _f16(lm_head),
    }
    return weights, {"hidden": hidden, "n_head": n_head, "ffn": ffn}


def _weights(
    chains: Sequence[Sequence[int]] | None, rules: Iterable[Rule | Preference] | None
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    if rules is None:
        if chains is None:
            raise ValueError("give chains or rules")
        return _hf_weights(chains)  # the original lookup-table model, unchanged
    return _keyed_weights(_as_rules(chains, rules))


def reference_hidden(
    weights: dict[str, np.ndarray], ids: Sequence[int], *, rope_theta: float = 500000.0
) -> np.ndarray:
    """A plain numpy forward pass of the one-layer HF Llama: the final normed states (N, hidden).

    RMSNorm, RoPE in ``rotate_half`` form, causal softmax attention, SwiGLU, as transformers'
    ``LlamaForCausalLM`` computes them (in float32).
    """
    eps = 1e-5
    layer = "model.layers.0."

    def norm(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight

    x = weights["model.embed_tokens.weight"][np.asarray(ids)].astype(np.float64)
    n, hidden = x.shape
    n_head = hidden // HEAD_DIM
    h = norm(x, weights[layer + "input_layernorm.weight"])
    q = h @ weights[layer + "self_attn.q_proj.weight"].T
    k = h @ weights[layer + "self_attn.k_proj.weight"].T
    v = h @ weights[layer + "self_attn.v_proj.weight"].T
    inv_freq = 1.0 / rope_theta ** (np.arange(0, HEAD_DIM, 2) / HEAD_DIM)
    angles = np.arange(n)[:, None] * inv_freq[None, :]
    cos = np.cos(np.concatenate([angles, angles], axis=1))
    sin = np.sin(np.concatenate([angles, angles], axis=1))
    half = HEAD_DIM // 2
    attn = np.zeros((n, hidden))
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    for head in range(n_head):
        cols = slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)
        qh, kh, vh = q[:, cols], k[:, cols], v[:, cols]
        if not vh.any():
            continue
        qh = qh * cos + np.concatenate([-qh[:, half:], qh[:, :half]], axis=1) * sin
        kh = kh * cos + np.concatenate([-kh[:, half:], kh[:, :half]], axis=1) * sin
        scores = (qh @ kh.T) / math.sqrt(HEAD_DIM)
        scores[mask] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=1, keepdims=True)
        attn[:, cols] = p @ vh
    x = x + attn @ weights[layer + "self_attn.o_proj.weight"].T
    h = norm(x, weights[layer + "post_attention_layernorm.weight"])
    g = h @ weights[layer + "mlp.gate_proj.weight"].T
    u = h @ weights[layer + "mlp.up_proj.weight"].T
    x = x + (g / (1 + np.exp(-g)) * u) @ weights[layer + "mlp.down_proj.weight"].T
    return norm(x, weights["model.norm.weight"])


def reference_logits(weights: dict[str, np.ndarray], ids: Sequence[int]) -> np.ndarray:
    """The HF model's next-token logits after ``ids`` (numpy reference forward pass)."""
    return weights["lm_head.weight"] @ reference_hidden(weights, ids)[-1]


def rule_weights(
    *,
    chains: Sequence[Sequence[int]] | None = None,
    rules: Iterable[Rule | Preference] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The HF weights (float32, exact in float16) that ``build_gguf``/``save_hf_folder`` write."""
    return _weights(chains, rules)


def build_gguf(
    path: str | os.PathLike[str],
    *,
    chains: Sequence[Sequence[int]] | None = None,
    rules: Iterable[Rule | Preference] | None = None,
    chat_template: str,
    context_length: int = 4096,
) -> Path:
    """Write a scripted tiny Llama GGUF to ``path``: in each chain, token i is followed by i+1.

    With ``rules`` (:class:`Rule`, plus ``chains`` as rules without markers) the model is the
    prompt-keyed one; with ``chains`` only it is the original lookup table (next token depends on
    the last token only).
    """
    import gguf

    weights, dims = _weights(chains, rules)
    vocab = llama3_vocab()
    hidden, n_head = dims["hidden"], dims["n_head"]
    path = Path(path)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("sealion-tiny-scripted")
    writer.add_context_length(context_length)
    writer.add_embedding_length(hidden)
    writer.add_block_count(1)
    writer.add_feed_forward_length(dims["ffn"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(N_VOCAB)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges([f"{a} {b}" for a, b in vocab.merges])
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOT_ID)
    writer.add_eot_token_id(EOT_ID)
    writer.add_eom_token_id(EOM_ID)
    writer.add_add_bos_token(True)
    writer.add_chat_template(chat_template)

    def f16(name: str) -> np.ndarray:
        return weights[name].astype(np.float16)

    layer = "model.layers.0."
    tensors = {
        "token_embd.weight": f16("model.embed_tokens.weight"),
        "blk.0.attn_norm.weight": weights[layer + "input_layernorm.weight"],
        "blk.0.attn_q.weight": _permute_qk(f16(layer + "self_attn.q_proj.weight"), n_head),
        "blk.0.attn_k.weight": _permute_qk(f16(layer + "self_attn.k_proj.weight"), n_head),
        "blk.0.attn_v.weight": f16(layer + "self_attn.v_proj.weight"),
        "blk.0.attn_output.weight": f16(layer + "self_attn.o_proj.weight"),
        "blk.0.ffn_norm.weight": weights[layer + "post_attention_layernorm.weight"],
        "blk.0.ffn_gate.weight": f16(layer + "mlp.gate_proj.weight"),
        "blk.0.ffn_up.weight": f16(layer + "mlp.up_proj.weight"),
        "blk.0.ffn_down.weight": f16(layer + "mlp.down_proj.weight"),
        "output_norm.weight": weights["model.norm.weight"],
        "output.weight": f16("lm_head.weight"),
    }
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def save_hf_folder(
    path: str | os.PathLike[str],
    *,
    chains: Sequence[Sequence[int]] | None = None,
    rules: Iterable[Rule | Preference] | None = None,
    chat_template: str,
    context_length: int = 4096,
) -> Path:
    """Write the same scripted model as a Hugging Face Llama folder (for vLLM) into ``path``."""
    from safetensors.numpy import save_file

    weights, dims = _weights(chains, rules)
    vocab = llama3_vocab()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": BOS_ID,
        "eos_token_id": [END_OF_TEXT_ID, EOM_ID, EOT_ID],
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "hidden_size": dims["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": dims["ffn"],
        "max_position_embeddings": context_length,
        "mlp_bias": False,
        "num_attention_heads": dims["n_head"],
        "num_hidden_layers": 1,
        "num_key_value_heads": dims["n_head"],
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": N_VOCAB,
    }
    generation = {
        "bos_token_id": BOS_ID,
        "eos_token_id": [END_OF_TEXT_ID, EOM_ID, EOT_ID],
        "do_sample": False,
    }
    tokenizer_config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {
            str(token_id): {
                "content": name,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": vocab.token_types[token_id] == 3,
            }
            for name, token_id in vocab.special.items()
        },
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": context_length,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    special_map = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    documents = {
        "config.json": config,
        "generation_config.json": generation,
        "tokenizer_config.json": tokenizer_config,
        "special_tokens_map.json": special_map,
    }
    for name, document in documents.items():
        (path / name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    (path / "tokenizer.json").write_text(_tokenizer_json_text(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- cached builders


def _cache_dir() -> Path:
    env = os.environ.get("SEALION_TEST_CACHE")
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = Path(env) if env else default / "sealion-agents" / "tiny-models"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _cache_key(kind: str, variant: str, context_length: int) -> str:
    if variant not in TEMPLATES:
        raise ValueError(f"unknown variant {variant!r}; choose from {sorted(TEMPLATES)}")
    spec = {
        "generator": GENERATOR_VERSION,
        "kind": kind,
        "reasoning": REASONING,
        "answer": ANSWER,
        "template": TEMPLATES[variant],
        "context_length": context_length,
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"sealion-tiny-{variant}-{digest}"


def tiny_gguf(variant: str = "writes", *, context_length: int = 4096) -> Path:
    """The default-script GGUF with template ``TEMPLATES[variant]``, built once and cached."""
    target = _cache_dir() / (_cache_key("gguf", variant, context_length) + ".gguf")
    if not target.exists():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            build_gguf(
                tmp,
                chains=default_chains(),
                chat_template=TEMPLATES[variant],
                context_length=context_length,
            )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def tiny_hf_folder(variant: str = "writes", *, context_length: int = 4096) -> Path:
    """The default-script Hugging Face folder with ``TEMPLATES[variant]``, built once and cached."""
    root = _cache_dir()
    target = root / _cache_key("hf", variant, context_length)
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root))
        try:
            tmp.chmod(0o755)
            save_hf_folder(
                tmp,
                chains=default_chains(),
                chat_template=TEMPLATES[variant],
                context_length=context_length,
            )
            try:
                os.replace(tmp, target)
            except OSError:
                if not target.exists():  # lost a race only if someone else finished it
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _rules_spec(rules: Iterable[Rule | Preference]) -> list[dict[str, Any]]:
    out = []
    for rule in rules:
        if not isinstance(rule, (Rule, Preference)):
            raise TypeError(f"rules must be Rule objects, not {type(rule).__name__}")
        out.append(rule.spec())
    return out


def _rules_key(
    kind: str, name: str, rules: list[Rule | Preference], variant: str, context_length: int
) -> str:
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"name {name!r}: use letters, digits, '-' and '_'")
    if variant not in TEMPLATES:
        raise ValueError(f"unknown variant {variant!r}; choose from {sorted(TEMPLATES)}")
    spec = {
        "generator": GENERATOR_VERSION,
        "keyed": KEYED_VERSION,
        "code": _KEYED_CODE_DIGEST[kind],
        "kind": kind,
        "rules": _rules_spec(rules),
        "template": TEMPLATES[variant],
        "context_length": context_length,
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"sealion-tiny-rules-{name}-{variant}-{digest}"


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
    if not target.exists():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            build_gguf(
                tmp, rules=rules, chat_template=TEMPLATES[variant], context_length=context_length
            )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def tiny_rules_hf_folder(
    name: str,
    rules: Iterable[Rule | Preference],
    variant: str = "writes",
    *,
    context_length: int = 4096,
) -> Path:
    """The same prompt-keyed model as a Hugging Face folder (vLLM), built once and cached."""
    rules = list(rules)
    root = _cache_dir()
    target = root / _rules_key("hf", name, rules, variant, context_length)
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root))
        try:
            tmp.chmod(0o755)
            save_hf_folder(
                tmp, rules=rules, chat_template=TEMPLATES[variant], context_length=context_length
            )
            try:
                os.replace(tmp, target)
            except OSError:
                if not target.exists():  # lost a race only if someone else finished it
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _code_digest(*functions: Any) -> str:
    """A digest of the code that writes keyed models, so that editing it rebuilds cached files."""
    try:
        code = "".join(inspect.getsource(f) for f in functions)
    except (OSError, TypeError):  # no source: rely on KEYED_VERSION
        return ""
    return hashlib.sha256(code.encode()).hexdigest()[:12]


# Taken at import (the cache key must not change when a test monkeypatches a builder).
_KEYED_CODE_DIGEST = {
    "gguf": _code_digest(_rule_units, _keyed_weights, build_gguf),
    "hf": _code_digest(_rule_units, _keyed_weights, save_hf_folder),
}


# --------------------------------------------------------------------------- a scripted agent

#: The question the scripted agent answers with two tool calls (``agent_rules``).
AGENT_QUESTION = "How many days of annual leave do three employees get in total?"
#: A document passage that holds the fact the agent looks up.
AGENT_PASSAGE = "Each employee gets 14 days of annual leave per year."
#: The agent's reasoning at each of its three steps.
AGENT_REASONING = (
    "The user asks about annual leave, so I search the documents first.",
    "The policy gives 14 days each; for three people I multiply with the calculator.",
    "The calculator has answered.",
)
#: The two tool calls, as the model writes them.
AGENT_CALLS = (
    {"name": "search_documents", "args": {"query": "annual leave"}},
    {"name": "calculator", "args": {"expression": "14*3"}},
)
#: The final answer, after both tool results.
AGENT_ANSWER = "Three employees get 42 days of annual leave in total [1]."
#: The final answer as a structured response, when a response tool ``LeaveTotal`` is bound.
AGENT_RESPONSE = {"name": "LeaveTotal", "args": {"total_days": 42}}
#: A question whose reasoning is full of call-like JSON while the answer is text.
JSON_IN_REASONING_QUESTION = "Show me a JSON example."
JSON_IN_REASONING = (
    'I could write {"name":"calculator","parameters":{"expression":"2+3"}} but no tool is needed'
)
JSON_IN_REASONING_ANSWER = "Sure, an example follows."


def _call_text(call: dict[str, Any]) -> str:
    # compact JSON: its '":{"' token appears only in generated calls, never in a prompt
    return json.dumps({"name": call["name"], "parameters": call["args"]}, separators=(",", ":"))


def call_rules(call: str, markers: Iterable[int | str], *, end: bool = True) -> list[Rule]:
    """A compact JSON tool call, written after ``</think>`` where ``markers`` occur: two rules.

    ``'":"'`` appears twice in a call (after the name, then after a string argument's name)
    with different successors; the part after the parameters open is keyed on ``'":{"'`` as
    well, which is in the context by then (and in no prompt: prompts render calls with
    spaces). ``end=False`` leaves the call unfinished: constrained decoding completes it.
    """
    when = frozenset(encode_one(m) if isinstance(m, str) else int(m) for m in markers)
    return _split_at_parameters([THINK_CLOSE_ID], call, [EOT_ID] if end else [], when)


def _split_at_parameters(
    before: Sequence[int], text: str, after: Sequence[int], when: frozenset[int]
) -> list[Rule]:
    """``before`` + ``text`` (holding a compact call) + ``after`` as two rules.

    The second is keyed on ``'":{"'`` too (see ``call_rules``).
    """
    ids = encode(text)
    opener = encode_one('":{"')
    cut = ids.index(opener) + 2  # up to and including the first parameter's name
    return [
        Rule([*before, *ids[:cut]], when=when),
        Rule([*ids[cut - 1 :], *after], when=when | {opener}),
    ]


def agent_rules() -> list[Rule | Preference]:
    """Rules of a scripted agent: two tool calls, then a cited answer; JSON-friendly fallback.

    * ``AGENT_QUESTION`` -> reasoning 1, a call of ``search_documents``; once the passage
      ("14") is in the context -> reasoning 2, a call of ``calculator``; once its result
      ("42") is too -> reasoning 3 and ``AGENT_ANSWER``;
      (or, when a response tool ``LeaveTotal`` is bound, ``AGENT_RESPONSE``);
    * ``JSON_IN_REASONING_QUESTION`` -> reasoning that holds a call-like JSON, then a text answer;
    * anything else: ``REASONING`` / ``ANSWER`` as in the default model.

    ``JSON_PREFERENCES`` make every grammar-constrained reply end.
    """
    leave, fourteen, result = encode_one(" leave"), encode_one("14"), encode_one("42")
    json_marker = encode_one(" example")
    steps = [frozenset({leave}), frozenset({leave, fourteen}), frozenset({leave, fourteen, result})]
    rules: list[Rule | Preference] = [Rule(default_chains()[0])]
    for when, reasoning, call in zip(steps, AGENT_REASONING, AGENT_CALLS + (None,), strict=True):
        rules.append(
            Rule([NEWLINES_ID, THINK_OPEN_ID, *encode(reasoning), THINK_CLOSE_ID], when=when)
        )
        if call is None:
            rules.append(Rule([THINK_CLOSE_ID, *encode(AGENT_ANSWER), EOT_ID], when=when))
        else:
            rules += call_rules(_call_text(call), when)
    rules += call_rules(_call_text(AGENT_RESPONSE), steps[2] | {encode_one("Total")})
    answer = [THINK_CLOSE_ID, *encode(JSON_IN_REASONING_ANSWER), EOT_ID]
    rules += _split_at_parameters(
        [NEWLINES_ID, THINK_OPEN_ID], JSON_IN_REASONING, answer, frozenset({json_marker})
    )
    rules += JSON_PREFERENCES
    return rules


def tiny_agent_gguf(variant: str = "writes") -> Path:
    """The scripted agent (``agent_rules``) as a GGUF, built once and cached."""
    return tiny_rules_gguf("agent", agent_rules(), variant)


def tiny_agent_hf_folder(variant: str = "writes") -> Path:
    """The scripted agent (``agent_rules``) as a Hugging Face folder (vLLM), built once."""
    return tiny_rules_hf_folder("agent", agent_rules(), variant)


# --------------------------------------------------------------------------- no preference


def _no_preference_key(kind: str, variant: str) -> str:
    if variant not in TEMPLATES:
        raise ValueError(f"unknown variant {variant!r}; choose from {sorted(TEMPLATES)}")
    spec = {"generator": GENERATOR_VERSION, "kind": kind, "template": TEMPLATES[variant]}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"sealion-tiny-no-preference-{variant}-{digest}"


def tiny_no_preference_gguf(variant: str = "writes") -> Path:
    """A model with no preference at all, as a GGUF: every token always equally likely.

    It is the default-script model with ``output.weight`` set to zero, so every logit is 0:
    greedy decoding takes the lowest allowed token id, sampling draws uniformly from what a
    grammar allows. A constrained reply ends only if the grammar makes it end. Cached.
    """
    import gguf

    target = _cache_dir() / (_no_preference_key("gguf", variant) + ".gguf")
    if not target.exists():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            build_gguf(tmp, chains=default_chains(), chat_template=TEMPLATES[variant])
            reader = gguf.GGUFReader(str(tmp), "r+")
            (output,) = [t for t in reader.tensors if t.name == "output.weight"]
            output.data[...] = 0
            reader.data.flush()
            del output, reader
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def tiny_no_preference_hf_folder(variant: str = "writes") -> Path:
    """The same model with no preference as a Hugging Face folder (vLLM), built once."""
    from safetensors.numpy import load_file, save_file

    root = _cache_dir()
    target = root / _no_preference_key("hf", variant)
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root))
        try:
            tmp.chmod(0o755)
            save_hf_folder(tmp, chains=default_chains(), chat_template=TEMPLATES[variant])
            weights = load_file(str(tmp / "model.safetensors"))
            weights["lm_head.weight"][...] = 0.0
            save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            try:
                os.replace(tmp, target)
            except OSError:
                if not target.exists():  # lost a race only if someone else finished it
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
