"""The Llama 3 vocabulary, with ``<think>``/``</think>`` as single tokens: ids and a tokenizer.

Data flow: ``llama_models/llama3/tokenizer.model`` (tiktoken ranks) -> :class:`Llama3Vocab`
(GPT-2 byte-level token strings, token types, BPE merges) -> a Hugging Face ``tokenizer.json``
document -> :func:`hf_tokenizer` -> :func:`encode` (text -> token ids, as llama.cpp gives them).
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealion_agents.reasoning import THINK_CLOSE, THINK_OPEN

THINK_OPEN_ID = 128013
THINK_CLOSE_ID = 128014
BOS_ID = 128000  # <|begin_of_text|>
END_OF_TEXT_ID = 128001  # <|end_of_text|>
EOM_ID = 128008  # <|eom_id|>
EOT_ID = 128009  # <|eot_id|>
#: Special tokens of other model families, in reserved slots, for templates that behave like
#: theirs (Qwen's ChatML turns and Hermes tool calls, Gemma's turns).
IM_START_ID = 128020  # <|im_start|>
IM_END_ID = 128021  # <|im_end|>
TOOL_CALL_OPEN_ID = 128022  # <tool_call>
TOOL_CALL_CLOSE_ID = 128023  # </tool_call>
TOOL_RESPONSE_OPEN_ID = 128024  # <tool_response>
TOOL_RESPONSE_CLOSE_ID = 128025  # </tool_response>
START_OF_TURN_ID = 128026  # <start_of_turn>
END_OF_TURN_ID = 128027  # <end_of_turn>
#: Apertus's turn, reasoning and tool tokens (swiss-ai's Apertus chat format).
SYSTEM_START_ID = 128028  # <|system_start|>
SYSTEM_END_ID = 128029  # <|system_end|>
DEVELOPER_START_ID = 128030  # <|developer_start|>
DEVELOPER_END_ID = 128031  # <|developer_end|>
USER_START_ID = 128032  # <|user_start|>
USER_END_ID = 128033  # <|user_end|>
ASSISTANT_START_ID = 128034  # <|assistant_start|>
ASSISTANT_END_ID = 128035  # <|assistant_end|>
INNER_PREFIX_ID = 128036  # <|inner_prefix|>
INNER_SUFFIX_ID = 128037  # <|inner_suffix|>
TOOLS_PREFIX_ID = 128038  # <|tools_prefix|>
TOOLS_SUFFIX_ID = 128039  # <|tools_suffix|>
#: Gemma 4's turn, thought-channel and tool tokens (its chat template).
TURN_OPEN_ID = 128040  # <|turn>
TURN_CLOSE_ID = 128041  # <turn|>
CHANNEL_OPEN_ID = 128042  # <|channel>
CHANNEL_CLOSE_ID = 128043  # <channel|>
GEMMA4_CALL_OPEN_ID = 128044  # <|tool_call>
GEMMA4_CALL_CLOSE_ID = 128045  # <tool_call|>
GEMMA4_RESPONSE_OPEN_ID = 128046  # <|tool_response>
GEMMA4_RESPONSE_CLOSE_ID = 128047  # <tool_response|>
GEMMA4_QUOTE_ID = 128048  # <|"|>
GEMMA4_THINK_ID = 128049  # <|think|>
GEMMA4_TOOL_OPEN_ID = 128050  # <|tool>
GEMMA4_TOOL_CLOSE_ID = 128051  # <tool|>
FAMILY_TOKENS = {
    IM_START_ID: "<|im_start|>",
    IM_END_ID: "<|im_end|>",
    TOOL_CALL_OPEN_ID: "<tool_call>",
    TOOL_CALL_CLOSE_ID: "</tool_call>",
    TOOL_RESPONSE_OPEN_ID: "<tool_response>",
    TOOL_RESPONSE_CLOSE_ID: "</tool_response>",
    START_OF_TURN_ID: "<start_of_turn>",
    END_OF_TURN_ID: "<end_of_turn>",
    SYSTEM_START_ID: "<|system_start|>",
    SYSTEM_END_ID: "<|system_end|>",
    DEVELOPER_START_ID: "<|developer_start|>",
    DEVELOPER_END_ID: "<|developer_end|>",
    USER_START_ID: "<|user_start|>",
    USER_END_ID: "<|user_end|>",
    ASSISTANT_START_ID: "<|assistant_start|>",
    ASSISTANT_END_ID: "<|assistant_end|>",
    INNER_PREFIX_ID: "<|inner_prefix|>",
    INNER_SUFFIX_ID: "<|inner_suffix|>",
    TOOLS_PREFIX_ID: "<|tools_prefix|>",
    TOOLS_SUFFIX_ID: "<|tools_suffix|>",
    TURN_OPEN_ID: "<|turn>",
    TURN_CLOSE_ID: "<turn|>",
    CHANNEL_OPEN_ID: "<|channel>",
    CHANNEL_CLOSE_ID: "<channel|>",
    GEMMA4_CALL_OPEN_ID: "<|tool_call>",
    GEMMA4_CALL_CLOSE_ID: "<tool_call|>",
    GEMMA4_RESPONSE_OPEN_ID: "<|tool_response>",
    GEMMA4_RESPONSE_CLOSE_ID: "<tool_response|>",
    GEMMA4_QUOTE_ID: '<|"|>',
    GEMMA4_THINK_ID: "<|think|>",
    GEMMA4_TOOL_OPEN_ID: "<|tool>",
    GEMMA4_TOOL_CLOSE_ID: "<tool|>",
}
#: Family tokens that are text in the model's output (user-defined, like ``<think>``).
TEXT_FAMILY_TOKENS = (
    TOOL_CALL_OPEN_ID,
    TOOL_CALL_CLOSE_ID,
    TOOL_RESPONSE_OPEN_ID,
    TOOL_RESPONSE_CLOSE_ID,
    INNER_PREFIX_ID,
    INNER_SUFFIX_ID,
    TOOLS_PREFIX_ID,
    TOOLS_SUFFIX_ID,
    CHANNEL_OPEN_ID,
    CHANNEL_CLOSE_ID,
    GEMMA4_CALL_OPEN_ID,
    GEMMA4_CALL_CLOSE_ID,
    GEMMA4_RESPONSE_OPEN_ID,
    GEMMA4_RESPONSE_CLOSE_ID,
    GEMMA4_QUOTE_ID,
)
NEWLINES_ID = 271  # "\n\n", the last token of the Llama 3 generation prompt
N_BASE_TOKENS = 128_000
N_VOCAB = 128_256

#: Llama 3's pre-tokenizer regex (from llama_models/llama3/tokenizer.py).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


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
    """Llama 3.1's special tokens; <think>, </think>, other families' tokens in reserved slots."""
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
    for token_id, name in FAMILY_TOKENS.items():
        names[token_id - N_BASE_TOKENS] = name
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
    for token_id in TEXT_FAMILY_TOKENS:
        types[token_id] = 4
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
