"""The persistent lexical index (SQLite FTS5) against the in-memory bm25s index it replaced.

Synthetic chunks (deterministic; Latin and Thai pseudo-words with a Zipf distribution, about
80 words each) at each size, in the same run:

- old: ``BM25Index`` (bm25s) built from all texts, as every restart and every change of the
  chunk count used to do; its query latency.
- new: ``LexicalIndex`` filled in batches of 1,000 (what ingest pays, chunks/s); then a
  "restart": the file opened by a new process, kept in step with a Chroma collection of the
  same ids (``sync``), and the first query timed; query latency p50/p95 over 200 queries;
  peak memory of that process.
- with ``--chroma``: the whole first hybrid query after a restart (a Chroma collection holding
  the same chunks with random vectors, ``SEARetriever`` in a new process).

    python benchmarks/bench_lexical.py --sizes 10000,100000 [--old-max 100000] [--chroma]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

THAI_SYLLABLES = ["กา", "นา", "มะ", "ระ", "สวัส", "ดี", "เมือง", "หลวง", "ตลาด", "น้ำ", "ข้าว", "ปลา"]
LATIN_SYLLABLES = ["ka", "ra", "ma", "ta", "sa", "la", "pe", "ri", "nu", "go", "bi", "do", "an"]


def vocabulary(size: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = set()
    while len(words) < size:
        if rng.random() < 0.3:
            words.add("".join(rng.choice(THAI_SYLLABLES) for _ in range(rng.randint(2, 4))))
        else:
            words.add("".join(rng.choice(LATIN_SYLLABLES) for _ in range(rng.randint(2, 5))))
    return sorted(words)


def chunks(n: int, vocab: list[str], seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(vocab))))
    out = []
    for _ in range(n):
        words = rng.choices(vocab, cum_weights=cumulative, k=80)
        out.append(" ".join(words))
    return out


def queries(vocab: list[str], count: int = 200, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(vocab[:5000], rng.randint(3, 6))) for _ in range(count)]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


RESTART = textwrap.dedent(
    """
    import json, resource, sys, time
    import chromadb
    from sealion_agents.retrievers.lexical_index import LexicalIndex
    t0 = time.perf_counter()  # after the imports, which any restart pays alike
    index = LexicalIndex(sys.argv[1])
    client = chromadb.PersistentClient(path=sys.argv[2])
    collection = client.get_collection("bench")
    changed = index.sync(collection)
    queries = json.loads(open(sys.argv[3]).read())
    first = index.search(queries[0], 50)
    first_s = time.perf_counter() - t0
    times = []
    for q in queries:
        t = time.perf_counter()
        len(index)  # what every query does (Chroma's count is re-read once a second)
        index.coverage(q)
        index.search(q, 50)
        times.append(time.perf_counter() - t)
    times.sort()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"first_s": first_s, "changed": changed, "hits": len(first),
                      "p50_ms": times[len(times) // 2] * 1000,
                      "p95_ms": times[int(0.95 * (len(times) - 1))] * 1000, "peak_mib": peak}))
    """
)

HYBRID = textwrap.dedent(
    """
    import json, resource, sys, time
    import chromadb
    from langchain_chroma import Chroma
    from sealion_agents.retrievers import SEARetriever
    t0 = time.perf_counter()  # after the imports, which any restart pays alike
    class Random:
        model_id = "bench-random"; dimension = 384
        def embed_query(self, text):
            import random
            r = random.Random(text); return [r.uniform(-1, 1) for _ in range(384)]
        def embed_documents(self, texts): return [self.embed_query(t) for t in texts]
    client = chromadb.PersistentClient(path=sys.argv[1])
    store = Chroma(client=client, collection_name="bench", embedding_function=Random())
    queries = json.loads(open(sys.argv[2]).read())
    retriever = SEARetriever(store=store, k=6)
    retriever._checked = True
    docs = retriever.invoke(queries[0])
    first_s = time.perf_counter() - t0
    times = []
    for q in queries[1:101]:
        t = time.perf_counter(); retriever.invoke(q); times.append(time.perf_counter() - t)
    times.sort()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"first_s": first_s, "n": len(docs), "p50_ms": times[len(times)//2]*1000,
                      "p95_ms": times[int(0.95*(len(times)-1))]*1000, "peak_mib": peak}))
    """
)


def run_child(code: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=3600
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def chroma_with(folder: Path, ids: list[str], texts: list[str], vectors: bool) -> float:
    """Fill a Chroma collection with the chunks (random unit vectors); returns seconds taken."""
    import chromadb
    import numpy as np

    client = chromadb.PersistentClient(path=str(folder))
    collection = client.get_or_create_collection(
        "bench",
        configuration={"hnsw": {"space": "cosine"}},
        metadata={"embedding_model": "bench-random", "embedding_dimension": 384},
    )
    rng = np.random.default_rng(3)
    step = 5000
    t = time.perf_counter()
    for start in range(0, len(ids), step):
        part = slice(start, start + step)
        vecs = rng.standard_normal((len(ids[part]), 384 if vectors else 4), dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        collection.add(ids=ids[part], documents=texts[part], embeddings=vecs)
    return time.perf_counter() - t


def lexical_path(chroma_folder: Path) -> Path:
    """Where SEARetriever looks for the collection's lexical index."""
    import chromadb
    from sealion_agents.retrievers.lexical_index import collection_index_path

    client = chromadb.PersistentClient(path=str(chroma_folder))
    return collection_index_path(client, client.get_collection("bench"))


def bench(size: int, old_max: int, with_chroma: bool, vocab: list[str]) -> dict:
    from sealion_agents.retrievers.lexical import BM25Index
    from sealion_agents.retrievers.lexical_index import LexicalIndex

    texts = chunks(size, vocab)
    ids = [f"c{i}" for i in range(size)]
    qs = queries(vocab)
    row: dict = {"chunks": size}
    folder = Path(tempfile.mkdtemp(prefix="bench-lexical-"))
    (folder / "queries.json").write_text(json.dumps(qs, ensure_ascii=False))

    if size <= old_max:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        old = BM25Index(ids, texts)
        row["old_build_s"] = time.perf_counter() - t
        row["old_peak_growth_mib"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        ) / 1024
        times = []
        for q in qs:
            t = time.perf_counter()
            old.coverage(q)
            old.search(q, 50)
            times.append(time.perf_counter() - t)
        row["old_p50_ms"], row["old_p95_ms"] = pct(times, 0.5) * 1000, pct(times, 0.95) * 1000
        del old

    row["chroma_fill_s"] = chroma_with(folder / "chroma", ids, texts, vectors=with_chroma)
    path = lexical_path(folder / "chroma")
    index = LexicalIndex(path)
    t = time.perf_counter()
    for start in range(0, size, 1000):
        index.add(ids[start : start + 1000], texts[start : start + 1000])
    row["new_fill_s"] = time.perf_counter() - t
    row["new_chunks_per_s"] = size / row["new_fill_s"]
    index.close()
    row["new_file_mib"] = path.stat().st_size / 2**20
    restart = run_child(RESTART, str(path), str(folder / "chroma"), str(folder / "queries.json"))
    row |= {f"restart_{k}": v for k, v in restart.items()}
    if with_chroma:
        hybrid = run_child(HYBRID, str(folder / "chroma"), str(folder / "queries.json"))
        row |= {f"hybrid_{k}": v for k, v in hybrid.items()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--old-max", type=int, default=100000, help="largest size for bm25s")
    parser.add_argument("--chroma", action="store_true", help="also time whole hybrid queries")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    vocab = vocabulary(50000)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        row = bench(size, args.old_max, args.chroma, vocab)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(
        "| chunks | old: rebuild s | old: memory MiB | old: query p50/p95 ms | new: fill chunks/s "
        "| new: file MiB | new: first query after restart s | new: query p50/p95 ms "
        "| new: peak RSS MiB | hybrid: first query s | hybrid p50/p95 ms | hybrid: peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        old = (
            (f"{r['old_build_s']:.1f}", f"{r['old_peak_growth_mib']:.0f}",
             f"{r['old_p50_ms']:.1f} / {r['old_p95_ms']:.1f}")
            if "old_build_s" in r else ("-", "-", "-")
        )  # fmt: skip
        hybrid = (
            (f"{r['hybrid_first_s']:.2f}", f"{r['hybrid_p50_ms']:.0f} / {r['hybrid_p95_ms']:.0f}",
             f"{r['hybrid_peak_mib']:.0f}")
            if "hybrid_first_s" in r else ("-", "-", "-")
        )  # fmt: skip
        print(
            f"| {r['chunks']:,} | {old[0]} | {old[1]} | {old[2]} | {r['new_chunks_per_s']:,.0f} "
            f"| {r['new_file_mib']:.0f} | {r['restart_first_s']:.2f} "
            f"| {r['restart_p50_ms']:.1f} / {r['restart_p95_ms']:.1f} "
            f"| {r['restart_peak_mib']:.0f} | {hybrid[0]} | {hybrid[1]} | {hybrid[2]} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
