"""Grammar-constrained sampling for llama.cpp that checks one token, not the vocabulary.

llama-cpp-python puts a grammar in the sampler chain, which then tests all 128,256 tokens of
Llama 3's vocabulary against the grammar at every step. As llama.cpp's own samplers do
(``grammar_first = false``), ``GrammarCheckedSampler`` samples without the grammar, asks the
grammar about that one token, and only when it is rejected masks the whole vocabulary and
samples again. The result is the same token the full mask gives for greedy decoding, and a
draw from the same allowed set otherwise.

Data flow: logits -> the chain (penalties, greedy or top-k/top-p/temperature/dist) -> token
-> grammar check (1 candidate) -> accepted, or: every logit -> grammar mask -> the chain ->
token -> grammar accepts it.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

from sealion_agents.errors import UnsupportedSchemaError

__all__ = ["GrammarCheckedSampler", "check_grammar"]


def _lib() -> Any:
    from llama_cpp import llama_cpp as lib

    return lib


def check_grammar(vocab: Any, text: str) -> None:
    """Parse a grammar with llama.cpp: one it rejects would crash its sampler."""
    lib = _lib()
    sampler = lib.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
    if not sampler:
        raise UnsupportedSchemaError(
            "llama.cpp rejected the grammar built from this JSON schema; simplify the schema "
            "or report it with the schema attached."
        )
    lib.llama_sampler_free(sampler)


class GrammarCheckedSampler:
    """Stands in for llama-cpp-python's sampler chain inside ``Llama.generate``."""

    def __init__(self, chain: Any, vocab: Any, n_vocab: int, grammar: str) -> None:
        lib = _lib()
        self._chain = chain  # llama-cpp-python's LlamaSampler, without a grammar
        self._grammar = lib.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
        if not self._grammar:
            raise UnsupportedSchemaError("llama.cpp rejected the grammar (see check_grammar).")
        self._one = (lib.llama_token_data * 1)()
        self._all = (lib.llama_token_data * n_vocab)()
        self._view = np.ctypeslib.as_array(self._all)  # id, logit, p as numpy fields
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._n_vocab = n_vocab
        self.full_masks = 0  # how often the whole vocabulary had to be masked

    def sample(self, ctx: Any, idx: int) -> int:
        """One token the grammar allows (``LlamaSampler.sample``'s signature)."""
        lib = _lib()
        token = int(self._chain.sample(ctx, idx))  # the chain also accepts it
        self._one[0].id = token
        self._one[0].logit = 1.0
        self._one[0].p = 0.0
        one = lib.llama_token_data_array(self._one, 1, -1, False)
        lib.llama_sampler_apply(self._grammar, ctypes.byref(one))
        if math.isinf(self._one[0].logit):  # rejected: mask the vocabulary and draw again
            self.full_masks += 1
            logits = lib.llama_get_logits_ith(ctx.ctx, idx)
            self._view["logit"] = np.ctypeslib.as_array(logits, shape=(self._n_vocab,))
            self._view["id"] = self._ids  # the chain reordered the array last time
            self._view["p"] = 0.0
            every = lib.llama_token_data_array(self._all, self._n_vocab, -1, False)
            lib.llama_sampler_apply(self._grammar, ctypes.byref(every))
            lib.llama_sampler_apply(self._chain.sampler, ctypes.byref(every))
            token = int(every.data[every.selected].id)  # samplers reorder in place
        lib.llama_sampler_accept(self._grammar, token)
        return token

    def close(self) -> None:
        """Free the grammar (the chain belongs to llama-cpp-python)."""
        if self._grammar:
            _lib().llama_sampler_free(self._grammar)
            self._grammar = None

    def __del__(self) -> None:
        self.close()
