"""Retrieval over Chroma: embeddings, splitting, ingestion and hybrid search."""
