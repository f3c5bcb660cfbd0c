"""Lazy imports of the optional heavy dependencies, with errors that name the extra to install.

input: a module name -> output: the imported module, or an ImportError telling the user which
packages (the extra of sealion-agents) bring it in.
"""

from __future__ import annotations

from types import ModuleType

from sealion_agents.errors import require as _require

_EXTRA_FOR = {"sentence_transformers": "st"}
"""Modules that come with another extra than ``retrieval``."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming ``feature`` and the extra to install."""
    extra = _EXTRA_FOR.get(module.split(".")[0], "retrieval")
    return _require(module, extra=extra, feature=feature)
