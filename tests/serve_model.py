"""The scripted model `sealion serve` runs in the tests: grounded Q&A scenarios, a long
reply (for disconnects and queue overflow) and, for everything else, the default script.

Each step of GroundedQA has a marker word in its own prompt (" numbered" in the answer step,
" claim" in the verifier, "Translate" in the translation step); each scenario a marker in
the question, so every model call has an exact scripted reply.
"""

from __future__ import annotations

from pathlib import Path

from sealion_agents import testing as tm

GROUNDED = "It stands proudly at Marina Bay [1]."
REVISED = "It stands proudly at Marina Bay [1]. Its skin is silver[2]!"
REASONING_QA = "Passage one names the place."
DECLINE_REASONING = "No passage mentions Atlantis, so I decline."
MARATHON_MARKER = " marathon"
DOCS = {
    "merlion.md": "The Merlion statue stands at Marina Bay. It has the head of a lion and "
    "the body of a fish.",
    "durian.md": "Durian is a tropical fruit with a strong smell and a thorny husk.",
}


def _answer(marker: str, reasoning: str, answer: str) -> tm.Rule:
    chain = [tm.NEWLINES_ID, tm.THINK_OPEN_ID, *tm.encode(reasoning), tm.THINK_CLOSE_ID]
    return tm.Rule([*chain, *tm.encode(answer), tm.EOT_ID], when={marker, " numbered"})


def _reply(markers: set[str], reply: str) -> tm.Rule:
    return tm.Rule([tm.THINK_CLOSE_ID, *tm.encode(reply), tm.EOT_ID], when=markers)


def marathon_tokens(count: int = 800) -> list[int]:
    """A long reply of distinct ordinary tokens (no marker word of any other rule)."""
    markers = {
        tm.encode_one(m)
        for m in (
            " numbered",
            " claim",
            " mascot",
            " gold",
            " Atlantis",
            "Translate",
            " proudly",
            " silver",
            MARATHON_MARKER,
        )
    }
    return [t for t in range(2000, 2000 + count + len(markers)) if t not in markers][:count]


def serve_rules() -> list[tm.Rule]:
    return [
        tm.Rule([tm.THINK_CLOSE_ID, *marathon_tokens(), tm.EOT_ID], when={MARATHON_MARKER}),
        tm.Rule(tm.default_chains()[0]),
        _answer(" gold", REASONING_QA, REVISED),  # before " mascot": "Is the mascot gold?"
        _answer(" mascot", REASONING_QA, GROUNDED),
        _answer(" Atlantis", DECLINE_REASONING, "NO_ANSWER"),
        _reply({" claim", " proudly"}, "SUPPORTED"),
        _reply({" claim", " silver"}, "UNSUPPORTED"),
        _reply({"Translate"}, "Where is Atlantis?"),
    ]


def serve_gguf() -> Path:
    return tm.tiny_rules_gguf("serve", serve_rules())
