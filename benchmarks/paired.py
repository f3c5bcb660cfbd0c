"""Paired decode-speed comparison shared by bench_gguf.py and bench_vllm.py.

One pair is a raw run and an adapter run on the same loaded model, back to back; the order
alternates from pair to pair, so a slow drift of the machine hits both sides alike. Each
pair gives one ratio (adapter tokens/s over raw tokens/s). The table reports the median
ratio, a 95% interval for it (the sign test's: no assumption on how the ratios spread), and
a verdict against the target that says whether the run decided it: "meets" when the whole
interval is at or above the target, "below" when the whole interval is under it,
"undecided" otherwise (more pairs, or a quieter machine, will tell).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar


class _Row(Protocol):
    @property
    def profile(self) -> str: ...


Case = TypeVar("Case", bound=_Row)

#: The decode target of the profile tables: adapter tokens/s at least this times raw.
TARGET = 0.97

#: The confidence of the intervals the tables print.
LEVEL = 0.95


def least_pairs(level: float = LEVEL) -> int:
    """The fewest pairs whose extremes already cover the median with ``level`` (6 for 95%)."""
    return next(n for n in range(1, 64) if 2 / 2**n <= 1.0 - level)


@dataclass
class Decoded:
    """One streamed generation: a time stamp per token chunk, the text, the usage."""

    stamps: list[float] = field(default_factory=list)
    text: str = ""
    usage: dict[str, Any] | None = None

    def token(self, text: str) -> None:
        """Record one token chunk as it arrives."""
        self.stamps.append(time.perf_counter())
        self.text += text

    @property
    def rate(self) -> float:
        """Tokens per second between the first and the last token (prompt time excluded)."""
        return (len(self.stamps) - 1) / (self.stamps[-1] - self.stamps[0])


def our_stream(llm: Any, messages: list[Any], n: int, **options: Any) -> Decoded:
    """``ChatSeaLion.stream`` (answer and reasoning chunks both count as tokens)."""
    out = Decoded()
    for chunk in llm.stream(messages, max_tokens=n, **options):
        text = chunk.content or chunk.additional_kwargs.get("reasoning_content")
        if text:  # the closing chunk (usage only) is no token
            out.token(str(text))
        if chunk.usage_metadata:
            out.usage = dict(chunk.usage_metadata)
    return out


@dataclass
class Pairs:
    """The runs of one comparison, raw and adapter, in pairs."""

    raws: list[Decoded] = field(default_factory=list)
    ours: list[Decoded] = field(default_factory=list)

    @classmethod
    def run(cls, raw: Callable[[], Decoded], ours: Callable[[], Decoded], pairs: int) -> Pairs:
        """``pairs`` pairs, raw first in the even ones and the adapter first in the odd ones."""
        result = cls()
        for i in range(pairs):
            if i % 2 == 0:
                result.raws.append(raw())
                result.ours.append(ours())
            else:
                result.ours.append(ours())
                result.raws.append(raw())
        return result

    @property
    def ratios(self) -> list[float]:
        """Each pair's adapter rate over its raw rate."""
        return [o.rate / r.rate for r, o in zip(self.raws, self.ours, strict=True)]

    def check(self, prompt_tokens: int) -> str:
        """Whether every pair wrote the same text from a prompt of ``prompt_tokens`` (by the
        adapter's usage), and the pairs' ratios: the end of a row's note."""
        usage = self.ours[-1].usage or {}
        same = usage.get("input_tokens") == prompt_tokens and all(
            o.text == r.text for r, o in zip(self.raws, self.ours, strict=True)
        )
        ratios = " ".join(f"{r:.3f}" for r in self.ratios)
        return (
            f"tokens decoded raw {len(self.raws[-1].stamps)}, ChatSeaLion "
            f"{usage.get('output_tokens')}; same prompt and text in every pair: "
            f"{'yes' if same else 'NO'}; pair ratios {ratios}"
        )

    def summary(self, target: float = TARGET) -> Summary:
        """Medians, the paired ratio, its 95% interval and the verdict."""
        ratios = self.ratios
        low, high = median_interval(ratios)
        return Summary(
            raw=statistics.median(d.rate for d in self.raws),
            ours=statistics.median(d.rate for d in self.ours),
            paired=statistics.median(ratios),
            low=low,
            high=high,
            verdict=verdict(low, high, target),
        )


@dataclass(frozen=True)
class Summary:
    """What one profile row prints."""

    raw: float
    ours: float
    paired: float
    low: float
    high: float
    verdict: str

    @property
    def cells(self) -> list[str]:
        """raw tok/s, adapter tok/s, paired ratio, its interval, the verdict."""
        return [
            f"{self.raw:.1f}",
            f"{self.ours:.1f}",
            f"{self.paired:.3f}",
            f"{self.low:.3f}-{self.high:.3f}",
            self.verdict,
        ]


#: The header cells that go with ``Summary.cells``.
HEADER = ["raw tok/s", "ChatSeaLion tok/s", "paired ratio", "95% interval", f"vs {TARGET}"]


def print_table(title: str, rows: list[tuple[list[str], str]]) -> None:
    """A profile table: the title, what the columns mean, the rows (profile, model, then
    ``Summary.cells``), then each row's note."""
    print()
    print(title)
    print(
        "(paired ratio: median over pairs of adapter tok/s / raw tok/s, the two runs back to "
        "back; 95% interval: the sign test's, from the pairs' order; meets: the whole interval "
        f">= {TARGET}, below: all of it under, undecided: neither)"
    )
    print("| profile | model | " + " | ".join(HEADER) + " |")
    print("|---|---|" + "---|" * len(HEADER))
    for cells, _ in rows:
        print("| " + " | ".join(cells) + " |")
    for _, note in rows:
        print(note)


def median_interval(values: Iterable[float], level: float = LEVEL) -> tuple[float, float]:
    """A distribution-free interval for the median: the k-th smallest and k-th largest value.

    Each value is above or below the true median with even odds, so the number below it is
    Binomial(n, 1/2); k is the largest rank with P(fewer than k below) <= (1 - level) / 2, and
    the interval covers the median with probability at least ``level`` (the sign test's
    interval; no assumption on how the ratios are spread, no random draws).
    """
    ordered = sorted(values)
    n = len(ordered)
    tail, below, k = (1.0 - level) / 2.0, 0.0, 0
    for rank in range(n):
        below += math.comb(n, rank) / 2**n
        if below > tail:
            break
        k = rank + 1
    if k == 0:
        raise ValueError(
            f"{n} pairs give no {level:.0%} interval for the median: "
            f"run at least {least_pairs(level)}"
        )
    return ordered[k - 1], ordered[n - k]


def verdict(low: float, high: float, target: float = TARGET) -> str:
    """ "meets" (interval at or above the target), "below" (under it) or "undecided"."""
    if low >= target:
        return "meets"
    if high < target:
        return "below"
    return "undecided"


def chosen(cases: list[Case], names: list[str] | None) -> list[Case]:
    """The table's rows for the profiles named (all without names); unknown names stop the run."""
    known = [case.profile for case in cases]
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise SystemExit(f"--profile {', '.join(unknown)}: not in this table; use one of {known}")
    return [case for case in cases if not names or case.profile in names]
