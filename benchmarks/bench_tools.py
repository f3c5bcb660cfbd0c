"""Constrained vs free decoding, and an agent step vs the model call it makes: same run.

The tiny scripted agent (``sealion_agents.testing.tiny_agent_gguf``) keeps Llama 3's real
128,256-token vocabulary, so a sampler that checks every token against a grammar shows its
cost. Measured, with thinking off (the answer is the whole output):

1. llama.cpp: decode tokens/s of the agent's tool call (valid JSON, as a real model writes
   it) free vs under its grammar, through ChatSeaLion; raw llama-cpp-python (``Llama.generate``,
   free and with its own ``grammar=``) on the same prompt tokens as the baseline;
2. the worst case: a forced call whose free reply is text, so every token is rejected and the
   whole vocabulary is masked (only the constrained rate exists there);
3. vLLM in-process (``--vllm``): the same call free vs with structured outputs, through
   ChatSeaLion and raw ``LLM.generate``;
4. one ``create_agent`` step (an answer without tools) vs the ``bind_tools(...).invoke`` it
   makes, same prompt.

Usage: python benchmarks/bench_tools.py [--repeats 30] [--vllm]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.setdefault("GGML_NO_BACKTRACE", "1")

from langchain_core.messages import HumanMessage  # noqa: E402
from sealion_agents.tools import Calculator  # noqa: E402

from sealion_agents import ChatSeaLion, create_sealion_agent  # noqa: E402
from sealion_agents import testing as tm  # noqa: E402
from sealion_agents.backends.base import AnswerConstraint, GenerationRequest  # noqa: E402
from sealion_agents.messages import to_template_messages  # noqa: E402
from sealion_agents.options import GenerationOptions  # noqa: E402
from sealion_agents.tool_calls import AnswerPlan, tool_specs  # noqa: E402


def search_documents(query: str) -> str:
    """Search the company documents for passages about the query."""
    return tm.AGENT_PASSAGE


TOOLS = [search_documents, Calculator()]


def rate(stamps: list[float]) -> float:
    """Tokens per second between the first and the last token (the prompt excluded)."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def request(question: str, constrained: bool) -> GenerationRequest:
    plan = AnswerPlan.for_tools(tool_specs(TOOLS), "any")
    assert plan is not None
    messages = [{"role": "system", "content": plan.instructions}]
    messages += to_template_messages([HumanMessage(question)])
    constraint = AnswerConstraint(plan.constraint.schema) if constrained else None
    options = GenerationOptions(thinking=False, temperature=0, max_tokens=80)
    return GenerationRequest(messages=messages, options=options, constraint=constraint)


def backend_rate(backend: Any, req: GenerationRequest) -> tuple[float, int]:
    stamps = []
    for event in backend.stream(req):
        if getattr(event, "text", ""):
            stamps.append(time.perf_counter())
    return rate(stamps), len(stamps)


def median(fn: Any, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def llamacpp_rows(repeats: int) -> list[tuple[str, float, float, str]]:
    from llama_cpp import LlamaGrammar

    from sealion_agents.backends.llamacpp import LlamaCppBackend
    from sealion_agents.grammars import schema_grammar

    backend = LlamaCppBackend(tm.tiny_agent_gguf(), n_ctx=2048, n_threads=1, n_threads_batch=1)
    llm = backend.llama
    free, constrained = request(tm.AGENT_QUESTION, False), request(tm.AGENT_QUESTION, True)
    tokens = llm.tokenize(backend.render(free).encode(), add_bos=False, special=True)
    grammar_text = schema_grammar(constrained.constraint.schema)  # type: ignore[union-attr]

    def raw(grammar: Any = None) -> float:
        stamps = []
        for i, token in enumerate(
            llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0, grammar=grammar)
        ):
            if token == tm.EOT_ID or i >= 80:
                break
            stamps.append(time.perf_counter())
        return rate(stamps)

    n_tokens = backend_rate(backend, constrained)[1]
    raw_free = median(raw, repeats)
    raw_grammar = median(
        lambda: raw(LlamaGrammar.from_string(grammar_text, verbose=False)), repeats
    )
    ours_free = median(lambda: backend_rate(backend, free)[0], repeats)
    ours_constrained = median(lambda: backend_rate(backend, constrained)[0], repeats)
    worst = request("Hello there", True)
    ours_worst = median(lambda: backend_rate(backend, worst)[0], max(3, repeats // 5))
    backend.close()
    print(f"llama.cpp, the agent's call ({n_tokens} tokens), median of {repeats}:")
    return [
        ("free decoding, tokens/s", raw_free, ours_free, ">= 0.97 of raw"),
        (
            "constrained, tokens/s (raw: llama-cpp-python grammar=)",
            raw_grammar,
            ours_constrained,
            "-",
        ),
        ("constrained / free (ours)", 1.0, ours_constrained / ours_free, ">= 0.5"),
        ("worst case: every token masked, tokens/s", raw_free, ours_worst, "-"),
    ]


def vllm_rows(repeats: int) -> list[tuple[str, float, float, str]]:
    from sealion_agents.testing.servers import VLLM_ENGINE_KWARGS, VLLM_ENV

    os.environ.update(VLLM_ENV)
    import vllm
    from vllm.sampling_params import StructuredOutputsParams

    from sealion_agents.backends.vllm import VLLMBackend

    backend = VLLMBackend(
        tm.tiny_agent_hf_folder(), **{**VLLM_ENGINE_KWARGS, "max_model_len": 2048}
    )
    free, constrained = request(tm.AGENT_QUESTION, False), request(tm.AGENT_QUESTION, True)
    llm = backend.llm
    ids = llm.get_tokenizer().encode(backend.render(free, llm), add_special_tokens=False)

    def raw(structured: bool) -> float:
        kwargs = dict(temperature=0.0, max_tokens=80, skip_special_tokens=False)
        if structured:
            kwargs["structured_outputs"] = StructuredOutputsParams(
                json=constrained.constraint.schema,
                disable_any_whitespace=True,  # type: ignore[union-attr]
            )
        start = time.perf_counter()
        out = llm.generate(
            [{"prompt_token_ids": ids}], vllm.SamplingParams(**kwargs), use_tqdm=False
        )
        return len(out[0].outputs[0].token_ids) / (time.perf_counter() - start)

    def ours(req: GenerationRequest) -> float:
        start = time.perf_counter()
        n = sum(getattr(e, "tokens", 0) for e in backend.stream(req) if hasattr(e, "text"))
        return n / (time.perf_counter() - start)

    rows = [
        (
            "free decoding, tokens/s",
            median(lambda: raw(False), repeats),
            median(lambda: ours(free), repeats),
            ">= 0.9 of raw",
        ),
        (
            "structured outputs, tokens/s",
            median(lambda: raw(True), repeats),
            median(lambda: ours(constrained), repeats),
            "-",
        ),
    ]
    rows.append(("constrained / free (ours)", 1.0, rows[1][2] / rows[0][2], ">= 0.5"))
    backend.close()
    print("vLLM in-process (whole call timed, prompt included):")
    return rows


def agent_rows(repeats: int) -> list[tuple[str, float, float, str]]:
    llm = ChatSeaLion.from_gguf(tm.tiny_agent_gguf(), n_ctx=2048, temperature=0, thinking=False)
    agent = create_sealion_agent(llm, TOOLS)
    model = llm.bind_tools(TOOLS)
    question = [HumanMessage("Hello there")]

    def timed(fn: Any) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    raw = median(
        lambda: timed(lambda: model.invoke(question, thinking=True, max_thinking_tokens=1024)),
        repeats,
    )
    step = median(lambda: timed(lambda: agent.invoke({"messages": question})), repeats)
    llm.close()
    print("create_agent, one step (a text answer) vs the model call it makes:")
    return [("seconds per step", raw, step, "overhead only")]


def show(rows: list[tuple[str, float, float, str]]) -> None:
    print("| measure | baseline | sealion-agents | ratio | target |")
    print("|---|---|---|---|---|")
    for name, base, ours, target in rows:
        print(f"| {name} | {base:.4g} | {ours:.4g} | {ours / base:.3f} | {target} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--vllm", action="store_true", help="also measure vLLM in-process")
    args = parser.parse_args()
    show(llamacpp_rows(args.repeats))
    if args.vllm:
        show(vllm_rows(args.repeats))
    show(agent_rows(max(5, args.repeats // 3)))


if __name__ == "__main__":
    main()
