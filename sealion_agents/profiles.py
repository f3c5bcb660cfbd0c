"""Model profiles: what differs between the members of the SEA-LION family, as data.

A ``ModelProfile`` decides, for one model: its thinking switch (the chat-template variable
and its values, or none), the tags around its reasoning (``<think>``/``</think>`` for every
declared model: no card names others), how tools are described and calls written (``tool_formats``),
whether earlier reasoning stays in the history, the recommended sampling per mode, the
context window, the tokens that end a turn, the draft model for speculative decoding, and
engine settings vLLM needs. Each declaration cites the model card its facts come from
(``docs/models.md`` collects them). No code outside this module branches on a model name.

Data flow: a model's names (repo id, GGUF file, served name, plus what its files say:
``gguf_facts`` of the GGUF metadata, ``hf_folder_facts`` of a Hugging Face folder's
``config.json``), its architectures and its chat template -> ``resolve_profile`` -> the
declared profile whose pattern matches a name, else the one profile that claims the
architecture, with the facts its card leaves open read from the template; or, for a model
no profile matches, a profile read from the template alone (a template that reads
``enable_thinking`` gets that switch). ``profile=`` overrides detection: a name from
``PROFILES`` or a ``ModelProfile``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealion_agents.reasoning import THINK_TAGS, ReasoningTags
from sealion_agents.tool_formats import (
    APERTUS_CALLS,
    GEMMA4_CALLS,
    HERMES_CALLS,
    JSON_CALLS,
    JSON_USER_RESULTS,
    TOOL_CODE_CALLS,
    XML_CALLS,
    ToolFormat,
)

__all__ = [
    "ENABLE_THINKING",
    "FROM_TEMPLATE",
    "PROFILES",
    "THINKING_MODE",
    "DraftModel",
    "ModelFacts",
    "ModelProfile",
    "Sampling",
    "ThinkingSwitch",
    "architecture_profile",
    "declared_profile",
    "gguf_facts",
    "hf_folder_facts",
    "name_matches",
    "profile_named",
    "resolve_profile",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThinkingSwitch:
    """A chat-template variable that turns reasoning on or off."""

    variable: str
    on: Any
    off: Any

    def variables(self, thinking: bool) -> dict[str, Any]:
        """The template variables for a thinking flag."""
        return {self.variable: self.on if thinking else self.off}


THINKING_MODE = ThinkingSwitch("thinking_mode", "on", "off")
"""SEA-LION v3.5's switch (``thinking_mode`` "on"/"off")."""
ENABLE_THINKING = ThinkingSwitch("enable_thinking", True, False)
"""Qwen3's and Gemma 4's switch (``enable_thinking`` True/False)."""

FROM_TEMPLATE = "from the template"
"""A fact the card leaves open: read from the model's chat template when it is resolved."""


@dataclass(frozen=True)
class Sampling:
    """Recommended sampling settings (None: the runtime's or the model's own default)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    presence_penalty: float | None = None

    def fields(self) -> dict[str, Any]:
        """The settings that are set."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class DraftModel:
    """A draft model for speculative decoding on vLLM, as its card pairs it with the model."""

    model: str
    method: str
    """vLLM's speculative method for it (e.g. "dflash")."""
    num_speculative_tokens: int

    def speculative_config(self) -> dict[str, Any]:
        """``vllm.LLM(speculative_config=...)`` for this draft model."""
        return {
            "method": self.method,
            "model": self.model,
            "num_speculative_tokens": self.num_speculative_tokens,
        }


@dataclass(frozen=True)
class ModelProfile:
    """What one model (or one line of models) needs from the adapter."""

    name: str
    """The profile's name, for ``profile=`` and ``--profile``."""
    patterns: tuple[str, ...] = ()
    """Regular expressions matched against a model's normalised name (lower case)."""
    architectures: tuple[str, ...] = ()
    """Architecture names of this profile's models (Hugging Face ``architectures`` classes
    and ``model_type``, GGUF ``general.architecture``; any case), used when no name matches
    and only when no other profile claims the same one."""
    family: str = ""
    """The architecture line (``llama3.1``, ``qwen3``, ``gemma3``...), for tables."""
    thinking: ThinkingSwitch | None | str = FROM_TEMPLATE
    """The thinking switch, None for a model that does not reason, or ``FROM_TEMPLATE``."""
    reasoning_tags: ReasoningTags = THINK_TAGS
    """The tags the model writes around its reasoning (and a prompt pre-fills)."""
    tool_format: ToolFormat | str = FROM_TEMPLATE
    """How tools are described and calls written (``tool_formats``), or ``FROM_TEMPLATE``."""
    keeps_reasoning: bool = False
    """Earlier turns' reasoning stays in the history (``reasoning_content`` of the turn)."""
    sampling: Sampling = field(default_factory=Sampling)
    """Recommended sampling with thinking on."""
    sampling_no_thinking: Sampling = field(default_factory=Sampling)
    """Recommended sampling with thinking off."""
    context_window: int | None = None
    """The context length the card states (used where a server does not report one)."""
    end_tokens: tuple[str, ...] = ()
    """Tokens that end the assistant's turn besides the tokenizer's end-of-sequence token
    (vLLM stops at them; llama.cpp already ends generation at these turn tokens by their text)."""
    draft: DraftModel | None = None
    """The card's draft model for speculative decoding, if any (``from_vllm(...,
    speculative=True)`` uses it)."""
    vllm_engine_args: tuple[tuple[str, Any], ...] = ()
    """``vllm.LLM`` settings the model needs (``trust_remote_code``...)."""
    vllm_cpu_engine_args: tuple[tuple[str, Any], ...] = ()
    """More ``vllm.LLM`` settings where vLLM runs on CPU (measured there, not on a card)."""
    source: str = ""
    """Where the facts come from (``docs/models.md`` section and the card's path)."""

    def __post_init__(self) -> None:
        if not isinstance(self.reasoning_tags, ReasoningTags):
            raise TypeError(
                f"The profile {self.name!r} has reasoning_tags={self.reasoning_tags!r}: pass "
                "ReasoningTags(open=..., close=...) from sealion_agents.reasoning."
            )

    @property
    def can_think(self) -> bool:
        """Whether the model has a thinking switch (False: ``thinking`` is a no-op)."""
        return isinstance(self.thinking, ThinkingSwitch)

    @property
    def tools(self) -> ToolFormat:
        """The tool format (a resolved profile always has one)."""
        return self.tool_format if isinstance(self.tool_format, ToolFormat) else JSON_CALLS

    def template_variables(self, thinking: bool) -> dict[str, Any]:
        """The chat-template variables for a thinking flag ({} without a switch)."""
        return (
            self.thinking.variables(thinking) if isinstance(self.thinking, ThinkingSwitch) else {}
        )

    def sampling_for(self, thinking: bool) -> dict[str, Any]:
        """The recommended sampling settings for a mode (only those the card states)."""
        chosen = self.sampling if thinking and self.can_think else self.sampling_no_thinking
        return chosen.fields()

    def matches(self, model_name: str) -> bool:
        """Whether a model name is one of this profile's models."""
        return name_matches(self.patterns, model_name)

    def resolved(self, template: str | None) -> ModelProfile:
        """This profile with the facts left to the template read from ``template``."""
        updates: dict[str, Any] = {}
        if self.thinking == FROM_TEMPLATE:
            updates["thinking"] = thinking_switch_of(template)
        if self.tool_format == FROM_TEMPLATE:
            updates["tool_format"] = tool_format_of(template)
        return dataclasses.replace(self, **updates) if updates else self


_HUB_SNAPSHOT = re.compile(r"models--[^/]+?--([^/]+)/snapshots/[^/]+/?$")
"""A folder in the Hugging Face cache (what ``snapshot_download`` returns): it names the repo."""


def normalise_name(model_name: str) -> str:
    """A model name without its owner, file extension or quantisation, in lower case.

    A Hugging Face cache snapshot folder (``.../models--owner--name/snapshots/<hash>``) is
    named by its repo.
    """
    name = str(model_name).strip().lower().replace("\\", "/")
    snapshot = _HUB_SNAPSHOT.search(name)
    name = snapshot.group(1) if snapshot else name.rsplit("/", 1)[-1]
    name = re.sub(r"\.gguf$", "", name)
    return re.sub(r"[-_.](gguf|q\d\w*|iq\d\w*|f16|bf16|f32|fp8(-dynamic)?|nvfp4|\d+bit)$", "", name)


def name_matches(patterns: tuple[str, ...], model_name: str) -> bool:
    """Whether a model's normalised name matches one of ``patterns`` (regular expressions)."""
    name = normalise_name(model_name)
    return any(re.search(pattern, name) for pattern in patterns)


def thinking_switch_of(template: str | None) -> ThinkingSwitch | None:
    """The thinking switch a chat template reads, if any."""
    if not template:
        return None
    if "enable_thinking" in template:
        return ENABLE_THINKING
    if "thinking_mode" in template:
        return THINKING_MODE
    return None


GEMMA4_TAGS = ReasoningTags(open="<|channel>thought", close="<channel|>", gap="")
"""Gemma 4's thought channel (its chat template closes an empty one when thinking is off); the
answer follows the closing tag at once."""
APERTUS_TAGS = ReasoningTags(open="<|inner_prefix|>", close="<|inner_suffix|>", gap="")
"""Apertus's inner (reasoning) section (swiss-ai/apertus_format, docs/format.md)."""


def reasoning_tags_of(template: str | None) -> ReasoningTags:
    """The reasoning tags a chat template writes (``<think>`` unless it shows others).

    Gemma 4's thought channel, Apertus's inner section.
    """
    if template and "<|channel>" in template:
        return GEMMA4_TAGS
    if template and ("<|inner_prefix|>" in template or "<|inner_suffix|>" in template):
        return APERTUS_TAGS
    return THINK_TAGS


def tool_format_of(template: str | None) -> ToolFormat:
    """The tool format a chat template shows, by the call text it writes.

    Gemma 4's ``<|tool_call>``, Apertus's ``<|tools_prefix|>``, the ``<function=...>`` blocks
    of Nemotron 3 and Qwen3-Coder, Hermes ``<tool_call>`` JSON; else Llama 3.1's JSON.
    """
    if not template:
        return JSON_CALLS
    if "<|tool_call>" in template:
        return GEMMA4_CALLS
    if "<|tools_prefix|>" in template:
        return APERTUS_CALLS
    if "<function=" in template:
        return XML_CALLS
    if "<tool_call>" in template:
        return HERMES_CALLS
    return JSON_CALLS


_V35 = "docs/models.md §2.3 (models/sea-lion-v3.5/llama-sea-lion-v3.5-8B.md, -70B.md)"
_V4_GEMMA = (
    "docs/models.md §2.4-2.5 (models/sea-lion-v4/gemma-sea-lion-v4-27B.md; "
    "guides/tool_calling/tool_calling-02_SEA-LION.md, -05_TakeNote.md)"
)

_GUARD = (
    "docs/models.md §3.1 (models/sea-guard/qwenNllama-sea-guard.md, "
    "models/sea-guard/gemma-sea-guard.md; the hosted name: guides/inferencing/api.md)"
)
PROFILES: dict[str, ModelProfile] = {
    p.name: p
    for p in (
        ModelProfile(
            name="llama-sea-lion-v3.5-r",
            patterns=(r"llama-sea-lion-v3\.5-\d+b-r",),
            family="llama3.1",
            thinking=THINKING_MODE,
            tool_format=JSON_CALLS,
            context_window=131072,
            source=_V35,
        ),
        ModelProfile(
            name="llama-sea-lion-v3-it",
            patterns=(r"llama-sea-lion-v3-\d+b(-it)?$",),
            family="llama3.1",
            thinking=None,
            tool_format=JSON_CALLS,
            context_window=131072,
            source="docs/models.md §2.2 (models/sea-lion-v3/llama-sea-lion-v3-8B.md, -70B.md)",
        ),
        ModelProfile(
            name="gemma-sea-lion-v4",
            patterns=(r"gemma-sea-lion-v4-\d+b(-it|-vl)?$",),
            family="gemma3",
            thinking=None,
            tool_format=TOOL_CODE_CALLS,
            context_window=131072,
            end_tokens=("<end_of_turn>",),
            source=_V4_GEMMA,
        ),
        ModelProfile(
            name="qwen-sea-lion-v4-32b-it",
            patterns=(r"qwen-sea-lion-v4-32b(-it)?$",),
            family="qwen3",
            thinking=ENABLE_THINKING,
            tool_format=HERMES_CALLS,
            context_window=32768,
            end_tokens=("<|im_end|>",),
            source="docs/models.md §2.6 (models/sea-lion-v4/qwen-sea-lion-v4-32B.md)",
        ),
        ModelProfile(
            name="qwen-sea-lion-v4-vl",
            patterns=(r"qwen-sea-lion-v4-\d+b-vl$",),
            family="qwen3-vl",
            thinking=None,
            tool_format=HERMES_CALLS,
            context_window=262144,
            end_tokens=("<|im_end|>",),
            source="docs/models.md §2.7 (models/sea-lion-v4/qwen-sea-lion-v4-VL.md)",
        ),
        ModelProfile(
            name="apertus-sea-lion-v4-8b-it",
            patterns=(r"apertus-sea-lion-v4-8b(-it)?$",),
            architectures=("ApertusForCausalLM", "apertus"),
            family="apertus",
            reasoning_tags=APERTUS_TAGS,
            tool_format=APERTUS_CALLS,
            context_window=65536,
            end_tokens=("<|assistant_end|>",),
            source=(
                "docs/models.md §2.8 (models/sea-lion-v4/apertus-sea-lion-v4-8B.md; the Apertus "
                "format: swiss-ai/apertus_format docs/format.md)"
            ),
        ),
        ModelProfile(
            name="qwen-sea-lion-v4.5-27b-it",
            patterns=(r"qwen-sea-lion-v4\.5-27b(-it)?$",),
            family="qwen3.6",
            thinking=ENABLE_THINKING,
            tool_format=HERMES_CALLS,
            keeps_reasoning=True,
            sampling_no_thinking=Sampling(
                temperature=0.7, top_p=0.8, top_k=20, presence_penalty=1.5
            ),
            context_window=262144,
            end_tokens=("<|im_end|>",),
            draft=DraftModel(
                "aisingapore/Qwen-SEA-LION-v4.5-27B-IT-SpecDecoder",
                method="dflash",
                num_speculative_tokens=16,
            ),
            source="docs/models.md §2.9 (models/sea-lion-v4.5/qwen-sea-lion-v4.5.md)",
        ),
        ModelProfile(
            name="gemma-sea-lion-v4.5-e2b-it",
            patterns=(r"gemma-sea-lion-v4\.5-e2b(-it)?$",),
            family="gemma4",
            thinking=ENABLE_THINKING,
            reasoning_tags=GEMMA4_TAGS,
            tool_format=GEMMA4_CALLS,
            context_window=131072,
            end_tokens=("<turn|>",),
            source=(
                "docs/models.md §2.10 (models/sea-lion-v4.5/gemma-sea-lion-v4.5.md; Gemma 4's "
                "chat template: llama.cpp models/templates/gemma4.jinja)"
            ),
        ),
        ModelProfile(
            name="nemotron-sea-lion-v4.8",
            patterns=(r"nemotron-sea-lion-v4\.8-\d+b-a\d+b$",),
            architectures=("NemotronHForCausalLM", "nemotron_h", "nemotron_h_moe"),
            family="nemotron-h",
            thinking=ENABLE_THINKING,
            tool_format=XML_CALLS,
            context_window=131072,
            end_tokens=("<|im_end|>",),
            vllm_engine_args=(("trust_remote_code", True),),
            # vllm-cpu 0.32: Mamba2 layers with prefix caching fail on prompts longer than one
            # prefill chunk (IndexError in mamba_mixer2); tests/test_profiles_native.py
            vllm_cpu_engine_args=(("enable_prefix_caching", False),),
            source=(
                "docs/models.md §2.11 (models/sea-lion-v4.8/nemotron-sea-lion-v4.8.md; "
                "Nemotron 3 Nano's template: llama.cpp's nemotron_v3 chat parser)"
            ),
        ),
        # SEA-Guard: safety classifiers that answer "safe" or "unsafe" (``guard.py`` prompts
        # them); no thinking switch, the base model's end of turn.
        ModelProfile(
            name="llama-sea-guard",
            patterns=(r"llama-sea-guard",),
            family="llama3.1",
            thinking=None,
            tool_format=JSON_CALLS,
            context_window=131072,
            source=_GUARD,
        ),
        ModelProfile(
            name="qwen-sea-guard",
            patterns=(r"qwen-sea-guard",),
            family="qwen3",
            thinking=None,
            tool_format=HERMES_CALLS,
            context_window=131072,
            end_tokens=("<|im_end|>",),
            source=_GUARD,
        ),
        ModelProfile(
            name="gemma-sea-guard",
            patterns=(r"gemma-sea-guard", r"^sea-guard$"),  # the hosted name is the Gemma one
            family="gemma3",
            thinking=None,
            tool_format=JSON_USER_RESULTS,
            context_window=131072,
            end_tokens=("<end_of_turn>",),
            source=_GUARD,
        ),
    )
}


def profile_named(name: str) -> ModelProfile:
    """The declared profile of this name (a clear error listing the names otherwise)."""
    profile = PROFILES.get(str(name).strip().lower())
    if profile is None:
        raise ValueError(
            f"No model profile is named {name!r}; the profiles are {sorted(PROFILES)}."
        )
    return profile


def declared_profile(names: tuple[str | None, ...]) -> ModelProfile | None:
    """The declared profile the first matching name belongs to (None: no match)."""
    found = _name_match(names)
    return found[0] if found is not None else None


def _name_match(names: Iterable[str | None]) -> tuple[ModelProfile, str] | None:
    for name in names:
        if not name:
            continue
        for profile in PROFILES.values():
            if profile.matches(name):
                return profile, name
    return None


def architecture_profile(architectures: Iterable[str | None]) -> ModelProfile | None:
    """The one declared profile that claims one of ``architectures`` (None: none or several).

    Architectures several families share (Qwen3, Gemma 3, Llama) decide nothing.
    """
    found = _architecture_match(architectures)
    return found[0] if found is not None else None


def _architecture_match(
    architectures: Iterable[str | None],
) -> tuple[ModelProfile, str] | None:
    wanted = {str(a).strip().lower(): str(a) for a in architectures if a and str(a).strip()}
    claimed = {
        profile.name: (profile, wanted[arch.lower()])
        for profile in PROFILES.values()
        for arch in profile.architectures
        if arch.lower() in wanted
    }
    return next(iter(claimed.values())) if len(claimed) == 1 else None


@dataclass(frozen=True)
class ModelFacts:
    """What a model's own files say about it, for ``resolve_profile``."""

    names: tuple[str, ...] = ()
    """More names of the model (metadata names, the repo id a folder was saved from)."""
    architectures: tuple[str, ...] = ()
    """Its architecture names (Hugging Face classes and ``model_type``, GGUF architecture)."""


def _hyphenated(text: str) -> str:
    return "-".join(text.split())


def gguf_facts(metadata: Mapping[str, Any]) -> ModelFacts:
    """Names and architecture from a GGUF's metadata (``general.*`` keys).

    Besides ``general.name`` and ``general.basename``, the basename joined with
    ``general.size_label``, ``general.finetune`` and ``general.version`` the way llama.cpp's
    convert script names files ("Qwen-SEA-LION-v4.5" + "27B" + "IT" ->
    "Qwen-SEA-LION-v4.5-27B-IT"), and with the version before the size.
    """

    def text(key: str) -> str | None:
        value = metadata.get(key)
        return (_hyphenated(str(value)) or None) if value is not None else None

    name, base = text("general.name"), text("general.basename")
    names = [name] if name else []
    if base:
        size, finetune, version = (
            text(f"general.{key}") for key in ("size_label", "finetune", "version")
        )
        names += [
            "-".join(p for p in (base, size, finetune, version) if p),
            "-".join(p for p in (base, version, size, finetune) if p),
            base,
        ]
    architecture = text("general.architecture")
    return ModelFacts(
        names=tuple(dict.fromkeys(names)), architectures=(architecture,) if architecture else ()
    )


CONFIG_LIMIT = 1 << 20
"""The largest ``config.json`` read (bytes); a larger one is ignored."""


def hf_folder_facts(folder: str | os.PathLike[str] | None) -> ModelFacts:
    """The repo id and architectures a local Hugging Face model folder's ``config.json`` names.

    ``_name_or_path`` (the repo id it was saved from, when present) is a name; ``architectures``
    and ``model_type`` are architectures. Anything but a readable folder with a JSON object of
    at most ``CONFIG_LIMIT`` bytes in ``config.json`` (a repo id, a missing, huge or invalid
    file) gives no facts, with a debug log.
    """
    if folder is None:
        return ModelFacts()
    path = Path(folder) / "config.json"
    try:
        if not path.parent.is_dir() or not path.is_file():
            return ModelFacts()
        with path.open("rb") as file:
            data = file.read(CONFIG_LIMIT + 1)
        if len(data) > CONFIG_LIMIT:
            logger.debug("%s is over %d bytes: not read for the profile", path, CONFIG_LIMIT)
            return ModelFacts()
        config = json.loads(data)
    except (OSError, ValueError, RecursionError) as error:
        logger.debug("%s not read for the profile: %s", path, error)
        return ModelFacts()
    if not isinstance(config, dict):
        logger.debug("%s holds no JSON object: not read for the profile", path)
        return ModelFacts()
    source = config.get("_name_or_path")
    classes = config.get("architectures")
    classes = classes if isinstance(classes, list) else []
    architectures = [a for a in [*classes, config.get("model_type")] if isinstance(a, str) and a]
    return ModelFacts(
        names=(source,) if isinstance(source, str) and source.strip() else (),
        architectures=tuple(dict.fromkeys(architectures)),
    )


def resolve_profile(
    *,
    names: tuple[str | None, ...] = (),
    template: str | None = None,
    override: ModelProfile | str | None = None,
    architectures: tuple[str | None, ...] = (),
) -> ModelProfile:
    """The profile of a model, logged at INFO with what decided it.

    In order: ``override``; the first declared profile a name matches; the one declared
    profile that claims one of ``architectures``; a profile read from the chat template (its
    thinking switch, its tool format). With no template either (a server that hides it), a
    warning says to pass ``profile=``, and the profile then sends every known thinking switch.
    """
    label = next((n for n in names if n), "the model")
    if override is not None:
        chosen = override if isinstance(override, ModelProfile) else profile_named(override)
        logger.info("%s: model profile %s (given)", label, chosen.name)
        return chosen.resolved(template)
    by_name = _name_match(names)
    if by_name is not None:
        logger.info("%s: model profile %s (from the name %r)", label, by_name[0].name, by_name[1])
        return by_name[0].resolved(template)
    by_architecture = _architecture_match(architectures)
    if by_architecture is not None:
        profile, architecture = by_architecture
        logger.info(
            "%s: model profile %s (from the architecture %r)", label, profile.name, architecture
        )
        return profile.resolved(template)
    if template:
        profile = ModelProfile(
            name=f"template:{normalise_name(label)}", reasoning_tags=reasoning_tags_of(template)
        ).resolved(template)
        logger.info("%s: model profile %s (from the chat template)", label, profile.name)
        return profile
    logger.warning(
        "%s matches no SEA-LION model profile and its chat template is unknown: thinking is "
        "switched with every known template variable and tools are written as JSON. Pass "
        "profile=<one of %s> (--profile) if this is a SEA-LION model.",
        label,
        sorted(PROFILES),
    )
    return ModelProfile(
        name=f"unknown:{normalise_name(label)}",
        thinking=ANY_SWITCH,
        tool_format=JSON_CALLS,
    )


@dataclass(frozen=True)
class _AnySwitch(ThinkingSwitch):
    """Every known switch at once, for a served model whose template is unknown."""

    def variables(self, thinking: bool) -> dict[str, Any]:
        """Both SEA-LION's and Qwen's variables (a template reads the one it knows)."""
        return {**THINKING_MODE.variables(thinking), **ENABLE_THINKING.variables(thinking)}


ANY_SWITCH = _AnySwitch("thinking_mode+enable_thinking", None, None)
