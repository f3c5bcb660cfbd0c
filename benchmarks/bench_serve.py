"""`sealion serve` under load vs ChatSeaLion in-process; queue overflow and memory: same run.

All on the tiny scripted GGUF (``sealion_agents.testing.tiny_gguf``, run by the real
llama.cpp), whose reply is ``<think>REASONING</think>ANSWER`` (thinking on). Measured:

1. load: ``sealion serve --rate-limit 0 --key-parallel 64 --queue-size 64`` (one generation
   at a time, the GGUF default) and ``--clients`` concurrent streaming clients (the official
   ``openai.AsyncOpenAI``, ``stream_options.include_usage``), each sending ``--requests``
   requests one after another. Every stream must end properly (a ``finish_reason`` chunk, then
   the usage chunk, no error, nothing after) with the scripted answer in ``content`` and the
   reasoning in ``reasoning_content`` only; any other outcome counts as an error.
2. the baseline, in the same run: the same workload on ``ChatSeaLion.from_gguf`` in this
   process (``--clients`` asyncio tasks calling ``llm.astream``; the GGUF runtime also runs one
   generation at a time), twice: "direct", the tasks racing for the model's thread lock (not
   first come, first served: at the same throughput its p50 is lower and its p95 higher than
   a queue's), and "direct, FIFO gate", the tasks taking turns through an asyncio.Lock in
   arrival order as the server's queue does (the like-for-like baseline). With N clients on
   one generation slot, TTFT under load is mostly queueing: its mean is about N / throughput
   whatever the order; the 1-client sequential TTFT (alternating server / direct) measures
   the server's own overhead (HTTP, SSE, JSON, auth).
   Goals: TTFT p50 under load <= 1.2x direct, throughput >= 0.9x direct.
3. overflow: a second server with ``--queue-size 8 --max-parallel 1`` and ``--overflow``
   streaming requests fired at once (thinking on, the longer reply): only 200 and 429 (with
   Retry-After) may come back, no 5xx, no connection error, every 200 a complete stream.
4. memory: the load server's VmRSS after a warm-up (before the load), after each of its load
   rounds and at the end, each after ``--settle`` seconds; goal: within 10%.

``--rounds`` repeats the load on each side (server, direct, direct behind a FIFO gate),
rotating which goes first, and sums them: the numbers move with whatever else the machine runs.

Client and server share this machine's cores, so the server's numbers include the cost of
its clients' HTTP parsing; the direct baseline has no HTTP at all.

Usage: python benchmarks/bench_serve.py [--clients 32] [--requests 5] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GGML_NO_BACKTRACE", "1")

import httpx  # noqa: E402
import openai  # noqa: E402

from sealion_agents import ChatSeaLion  # noqa: E402
from sealion_agents import testing as tm  # noqa: E402
from sealion_agents.serve.keys import KeyStore  # noqa: E402
from sealion_agents.testing.servers import Server, sealion_server  # noqa: E402

MODEL = "sealion"
QUESTION = "Hello there, what is the capital of Singapore?"
LOAD_FLAGS = ["--rate-limit", "0", "--key-parallel", "64", "--queue-size", "64"]
SIDES = ["server", "direct", "direct_fifo"]
OVERFLOW_FLAGS = ["--queue-size", "8", "--max-parallel", "1", "--rate-limit", "0",
                  "--key-parallel", "64"]  # fmt: skip


@dataclass
class Record:
    """One streamed request: seconds to the first text, seconds in all, tokens, what broke."""

    ttft: float | None = None
    total: float = 0.0
    tokens: int = 0
    problem: str | None = None


@dataclass
class Load:
    """A whole load run."""

    records: list[Record] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0  # CPU seconds of this process (the clients, or everything when direct)
    server_cpu: float = 0.0  # CPU seconds of the server process

    def ok(self) -> list[Record]:
        return [r for r in self.records if r.problem is None]

    def summary(self) -> dict[str, Any]:
        good = self.ok()
        ttft = [r.ttft for r in good if r.ttft is not None]
        return {
            "requests": len(self.records),
            "errors": len(self.records) - len(good),
            "problems": dict(Counter(r.problem for r in self.records if r.problem)),
            "ttft_p50_s": pct(ttft, 50),
            "ttft_p95_s": pct(ttft, 95),
            "ttft_mean_s": sum(ttft) / len(ttft) if ttft else float("nan"),
            "total_p50_s": pct([r.total for r in good], 50),
            "total_p95_s": pct([r.total for r in good], 95),
            "wall_s": self.wall,
            "requests_per_s": len(good) / self.wall if self.wall else 0.0,
            "tokens_per_s": sum(r.tokens for r in good) / self.wall if self.wall else 0.0,
            "completion_tokens": sum(r.tokens for r in good),
            "cpu_ms_per_request": 1e3 * self.cpu / len(self.records) if self.records else 0.0,
            "server_cpu_ms_per_request": (
                1e3 * self.server_cpu / len(self.records) if self.records else 0.0
            ),
        }


def pct(values: list[float], q: float) -> float:
    """The q-th percentile, linear between the closest ranks (nan when empty)."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def check_text(content: str, reasoning: str, thinking: bool) -> str | None:
    """What is wrong with a reply's text (None when it is the scripted one)."""
    if tm.THINK_OPEN in content or tm.THINK_CLOSE in content or tm.REASONING in content:
        return "reasoning in content"
    if content != tm.ANSWER:
        return f"content {content[:60]!r} != ANSWER"
    if thinking and reasoning != tm.REASONING:
        return f"reasoning {reasoning[:60]!r} != REASONING"
    return None


# -- the server, through the official openai client ------------------------------------------


async def server_stream(client: openai.AsyncOpenAI, thinking: bool, timeout: float) -> Record:
    record = Record()
    start = time.perf_counter()
    try:
        await asyncio.wait_for(_server_stream(client, thinking, record, start), timeout)
    except TimeoutError:
        record.problem = f"no end after {timeout:.0f}s"
    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
        record.problem = f"{type(exc).__name__}: {str(exc)[:120]}"
    record.total = time.perf_counter() - start
    return record


async def _server_stream(
    client: openai.AsyncOpenAI, thinking: bool, record: Record, start: float
) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"chat_template_kwargs": {"thinking_mode": "on" if thinking else "off"}},
    )
    content, reasoning = [], []
    finish = None
    usage_seen = False
    async with stream:
        async for chunk in stream:
            if usage_seen:
                record.problem = record.problem or "chunk after the usage chunk"
            if not chunk.choices:
                if chunk.usage is None:
                    record.problem = record.problem or "chunk without choices nor usage"
                    continue
                if finish is None:
                    record.problem = record.problem or "usage chunk before finish_reason"
                usage_seen = True
                record.tokens = chunk.usage.completion_tokens
                continue
            choice = chunk.choices[0]
            delta = choice.delta
            text = delta.content or ""
            think = (delta.model_extra or {}).get("reasoning_content") or ""
            if (text or think) and record.ttft is None:
                record.ttft = time.perf_counter() - start
            if (text or think) and finish is not None:
                record.problem = record.problem or "text after finish_reason"
            content.append(text)
            reasoning.append(think)
            if choice.finish_reason:
                finish = choice.finish_reason
    if record.problem:
        return
    if finish is None:
        record.problem = "no finish_reason chunk"
    elif finish != "stop":
        record.problem = f"finish_reason {finish!r}"
    elif not usage_seen:
        record.problem = "no usage chunk"
    else:
        record.problem = check_text("".join(content), "".join(reasoning), thinking)


def client_for(server: Server, secret: str) -> openai.AsyncOpenAI:
    # no retries: a 429 or a dropped stream must show, not be retried away
    return openai.AsyncOpenAI(
        base_url=server.base_url, api_key=secret, max_retries=0, timeout=300.0
    )


async def server_load(
    server: Server, secret: str, clients: int, requests: int, thinking: bool, timeout: float
) -> Load:
    load = Load()
    opened = [client_for(server, secret) for _ in range(clients)]

    async def one_client(client: openai.AsyncOpenAI) -> None:
        for _ in range(requests):
            load.records.append(await server_stream(client, thinking, timeout))

    start, cpu, server_cpu = time.perf_counter(), time.process_time(), cpu_s(server.pid)
    await asyncio.gather(*(one_client(c) for c in opened))
    load.wall = time.perf_counter() - start
    load.cpu = time.process_time() - cpu
    load.server_cpu = cpu_s(server.pid) - server_cpu
    for c in opened:
        await c.close()
    return load


# -- the baseline: ChatSeaLion in this process ------------------------------------------------


async def direct_stream(llm: ChatSeaLion, thinking: bool, timeout: float) -> Record:
    record = Record()
    start = time.perf_counter()

    async def run() -> None:
        content, reasoning = [], []
        async for chunk in llm.astream([("user", QUESTION)], thinking=thinking):
            text = chunk.text
            think = chunk.additional_kwargs.get("reasoning_content") or ""
            if (text or think) and record.ttft is None:
                record.ttft = time.perf_counter() - start
            content.append(text)
            reasoning.append(think)
            if chunk.usage_metadata:
                record.tokens = chunk.usage_metadata["output_tokens"]
        record.problem = check_text("".join(content), "".join(reasoning), thinking)

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        record.problem = f"no end after {timeout:.0f}s"
    except Exception as exc:  # noqa: BLE001
        record.problem = f"{type(exc).__name__}: {str(exc)[:120]}"
    record.total = time.perf_counter() - start
    return record


async def direct_load(
    llm: ChatSeaLion, clients: int, requests: int, thinking: bool, timeout: float, fifo: bool
) -> Load:
    """``fifo``: the tasks take turns through an asyncio.Lock (first come, first served, as
    the server's queue); otherwise they race for the model's own thread lock."""
    load = Load()
    gate = asyncio.Lock() if fifo else contextlib.nullcontext()

    async def one_client() -> None:
        for _ in range(requests):
            start = time.perf_counter()
            async with gate:
                record = await direct_stream(llm, thinking, timeout)
            waited = time.perf_counter() - start - record.total
            record.total += waited
            if record.ttft is not None:
                record.ttft += waited
            load.records.append(record)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    load.wall = time.perf_counter() - start
    load.cpu = time.process_time() - cpu
    return load


# -- overflow: raw HTTP, to see every status and header ---------------------------------------


@dataclass
class Reply:
    status: int | None = None
    retry_after: str | None = None
    problem: str | None = None  # a connection error, a broken 200 stream, a 429 without header
    body: str = ""


async def raw_stream(http: httpx.AsyncClient, server: Server, secret: str, prompt: str) -> Reply:
    reply = Reply()
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "chat_template_kwargs": {"thinking_mode": "on"},
    }
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        async with http.stream(
            "POST", f"{server.base_url}/chat/completions", json=body, headers=headers
        ) as response:
            reply.status = response.status_code
            reply.retry_after = response.headers.get("retry-after")
            if response.status_code != 200:
                reply.body = (await response.aread()).decode(errors="replace")[:300]
                if response.status_code == 429 and not reply.retry_after:
                    reply.problem = "429 without Retry-After"
                return reply
            events = []
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    events.append(line[5:].strip())
            reply.body = "\n".join(events)[-300:]
            reply.problem = check_events(events)
    except httpx.HTTPError as exc:
        reply.problem = f"{type(exc).__name__}: {exc}"
    return reply


def check_events(events: list[str]) -> str | None:
    """What is wrong with a streamed 200's SSE data lines (None when it ended properly)."""
    if not events or events[-1] != "[DONE]":
        return "no [DONE] at the end"
    chunks = [json.loads(e) for e in events[:-1]]
    if any("error" in c for c in chunks):
        return "error event"
    finishes = [i for i, c in enumerate(chunks) if c.get("choices") and
                c["choices"][0].get("finish_reason")]  # fmt: skip
    if not finishes:
        return "no finish_reason chunk"
    last = chunks[-1]
    if last.get("choices") or not last.get("usage") or finishes[-1] != len(chunks) - 2:
        return "the usage chunk is not right after the finish_reason chunk"
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    reasoning = "".join(
        c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks[:-1]
    )
    return check_text(content, reasoning, thinking=True)


async def overflow(server: Server, secret: str, n: int, pad_words: int) -> list[Reply]:
    limits = httpx.Limits(max_connections=n + 8, max_keepalive_connections=n + 8)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(300.0)) as http:
        # a different prompt each (no prompt-cache reuse), padded to make each generation longer
        prompts = [f"{i} " + "lah " * pad_words + QUESTION for i in range(n)]
        gate = asyncio.Event()

        async def fire(prompt: str) -> Reply:
            await gate.wait()
            return await raw_stream(http, server, secret, prompt)

        tasks = [asyncio.create_task(fire(p)) for p in prompts]
        await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(*tasks))


async def metric(server: Server, secret: str, name: str) -> dict[str, float]:
    """The samples of one Prometheus metric of the server, by their label text."""
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"http://127.0.0.1:{server.port}/metrics", headers={"Authorization": f"Bearer {secret}"}
        )
    found = {}
    for line in response.text.splitlines():
        if line.startswith(name):
            sample, value = line.rsplit(" ", 1)
            found[sample[len(name) :]] = float(value)
    return found


# -- the run -----------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def started(gguf: Path, data_dir: Path, flags: list[str], name: str) -> tuple[Server, str]:
    data_dir.mkdir(parents=True)
    _, secret = KeyStore(data_dir / "keys.json").create("bench")
    server = sealion_server(gguf, data_dir, extra=flags, name=name)
    server.start().wait(180)
    return server, secret


def show_problems(label: str, load: Load, server: Server | None) -> None:
    problems = load.summary()["problems"]
    if problems:
        print(f"!! {label}: {sum(problems.values())} broken streams: {problems}")
        if server is not None:
            print(f"-- server log tail --\n{server.log_tail()}\n--")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    gguf = tm.tiny_gguf("writes")
    results: dict[str, Any] = {"config": vars(args) | {"gguf": str(gguf), "cpus": os.cpu_count()}}
    thinking = not args.no_thinking
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        server, secret = started(gguf, Path(tmp) / "load", LOAD_FLAGS, "bench-serve-load")
        try:
            results["server_start_s"] = server.started_s
            llm = ChatSeaLion.from_gguf(gguf)
            llm.load()
            client = client_for(server, secret)
            for _ in range(3):  # warm-up: the model, the template, the connection, the imports
                for rec in (
                    await server_stream(client, thinking, args.timeout),
                    await direct_stream(llm, thinking, args.timeout),
                ):
                    if rec.problem:
                        raise RuntimeError(f"warm-up failed: {rec.problem}\n{server.log_tail()}")

            # 1-client sequential TTFT, alternating which side goes first
            seq_server, seq_direct = Load(), Load()
            for i in range(args.sequential):
                pair = [
                    (seq_server, lambda: server_stream(client, thinking, args.timeout)),
                    (seq_direct, lambda: direct_stream(llm, thinking, args.timeout)),
                ]
                for load, call in pair if i % 2 else pair[::-1]:
                    load.records.append(await call())
            await client.close()
            show_problems("server, sequential", seq_server, server)
            show_problems("direct, sequential", seq_direct, None)

            rss_before = rss_kib(server.pid)
            rss_rounds = []  # the server's RSS after each of its load rounds (+ settle)
            loads: dict[str, list[Load]] = {side: [] for side in SIDES}
            for r in range(args.rounds):  # rotate which side goes first
                for side in SIDES[r % 3 :] + SIDES[: r % 3]:
                    if side == "server":
                        load = await server_load(
                            server, secret, args.clients, args.requests, thinking, args.timeout
                        )
                        await asyncio.sleep(args.settle)
                        rss_rounds.append(rss_kib(server.pid))
                    else:
                        load = await direct_load(
                            llm, args.clients, args.requests, thinking, args.timeout,
                            fifo=side == "direct_fifo",
                        )  # fmt: skip
                    show_problems(f"{side}, load", load, server if side == "server" else None)
                    loads[side].append(load)
            await asyncio.sleep(args.settle)
            rss_after = rss_kib(server.pid)
            results["server_ttft_histogram_count"] = await metric(
                server, secret, "sealion_time_to_first_token_seconds_count"
            )
        finally:
            server.stop()

        results["sequential"] = {"server": seq_server.summary(), "direct": seq_direct.summary()}
        results["load"] = {side: merged(loads[side]).summary() for side in SIDES}
        results["load_rounds"] = {side: [x.summary() for x in loads[side]] for side in SIDES}
        results["rss"] = {
            "before_kib": rss_before,
            "after_each_round_kib": rss_rounds,
            "after_kib": rss_after,
            "ratio": rss_after / rss_before,
        }

        llm.close()
        server, secret = started(gguf, Path(tmp) / "overflow", OVERFLOW_FLAGS, "bench-serve-ovf")
        try:
            client = client_for(server, secret)
            warm = await server_stream(client, True, args.timeout)
            await client.close()
            if warm.problem:
                raise RuntimeError(f"warm-up failed: {warm.problem}\n{server.log_tail()}")
            start = time.perf_counter()
            replies = await overflow(server, secret, args.overflow, args.pad_words)
            wall = time.perf_counter() - start
            rejected = await metric(server, secret, "sealion_rejected_total")
            bad = [r for r in replies if r.problem or r.status not in (200, 429)]
            if bad:
                print(f"!! overflow: {len(bad)} bad replies; first: {asdict(bad[0])}")
                print(f"-- server log tail --\n{server.log_tail()}\n--")
        finally:
            server.stop()
        statuses = Counter(str(r.status) if r.status else "no response" for r in replies)
        results["overflow"] = {
            "requests": len(replies),
            "wall_s": wall,
            "statuses": dict(sorted(statuses.items())),
            "ok_streams": sum(1 for r in replies if r.status == 200 and not r.problem),
            "broken_200": sum(1 for r in replies if r.status == 200 and r.problem),
            "429_with_retry_after": sum(1 for r in replies if r.status == 429 and r.retry_after),
            "retry_after_values": sorted({r.retry_after for r in replies if r.retry_after}),
            "5xx": sum(1 for r in replies if r.status and r.status >= 500),
            "other_status": sum(1 for r in replies if r.status and r.status not in (200, 429)),
            "connection_errors": sum(1 for r in replies if r.status is None),
            "metrics_rejected": rejected,
            "problems": dict(Counter(r.problem for r in replies if r.problem)),
        }
    return results


def merged(loads: list[Load]) -> Load:
    out = Load()
    for load in loads:
        out.records += load.records
        out.wall += load.wall
        out.cpu += load.cpu
        out.server_cpu += load.server_cpu
    return out


def verdict(ok: bool) -> str:
    return "ok" if ok else "**MISSED**"


def show(res: dict[str, Any], args: argparse.Namespace) -> None:
    seq, load, ovf, rss = res["sequential"], res["load"], res["overflow"], res["rss"]
    s, d, f = load["server"], load["direct"], load["direct_fifo"]
    n = args.clients * args.requests
    print()
    print(
        f"tiny GGUF, thinking {'off' if args.no_thinking else 'on'}, {os.cpu_count()} CPUs; "
        f"load: {args.clients} clients x {args.requests} requests ({n} streams) x "
        f"{args.rounds} round(s) per side; sequential: {args.sequential} each, alternating"
    )
    print()
    print("| measure | direct | direct, FIFO gate | sealion serve | serve / direct "
          "| serve / direct FIFO | goal |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")

    def row(name: str, key: str, scale: float, goal: str = "", sides: Any = None) -> None:
        server, direct, fifo = sides or (s, d, f)
        values = [x[key] * scale if x is not None else None for x in (direct, fifo, server)]
        ratios = [values[2] / v if v else None for v in values[:2]]
        cells = [f"{v:.4g}" if v is not None else "-" for v in values]
        cells += [f"{r:.3f}" if r is not None else "-" for r in ratios]
        if goal:
            limit = float(goal[3:])
            met = [r is not None and (r <= limit if goal[0] == "<" else r >= limit) for r in ratios]
            goal = f"{goal}: {verdict(met[0])}" + (
                f" / FIFO {verdict(met[1])}" if ratios[1] is not None else ""
            )
        print(f"| {name} | {' | '.join(cells)} | {goal} |")

    one = (seq["server"], seq["direct"], None)
    row("TTFT p50, 1 client sequential (ms)", "ttft_p50_s", 1e3, sides=one)
    row("TTFT p95, 1 client sequential (ms)", "ttft_p95_s", 1e3, sides=one)
    row("total p50, 1 client sequential (ms)", "total_p50_s", 1e3, sides=one)
    row("TTFT p50 under load (ms)", "ttft_p50_s", 1e3, "<= 1.2")
    row("TTFT p95 under load (ms)", "ttft_p95_s", 1e3)
    row("TTFT mean under load (ms)", "ttft_mean_s", 1e3)
    row("total p50 under load (ms)", "total_p50_s", 1e3)
    row("total p95 under load (ms)", "total_p95_s", 1e3)
    row("requests/s under load", "requests_per_s", 1, ">= 0.9")
    row("completion tokens/s under load", "tokens_per_s", 1, ">= 0.9")
    row("CPU ms/request, this process (clients)", "cpu_ms_per_request", 1)
    row("CPU ms/request, server process", "server_cpu_ms_per_request", 1)
    errors = [x["errors"] for x in (d, f, s)]
    errors[0] += seq["direct"]["errors"]
    errors[2] += seq["server"]["errors"]
    print(f"| broken streams / errors | {errors[0]} | {errors[1]} | {errors[2]} | | "
          f"| 0: {verdict(errors[2] == 0)} |")  # fmt: skip
    print()
    print("| sealion serve | value | goal |")
    print("|---|---|---|")
    print(f"| RSS before load (MiB, after warm-up) | {rss['before_kib'] / 1024:.1f} | |")
    rounds = ", ".join(f"{k / 1024:.1f}" for k in rss["after_each_round_kib"])
    print(f"| RSS after each server load round + {args.settle:g}s (MiB) | {rounds} | |")
    first = rss["after_each_round_kib"][0] / rss["before_kib"]
    print(f"| RSS after round 1 / before | {first:.3f} | |")
    print(f"| RSS at the end (MiB) | {rss['after_kib'] / 1024:.1f} | |")
    print(f"| RSS after / before | {rss['ratio']:.3f} | <= 1.10 {verdict(rss['ratio'] <= 1.1)} |")
    statuses = ", ".join(f"{k}: {v}" for k, v in ovf["statuses"].items())
    sound = ovf["5xx"] == 0 and ovf["connection_errors"] == 0 and ovf["other_status"] == 0
    print(f"| overflow: {ovf['requests']} streams at once, queue 8, 1 slot | {statuses} "
          f"| only 200/429 {verdict(sound)} |")  # fmt: skip
    n429 = ovf["statuses"].get("429", 0)
    print(f"| overflow: 429 with Retry-After | {ovf['429_with_retry_after']} of {n429} "
          f"(values {', '.join(ovf['retry_after_values']) or '-'}) "
          f"| all {verdict(ovf['429_with_retry_after'] == n429)} |")  # fmt: skip
    print(f"| overflow: 200 streams complete | {ovf['ok_streams']} of "
          f"{ovf['statuses'].get('200', 0)} | all {verdict(ovf['broken_200'] == 0)} |")  # fmt: skip
    print(f"| overflow: 5xx / connection errors | {ovf['5xx']} / {ovf['connection_errors']} "
          f"| 0 {verdict(sound)} |")  # fmt: skip
    rejected = ", ".join(f"{k} {v:g}" for k, v in ovf["metrics_rejected"].items()) or "none"
    print(f"| overflow: sealion_rejected_total (/metrics) | {rejected} | = 429s |")
    print(f"| overflow: wall time (s) | {ovf['wall_s']:.2f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent streaming clients")
    parser.add_argument("--requests", type=int, default=5, help="requests per client, in turn")
    parser.add_argument("--rounds", type=int, default=3, help="load rounds per side, rotating")
    parser.add_argument("--sequential", type=int, default=30, help="1-client requests per side")
    parser.add_argument("--overflow", type=int, default=40, help="requests fired at once")
    parser.add_argument(
        "--pad-words", type=int, default=0, help="words added to each overflow prompt"
    )
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before RSS 'after'")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per stream")
    parser.add_argument("--no-thinking", action="store_true", help="load test with thinking off")
    parser.add_argument("--json", type=Path, help="also write the numbers here as JSON")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    show(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
