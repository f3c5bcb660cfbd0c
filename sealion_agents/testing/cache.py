"""The on-disk cache of generated models: keys, the folder, and building each model once.

Data flow: a model's spec (generator version, script, rules, template, context length, and a
digest of the code that compiles rules) -> a 12-digit sha256 key -> a file or folder name in
``$SEALION_TEST_CACHE`` (default ``~/.cache/sealion-agents/tiny-models``) -> written under a
temporary name and renamed into place, so that concurrent test processes never see half a model.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sealion_agents.testing.files import build_gguf, save_hf_folder
from sealion_agents.testing.rules import (
    KEYED_VERSION,
    Preference,
    Rule,
    _keyed_weights,
    _rule_units,
)
from sealion_agents.testing.scripts import ANSWER, REASONING, TEMPLATES

# Bump when the generated files change in any way, so cached files are rebuilt.
GENERATOR_VERSION = 1


def _cache_dir() -> Path:
    env = os.environ.get("SEALION_TEST_CACHE")
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = Path(env) if env else default / "sealion-agents" / "tiny-models"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _cache_key(kind: str, variant: str, context_length: int) -> str:
    if variant not in TEMPLATES:
        raise ValueError(f"unknown variant {variant!r}; choose from {sorted(TEMPLATES)}")
    spec = {
        "generator": GENERATOR_VERSION,
        "kind": kind,
        "reasoning": REASONING,
        "answer": ANSWER,
        "template": TEMPLATES[variant],
        "context_length": context_length,
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"sealion-tiny-{variant}-{digest}"


def _rules_spec(rules: Iterable[Rule | Preference]) -> list[dict[str, Any]]:
    out = []
    for rule in rules:
        if not isinstance(rule, (Rule, Preference)):
            raise TypeError(f"rules must be Rule objects, not {type(rule).__name__}")
        out.append(rule.spec())
    return out


def _rules_key(
    kind: str, name: str, rules: list[Rule | Preference], variant: str, context_length: int
) -> str:
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"name {name!r}: use letters, digits, '-' and '_'")
    if variant not in TEMPLATES:
        raise ValueError(f"unknown variant {variant!r}; choose from {sorted(TEMPLATES)}")
    spec = {
        "generator": GENERATOR_VERSION,
        "keyed": KEYED_VERSION,
        "code": _KEYED_CODE_DIGEST[kind],
        "kind": kind,
        "rules": _rules_spec(rules),
        "template": TEMPLATES[variant],
        "context_length": context_length,
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"sealion-tiny-rules-{name}-{variant}-{digest}"


def _code_digest(*functions: Any) -> str:
    """A digest of the code that writes keyed models, so that editing it rebuilds cached files."""
    try:
        code = "".join(inspect.getsource(f) for f in functions)
    except (OSError, TypeError):  # no source: rely on KEYED_VERSION
        return ""
    return hashlib.sha256(code.encode()).hexdigest()[:12]


# Taken at import (the cache key must not change when a test monkeypatches a builder).
_KEYED_CODE_DIGEST = {
    "gguf": _code_digest(_rule_units, _keyed_weights, build_gguf),
    "hf": _code_digest(_rule_units, _keyed_weights, save_hf_folder),
}


def _no_preference_key(kind: str, variant: str) -> str:
    if variant not in TEMPLATES:
        raise ValueError(f"unknown variant {variant!r}; choose from {sorted(TEMPLATES)}")
    spec = {"generator": GENERATOR_VERSION, "kind": kind, "template": TEMPLATES[variant]}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"sealion-tiny-no-preference-{variant}-{digest}"


def build_file_once(target: Path, write: Callable[[Path], object]) -> Path:
    """``target``; if it does not exist yet, ``write(tmp)`` a temporary file and rename it there."""
    if not target.exists():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            write(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def build_folder_once(target: Path, write: Callable[[Path], object]) -> Path:
    """``target``; if it does not exist yet, ``write(tmp)`` a temporary folder and rename it."""
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            tmp.chmod(0o755)
            write(tmp)
            try:
                os.replace(tmp, target)
            except OSError:
                if not target.exists():  # lost a race only if someone else finished it
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
