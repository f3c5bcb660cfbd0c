"""benchmarks/paired.py: the pairing, the interval and the verdict of the decode tables."""

from __future__ import annotations

import importlib.util
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


def test_the_interval_is_the_sign_tests() -> None:
    values = [0.95, 0.99, 1.01, 0.97, 1.03, 0.96, 1.00, 0.98, 1.02]
    # n = 9: P(at most 1 of 9 below the median) = 10/512 <= 0.025 < P(at most 2) = 46/512,
    # so the interval runs from the 2nd smallest to the 2nd largest
    assert paired.median_interval(values) == (0.96, 1.02)
    # n = 6: only the extremes (coverage 1 - 2/64); n = 41: the 14th from each end
    assert paired.median_interval([3.0, 1.0, 2.0, 6.0, 5.0, 4.0]) == (1.0, 6.0)
    many = [i / 100 for i in range(41)]
    assert paired.median_interval(many) == (many[13], many[27])


def test_the_interval_covers_the_median_as_often_as_it_says() -> None:
    import random

    rng = random.Random(7)
    trials, covered = 2000, 0
    for _ in range(trials):
        sample = [rng.lognormvariate(0.0, 0.1) for _ in range(25)]  # true median: 1.0
        low, high = paired.median_interval(sample)
        covered += low <= 1.0 <= high
    assert covered / trials >= 0.94  # exact coverage for n = 25 is 0.957


def test_the_verdict_needs_the_whole_interval() -> None:
    assert paired.verdict(0.97, 1.02) == "meets"
    assert paired.verdict(0.95, 0.969) == "below"
    assert paired.verdict(0.96, 0.99) == "undecided"


def test_five_pairs_are_too_few_for_an_interval() -> None:
    with pytest.raises(ValueError, match="5 pairs give no 95% interval.*at least 6"):
        paired.median_interval([1.0, 0.9, 1.1, 1.0, 0.95])


def test_six_pairs_are_the_least_for_95_percent() -> None:
    assert paired.least_pairs() == 6
    assert paired.median_interval([1.0] * paired.least_pairs()) == (1.0, 1.0)


def test_the_check_says_when_the_two_sides_wrote_different_text() -> None:
    def run(text: str) -> paired.Decoded:
        out = decoded(0.01)
        out.text, out.usage = text, {"input_tokens": 12, "output_tokens": 4}
        return out

    same = paired.Pairs([run("a cat")] * 6, [run("a cat")] * 6)
    assert "same prompt and text in every pair: yes" in same.check(12)
    assert "same prompt and text in every pair: NO" in same.check(13)  # another prompt
    differ = paired.Pairs([run("a cat")] * 6, [run("a cat")] * 5 + [run("a dog")])
    assert "same prompt and text in every pair: NO" in differ.check(12)
    assert "pair ratios 1.000 1.000" in differ.check(12)
