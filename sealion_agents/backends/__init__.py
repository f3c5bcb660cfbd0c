"""Backends that run SEA-LION: the GGUF runtime, in-process vLLM, OpenAI-compatible servers."""
