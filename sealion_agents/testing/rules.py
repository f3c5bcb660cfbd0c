"""Prompt-keyed scripts, compiled into the weights of a one-layer transformer.

Data flow: :class:`Rule` (a chain that applies where its marker tokens occur) and
:class:`Preference` (tokens to lean to where nothing is scripted) -> ``_rule_units`` (one MLP unit
per token and rule, with weights and inhibitors that make the most specific rule win) ->
``_keyed_weights``: Hugging Face Llama weights (attention heads detect markers, MLP units compute
"token AND markers"), or the same model as Qwen3, Gemma 3, Apertus (xIELU MLP) or Nemotron-H
(Mamba2, attention and relu^2 MLP layers) weights. :func:`rule_continuation` gives the same
output in plain Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sealion_agents.testing.vocab import EOT_ID, N_VOCAB, encode_one, llama3_vocab
from sealion_agents.testing.weights import (
    GEMMA3_LOCAL_ROPE_BASE,
    HEAD_DIM,
    SCRIPT_LOGIT,
    _for_architecture,
)

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
#: Gemma 3's sliding-window layers (layer 0 is one) have the rotary base 10000, which turns the
#: marker pair by 0.73 rad over MARKER_REACH positions; the k norm makes up for it, so a marker
#: scores at least MARKER_SCORE that far back.
MARKER_REACH = 4096
#: Gemma 3: value (times the normed bias) of a constant that head 0 adds to the attention output
#: ahead of its post-attention RMSNorm, so that the norm divides by about the same amount however
#: many markers are present; the norm's factor for that dimension is 0.
GEMMA3_CONSTANT_VALUE = 8.0
#: Apertus: down weight of a conjunction unit per unit of rule weight. Its xIELU is 0.5 x when it
#: fires (x = GATE_MARGIN at the largest RMSNorm divisor) and -0.5 when it does not, and a
#: compensation unit per successor cancels those -0.5s, so a firing unit writes 0.5 (x + 1), 8.5:
#: about UNIT_OUTPUT. A power of two keeps the cancelling sums exact in float16.
APERTUS_UNIT_DOWN = 1.0


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


def _rule_units(
    rules: Sequence[Rule], end_token: int = EOT_ID
) -> tuple[list[int], list[int], list[_Unit]]:
    """Known tokens (one hidden dimension each), markers, and one MLP unit per (token, rule).

    A token no rule continues is followed by ``end_token``.
    """
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
    known.setdefault(end_token, None)
    units_out: list[_Unit] = []
    for token in known:
        units = by_token.setdefault(token, {})
        if frozenset() not in units:  # the fallback: <|eot_id|> (or the model's end token)
            units[frozenset()] = _Unit(token, frozenset(), end_token, -1)
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


def rule_successor(
    rules: Sequence[Rule | Preference], ids: Sequence[int], *, end_token: int = EOT_ID
) -> int:
    """What the keyed model writes after ``ids`` (the rules' meaning in plain Python).

    ``end_token``: the model's end token (``eos_token_id`` of the builders), ``<|eot_id|>``
    by default.
    """
    present = set(ids)
    best: tuple[int, int] | None = None
    successor = end_token
    for order, rule in enumerate(r for r in rules if isinstance(r, Rule)):
        if rule.when <= present:
            for a, b in zip(rule.chain[:-1], rule.chain[1:], strict=True):
                if a == ids[-1] and (best is None or (len(rule.when), -order) > best):
                    best, successor = (len(rule.when), -order), b
    return successor


def rule_continuation(
    rules: Sequence[Rule],
    ids: Sequence[int],
    max_tokens: int = 256,
    *,
    end_token: int = EOT_ID,
) -> list[int]:
    """The greedy continuation of ``ids`` up to and including ``<|eot_id|>`` (plain Python).

    ``end_token``: the model's end token if it is not ``<|eot_id|>``.
    """
    prefix = list(ids)
    out: list[int] = []
    while len(out) < max_tokens:
        out.append(rule_successor(rules, prefix + out, end_token=end_token))
        if out[-1] == end_token:
            break
    return out


def _token_name(token: int) -> str:
    return repr(llama3_vocab().tokens[token])


def _f16(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float16).astype(np.float32)


def _keyed_weights(
    rules: Sequence[Rule | Preference],
    *,
    architecture: str = "llama",
    end_token: int = EOT_ID,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Hugging Face weights of a one-layer "compiled" transformer for prompt-keyed rules.

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
    * ``lm_head`` reads the known-token dimensions (plus the unscripted one, as ``end_token``).

    Apertus and Nemotron-H have no gate: a unit's gate row becomes its ``up`` row. Nemotron-H's
    relu^2 gives ``x^2`` (``GATE_MARGIN^2`` at the largest divisor, growing with the squared
    RMSNorm factor as Llama's ``silu(gate) * up`` does) or exactly 0, so its down weights are
    Llama's times ``UNIT_OUTPUT / GATE_MARGIN^2``; its attention has no rotary embedding and no
    q/k norms (the marker score is MARKER_SCORE exactly). Apertus's xIELU (see
    ``weights.APERTUS_XIELU``) gives ``0.5 x`` or -0.5: ``APERTUS_UNIT_DOWN`` and one always-off
    unit per successor dimension whose down weight is minus the sum of that dimension's others,
    so the -0.5s of the units that do not fire cancel.

    ``architecture`` "qwen3", "gemma3" and "apertus" (see ``weights._for_architecture``) add
    RMSNorms on
    each head's q and k. A marker head's q and k each have one non-zero entry (the marker pair's
    first row), and zero keys stay zero, so the norms turn q into ``sqrt(HEAD_DIM)`` there and a
    marker's k into ``sqrt(HEAD_DIM)`` times the k norm's factor for that row, which is set so
    the score is MARKER_SCORE again. Gemma 3 also norms the attention and MLP outputs before
    adding them: a constant from head 0 (``GEMMA3_CONSTANT_VALUE``) keeps the attention norm's
    divisor nearly fixed, and its factor puts a present marker at ``sqrt(hidden)`` (the scale of
    Gemma's embeddings, so the MLP sees what Llama's does); the MLP norm keeps the units' output
    ratios (the winner's successor still gets twice any other's) at UNIT_OUTPUT times the
    embedding scale. gelu_tanh, like silu, is linear above +16 and about 0 below -16.
    """
    preferred = [
        (token, r.logit - 2 * rank)
        for r in rules
        if isinstance(r, Preference)
        for rank, token in enumerate(r.tokens)
    ]
    known, markers, units = _rule_units([r for r in rules if isinstance(r, Rule)], end_token)
    n_markers = len(markers)
    n_dims = 2 + len(known) + n_markers
    hidden = max(64, HEAD_DIM * math.ceil(n_dims / HEAD_DIM), HEAD_DIM * n_markers)
    n_head = hidden // HEAD_DIM
    successors = list(dict.fromkeys(unit.successor for unit in units))
    n_compensation = len(successors) if architecture == "apertus" else 0
    ffn = max(64, 32 * math.ceil((len(units) + n_compensation) / 32))
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
    unit_down = {"apertus": APERTUS_UNIT_DOWN, "nemotron_h": UNIT_OUTPUT / GATE_MARGIN**2}.get(
        architecture, down_scale
    )
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
        down[tok_dim[unit.successor], u] = unit.weight * unit_down
    if architecture in ("apertus", "nemotron_h"):  # non-gated: the gate row is the up row
        up = gate.copy()
    for c, successor in enumerate(successors[:n_compensation], start=len(units)):
        up[c, bias_dim] = -w  # always -2 GATE_MARGIN or less: xIELU gives -0.5
        down[tok_dim[successor], c] = -down[tok_dim[successor]].sum()

    # Output: a winning unit's dimension dominates the final RMSNorm, giving about SCRIPT_LOGIT.
    lm_head = np.zeros((N_VOCAB, hidden), dtype=np.float32)
    for token, dim in tok_dim.items():
        lm_head[token, dim] = SCRIPT_LOGIT / math.sqrt(hidden)
    lm_head[end_token, default_dim] = SCRIPT_LOGIT * math.sqrt(2 / hidden)
    for token, logit in preferred:  # through the bias: a logit everywhere
        lm_head[token, bias_dim] = logit * math.sqrt(2 / hidden)

    post_attention: np.ndarray | None = None
    if architecture == "gemma3":
        constant_row = 1  # head 0's value row 0 is marker 0's; row 1 is free
        wv[constant_row, bias_dim] = GEMMA3_CONSTANT_VALUE
        wo[bias_dim, constant_row] = 1.0
        post_attention = np.zeros(hidden, np.float32)
        for dim in present_dim.values():
            post_attention[dim] = GEMMA3_CONSTANT_VALUE * s

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
        "model.layers.0.mlp.up_proj.weight": _f16(up),
        "model.layers.0.mlp.down_proj.weight": _f16(down),
        "model.norm.weight": ones.copy(),
        "lm_head.weight": _f16(lm_head),
    }
    dims = {"hidden": hidden, "n_head": n_head, "ffn": ffn}
    if architecture == "llama":
        return weights, dims
    k_norm = np.ones(HEAD_DIM, np.float32)
    k_norm[MARKER_ROPE_ROW] = MARKER_SCORE / math.sqrt(HEAD_DIM)
    post_feedforward = None
    if architecture == "gemma3":
        turn = MARKER_REACH * GEMMA3_LOCAL_ROPE_BASE ** (-2 * MARKER_ROPE_ROW / HEAD_DIM)
        k_norm[MARKER_ROPE_ROW] /= math.cos(turn)
        post_feedforward = np.full(hidden, UNIT_OUTPUT, np.float32)
    converted = _for_architecture(
        weights,
        architecture,
        k_norm=k_norm,
        post_attention=post_attention,
        post_feedforward=post_feedforward,
    )
    return converted, dims
