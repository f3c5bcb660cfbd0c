"""Streaming time to first token: ChatSeaLion on an OpenAI-compatible server vs the raw client.

Both stream the same chat from the same server, alternating, many times; "first token" is
the first delta that carries text (reasoning or answer). The server is vLLM with
``--reasoning-parser deepseek_r1`` on the tiny scripted model (started and stopped here),
so both sides see the same first token (the reasoning's first word). Target: ChatSeaLion
within 5% of the raw client.

    python benchmarks/bench_openai.py
    python benchmarks/bench_openai.py --base-url http://127.0.0.1:8000/v1 --model NAME
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

MESSAGES = [{"role": "user", "content": "Hello there, what is the capital of Singapore?"}]


def ttft_raw(client: Any, model: str) -> float:
    start = time.perf_counter()
    stream = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        stream=True,
        extra_body={"chat_template_kwargs": {"thinking_mode": "on"}},
    )
    try:
        for chunk in stream:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            extra = delta.model_extra or {}
            if delta.content or extra.get("reasoning") or extra.get("reasoning_content"):
                return time.perf_counter() - start
    finally:
        stream.close()
    raise RuntimeError("no token came back")


def ttft_ours(llm: Any) -> float:
    start = time.perf_counter()
    stream = llm.stream(MESSAGES[0]["content"])
    try:
        for chunk in stream:
            if chunk.content or chunk.additional_kwargs.get("reasoning_content"):
                return time.perf_counter() - start
    finally:
        stream.close()
    raise RuntimeError("no token came back")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running server (default: start vLLM here)")
    parser.add_argument("--model", default="sealion-tiny")
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()

    import openai

    from sealion_agents import ChatSeaLion

    server = None
    base_url = args.base_url
    if base_url is None:
        from sealion_agents.testing import tiny_hf_folder
        from sealion_agents.testing.servers import vllm_server

        server = vllm_server(tiny_hf_folder("writes"), reasoning_parser="deepseek_r1", name="bench")
        server.start().wait(300)
        base_url = server.base_url
    try:
        client = openai.OpenAI(base_url=base_url, api_key="unused")
        llm = ChatSeaLion.from_openai(base_url, model=args.model, api_key="unused")
        for _ in range(3):  # warm up both (and the backend's one-off template probe)
            ttft_raw(client, args.model)
            ttft_ours(llm)
        raw: list[float] = []
        ours: list[float] = []
        for i in range(args.runs):
            if i % 2:
                raw.append(ttft_raw(client, args.model))
                ours.append(ttft_ours(llm))
            else:
                ours.append(ttft_ours(llm))
                raw.append(ttft_raw(client, args.model))
    finally:
        if server is not None:
            server.stop()

    print(f"server: {base_url}   model: {args.model}   runs: {args.runs} each, alternating")
    print()
    print(f"{'client':<32}{'median ms':>12}{'mean ms':>10}{'p90 ms':>10}")
    for name, values in (("raw openai client", raw), ("ChatSeaLion.from_openai", ours)):
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        print(
            f"{name:<32}{statistics.median(values) * 1e3:>12.2f}"
            f"{statistics.mean(values) * 1e3:>10.2f}{p90 * 1e3:>10.2f}"
        )
    ratio = statistics.median(ours) / statistics.median(raw)
    print()
    print(f"TTFT ours / raw (median): {ratio:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
