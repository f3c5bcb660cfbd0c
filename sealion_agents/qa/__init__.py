"""Grounded document Q&A: rewrite, retrieve, pack, answer with citations, verify."""
