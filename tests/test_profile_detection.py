"""Profile detection from what a model's files say: GGUF metadata and ``config.json``.

Pure logic first (``gguf_facts``, ``hf_folder_facts``, the architecture rule, the order of
sources), then the real runtimes: a tiny GGUF whose file name says nothing but whose metadata
names a SEA-LION model (llama.cpp), and a tiny model folder whose ``config.json`` does (vLLM).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from sealion_agents import ChatSeaLion
from sealion_agents.profiles import (
    CONFIG_LIMIT,
    ENABLE_THINKING,
    PROFILES,
    ModelFacts,
    ModelProfile,
    architecture_profile,
    gguf_facts,
    hf_folder_facts,
    resolve_profile,
)
from sealion_agents.testing.families import GREETING, QWEN_TEMPLATE
from tests.conftest import LLAMA_TEST_KWARGS

QWEN_45 = "qwen-sea-lion-v4.5-27b-it"
QWEN_45_REPO = "aisingapore/Qwen-SEA-LION-v4.5-27B-IT"


def model_folder(tmp_path: Path, config: Any, name: str = "my-model") -> Path:
    """A folder (named ``name``) whose config.json holds ``config`` as JSON."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def detect(folder: Path, template: str | None = None) -> ModelProfile:
    """What a backend does with a local folder: its name plus its config's facts."""
    facts = hf_folder_facts(folder)
    return resolve_profile(
        names=(str(folder), *facts.names), template=template, architectures=facts.architectures
    )


# -- config.json --------------------------------------------------------------------------------


def test_name_or_path_names_the_model_of_an_anonymous_folder(tmp_path: Path) -> None:
    folder = model_folder(
        tmp_path,
        {
            "_name_or_path": QWEN_45_REPO,
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
        },
    )
    assert hf_folder_facts(folder) == ModelFacts(
        names=(QWEN_45_REPO,), architectures=("Qwen3ForCausalLM", "qwen3")
    )
    assert detect(folder).name == QWEN_45
    assert resolve_profile(names=(str(folder),)).name == "unknown:my-model"  # the name alone


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"architectures": ["ApertusForCausalLM"], "model_type": "apertus"},
            "apertus-sea-lion-v4-8b-it",
        ),
        ({"model_type": "apertus"}, "apertus-sea-lion-v4-8b-it"),
        ({"architectures": ["NemotronHForCausalLM"]}, "nemotron-sea-lion-v4.8"),
        ({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}, None),
        ({"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text"}, None),
        ({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, None),
    ],
)
def test_an_architecture_only_one_profile_claims_picks_it(
    tmp_path: Path, config: dict[str, Any], expected: str | None
) -> None:
    profile = detect(model_folder(tmp_path, config), template=QWEN_TEMPLATE)
    if expected is None:  # shared by several families: the template decides
        assert profile.name == "template:my-model" and profile.thinking == ENABLE_THINKING
    else:
        assert profile.name == expected


def test_declared_architectures_are_each_claimed_once() -> None:
    claims = [a.lower() for p in PROFILES.values() for a in p.architectures]
    assert len(claims) == len(set(claims))
    assert {p.name for p in PROFILES.values() if p.architectures} == {
        "apertus-sea-lion-v4-8b-it",
        "nemotron-sea-lion-v4.8",
    }


def test_an_architecture_two_profiles_claim_decides_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert architecture_profile(["apertusforcausallm"]) is PROFILES["apertus-sea-lion-v4-8b-it"]
    rival = ModelProfile(name="other-apertus", architectures=("ApertusForCausalLM",))
    monkeypatch.setitem(PROFILES, rival.name, rival)
    assert architecture_profile(["ApertusForCausalLM"]) is None
    assert architecture_profile(["ApertusForCausalLM", "nemotron_h"]) is None  # two profiles


def make_huge(folder: Path) -> None:
    """A valid config naming a model, padded past the limit (so only the limit can refuse it)."""
    folder.mkdir()
    pad = "x" * (50 * 1024 * 1024)
    (folder / "config.json").write_text(json.dumps({"_name_or_path": QWEN_45_REPO, "pad": pad}))


def make_loop(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").symlink_to(folder / "config.json")


def make_dir(folder: Path) -> None:
    (folder / "config.json").mkdir(parents=True)


def make_invalid(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_text('{"_name_or_path": "aisingapore/Qwen-SEA-LION-v4.5')


def make_binary(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_bytes(b"\xff\xfe\x00\x80" * 64)


def make_deep(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_text("[" * 200_000 + "]" * 200_000)


def make_list(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps([QWEN_45_REPO]))


def make_wrong_types(folder: Path) -> None:
    folder.mkdir()
    config = {"_name_or_path": 7, "architectures": "ApertusForCausalLM", "model_type": None}
    (folder / "config.json").write_text(json.dumps(config))


def make_missing(folder: Path) -> None:
    folder.mkdir()


def make_folder_loop(folder: Path) -> None:
    folder.symlink_to(folder)


@pytest.mark.parametrize(
    "make",
    [
        make_huge,
        make_loop,
        make_dir,
        make_invalid,
        make_binary,
        make_deep,
        make_list,
        make_wrong_types,
        make_missing,
        make_folder_loop,
    ],
)
def test_an_unreadable_config_is_ignored(tmp_path: Path, make: Any) -> None:
    folder = tmp_path / "my-model"
    make(folder)
    assert hf_folder_facts(folder) == ModelFacts()
    profile = detect(folder, template=QWEN_TEMPLATE)  # detection falls back to the template
    assert profile.name == "template:my-model" and profile.thinking == ENABLE_THINKING


def test_the_size_limit_is_the_only_reason_a_big_config_is_refused(tmp_path: Path) -> None:
    config = {"_name_or_path": QWEN_45_REPO}
    pad = CONFIG_LIMIT - len(json.dumps({**config, "pad": ""}))
    folder = model_folder(tmp_path, {**config, "pad": "x" * pad})
    assert (folder / "config.json").stat().st_size == CONFIG_LIMIT
    assert hf_folder_facts(folder).names == (QWEN_45_REPO,)
    (folder / "config.json").write_text(json.dumps({**config, "pad": "x" * (pad + 1)}))
    assert hf_folder_facts(folder) == ModelFacts()


def test_a_refused_config_is_logged_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "my-model"
    make_invalid(folder)
    with caplog.at_level(logging.DEBUG, logger="sealion_agents.profiles"):
        hf_folder_facts(folder)
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert str(folder / "config.json") in caplog.text


@pytest.mark.parametrize("where", [None, "aisingapore/Qwen-SEA-LION-v4.5-27B-IT", "a\0b"])
def test_a_repo_id_or_nothing_reads_no_file(where: str | None) -> None:
    assert hf_folder_facts(where) == ModelFacts()


# -- GGUF metadata ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {
                "general.name": "my-model",
                "general.basename": "Gemma-SEA-LION-v4.5",
                "general.size_label": "E2B",
                "general.finetune": "IT",
            },
            "gemma-sea-lion-v4.5-e2b-it",
        ),
        ({"general.name": "Qwen SEA LION v4.5 27B IT"}, QWEN_45),  # spaces: as file names
        (
            {
                "general.basename": "Qwen-SEA-LION",
                "general.version": "v4.5",
                "general.size_label": "27B",
                "general.finetune": "IT",
            },
            QWEN_45,
        ),
        (
            {
                "general.basename": "Llama-SEA-LION-v3.5",
                "general.size_label": "8B",
                "general.finetune": "R",
            },
            "llama-sea-lion-v3.5-r",
        ),
        (
            {"general.name": "my-model", "general.architecture": "nemotron_h_moe"},
            "nemotron-sea-lion-v4.8",
        ),
        (
            {"general.name": "my-model", "general.architecture": "apertus"},
            "apertus-sea-lion-v4-8b-it",
        ),
        ({"general.name": "my-model", "general.architecture": "qwen3"}, None),
    ],
)
def test_gguf_metadata_names_the_model(metadata: dict[str, str], expected: str | None) -> None:
    facts = gguf_facts(metadata)
    profile = resolve_profile(
        names=("model.gguf", *facts.names),
        template=QWEN_TEMPLATE,
        architectures=facts.architectures,
    )
    assert profile.name == (expected or "template:model")


def test_gguf_names_follow_the_convert_scripts_order() -> None:
    facts = gguf_facts(
        {
            "general.name": "Tiny",
            "general.basename": "Qwen SEA LION",
            "general.size_label": "27B",
            "general.finetune": "IT",
            "general.version": "v4.5",
            "general.architecture": "qwen3",
        }
    )
    assert facts == ModelFacts(
        names=(
            "Tiny",
            "Qwen-SEA-LION-27B-IT-v4.5",  # gguf.naming_convention's order
            "Qwen-SEA-LION-v4.5-27B-IT",  # the cards' order
            "Qwen-SEA-LION",
        ),
        architectures=("qwen3",),
    )
    assert gguf_facts({"general.name": "  ", "general.architecture": ""}) == ModelFacts()


# -- the order of sources -----------------------------------------------------------------------


def test_a_name_beats_the_architecture_and_the_override_beats_both(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = model_folder(
        tmp_path, {"_name_or_path": QWEN_45_REPO, "architectures": ["ApertusForCausalLM"]}
    )
    facts = hf_folder_facts(folder)
    arguments: dict[str, Any] = {
        "names": ("my-model", *facts.names),
        "template": QWEN_TEMPLATE,
        "architectures": facts.architectures,
    }
    with caplog.at_level(logging.INFO, logger="sealion_agents.profiles"):
        assert resolve_profile(**arguments).name == QWEN_45
        given = resolve_profile(**arguments, override="gemma-sea-lion-v4")
        assert given.name == "gemma-sea-lion-v4"
        by_architecture = resolve_profile(**{**arguments, "names": ("my-model",)})
        apertus = PROFILES["apertus-sea-lion-v4-8b-it"]
        assert by_architecture == apertus.resolved(QWEN_TEMPLATE)  # what the card leaves open
    assert [r.getMessage() for r in caplog.records] == [
        f"my-model: model profile {QWEN_45} (from the name '{QWEN_45_REPO}')",
        "my-model: model profile gemma-sea-lion-v4 (given)",
        "my-model: model profile apertus-sea-lion-v4-8b-it (from the architecture "
        "'ApertusForCausalLM')",
    ]


def test_a_nemotron_folder_gets_its_engine_settings_before_loading(tmp_path: Path) -> None:
    from sealion_agents.backends.vllm import VLLMBackend

    folder = model_folder(tmp_path, {"architectures": ["NemotronHForCausalLM"]})
    assert VLLMBackend(folder)._start_settings()["trust_remote_code"] is True  # nothing loads
    mine = VLLMBackend(folder, trust_remote_code=False)._start_settings()
    assert mine["trust_remote_code"] is False  # the caller's setting wins
    named = VLLMBackend(folder, profile="qwen-sea-lion-v4.5-27b-it")._start_settings()
    assert "trust_remote_code" not in named  # profile= decides, not the folder
    other = model_folder(tmp_path, {"architectures": ["Qwen3ForCausalLM"]}, name="other")
    assert "trust_remote_code" not in VLLMBackend(other)._start_settings()


# -- the real runtimes --------------------------------------------------------------------------


def gguf_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def gguf_kv(key: str, value: str) -> bytes:
    return gguf_string(key) + struct.pack("<I", GGUF_STRING) + gguf_string(value)


GGUF_STRING = 8
"""The GGUF value type of a string (``gguf.GGUFValueType.STRING``)."""


def with_names(source: Path, target: Path, metadata: dict[str, str]) -> Path:
    """A copy of a GGUF with ``metadata`` (string keys) as its names, everything else unchanged.

    Byte edits (gguf-py's reader takes about 30 s on the 128k-token vocabulary here): the old
    ``general.name`` key is renamed in place to a key nobody reads, and the new pairs go after
    the header with a filler pair that keeps tensor data at its 32-byte alignment.
    """
    data = source.read_bytes()
    assert data[:4] == b"GGUF" and b"general.alignment" not in data[:4096]  # the default 32
    old = gguf_string("general.name") + struct.pack("<I", GGUF_STRING)
    at = data.index(old)
    data = data[:at] + gguf_string("general.xxxx") + data[at + len(old) - 4 :]
    pairs = b"".join(gguf_kv(key, value) for key, value in metadata.items())
    filler = len(gguf_kv("test.pad", ""))
    pairs += gguf_kv("test.pad", "x" * (-(len(pairs) + filler) % 32))
    (n_kv,) = struct.unpack_from("<Q", data, 16)
    header = data[:16] + struct.pack("<Q", n_kv + len(metadata) + 1)
    target.write_bytes(header + pairs + data[24:])
    return target


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"general.name": "Qwen-SEA-LION-v4.5-27B-IT"}, QWEN_45),
        (
            {
                "general.name": "my-model",
                "general.basename": "Qwen-SEA-LION-v4.5",
                "general.size_label": "27B",
                "general.finetune": "IT",
            },
            QWEN_45,
        ),
        ({"general.name": "my-model"}, "template:model"),  # named by nothing: the template's
    ],
    ids=["name", "basename-size-finetune", "anonymous"],
)
def test_a_gguf_named_only_in_its_metadata_finds_its_profile(
    tmp_path: Path, metadata: dict[str, str], expected: str
) -> None:
    from sealion_agents.testing.families import tiny_family_gguf

    path = with_names(tiny_family_gguf("qwen"), tmp_path / "model.gguf", metadata)
    llm = ChatSeaLion.from_gguf(path, temperature=0, llama_kwargs=dict(LLAMA_TEST_KWARGS))
    try:
        profile = llm.sealion_profile
        assert profile.name == expected
        assert profile.keeps_reasoning is (expected == QWEN_45)  # the card's, not the template's
        assert llm.invoke("Hi there", thinking=False).content == GREETING
    finally:
        llm.close()


def test_a_vllm_folder_named_in_its_config_finds_its_profile(
    tmp_path: Path, more_vllm_engines: Any
) -> None:
    """A copy of the tiny Qwen folder, called "my-model", saved from the v4.5 repo."""
    from sealion_agents.testing.families import tiny_family_hf_folder

    source = tiny_family_hf_folder("qwen")
    folder = tmp_path / "my-model"
    folder.mkdir()
    for item in source.iterdir():
        if item.name == "config.json":
            config = json.loads(item.read_text())
            (folder / item.name).write_text(json.dumps({**config, "_name_or_path": QWEN_45_REPO}))
        elif item.suffix == ".safetensors":
            os.symlink(item.resolve(), folder / item.name)
        else:
            shutil.copy(item, folder / item.name)
    engine: Any = more_vllm_engines(folder)
    llm = ChatSeaLion.from_vllm(engine, temperature=0)
    profile = llm.sealion_profile
    assert profile.name == QWEN_45 and profile.keeps_reasoning
    assert llm.invoke("Hi there", thinking=False).content == GREETING
