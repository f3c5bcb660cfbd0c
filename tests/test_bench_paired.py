"""benchmarks/paired.py: the pairing, the interval and the verdict of the decode tables."""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "bench_paired", Path(__file__).parents[1] / "benchmarks" / "paired.py"
)
assert _SPEC and _SPEC.loader
paired = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = paired  # its dataclasses look their module up while being made
_SPEC.loader.exec_module(paired)


def decoded(seconds_per_token: float, tokens: int = 5) -> paired.Decoded:
    return paired.Decoded(stamps=[i * seconds_per_token for i in range(tokens)])


def test_rate_counts_the_gaps_between_tokens() -> None:
    assert decoded(0.01, tokens=11).rate == pytest.approx(100.0)


def test_pairs_alternate_which_side_runs_first() -> None:
    order: list[str] = []

    def side(name: str, spt: float):
        def run() -> paired.Decoded:
            order.append(name)
            return decoded(spt)

        return run

    pairs = paired.Pairs.run(side("raw", 0.010), side("ours", 0.011), 4)
    assert order == ["raw", "ours", "ours", "raw", "raw", "ours", "ours", "raw"]
    assert pairs.ratios == pytest.approx([10 / 11] * 4)


def test_the_ratio_is_taken_within_each_pair() -> None:
    # the machine slows down by half between pairs; each pair's two runs see the same speed
    raws = [decoded(0.010 * (1 + i / 2)) for i in range(6)]
    ours = [decoded(0.010 * (1 + i / 2) / 0.98) for i in range(6)]
    summary = paired.Pairs(raws, ours).summary()
    assert summary.paired == pytest.approx(0.98)
    assert (summary.low, summary.high) == pytest.approx((0.98, 0.98))
    assert summary.verdict == "meets"
    assert summary.ours / summary.raw == pytest.approx(0.98)


def test_the_interval_is_reproducible_and_holds_the_median() -> None:
    values = [0.95, 0.99, 1.01, 0.97, 1.03, 0.96, 1.00, 0.98, 1.02]
    low, high = paired.bootstrap_interval(values)
    assert (low, high) == paired.bootstrap_interval(values)
    assert min(values) <= low <= statistics.median(values) <= high <= max(values)
    assert low < high


def test_the_verdict_needs_the_whole_interval() -> None:
    assert paired.verdict(0.97, 1.02) == "meets"
    assert paired.verdict(0.95, 0.969) == "below"
    assert paired.verdict(0.96, 0.99) == "undecided"


def test_one_pair_is_too_few_for_an_interval() -> None:
    with pytest.raises(ValueError, match="at least two"):
        paired.bootstrap_interval([1.0])
