"""README.md and docs/*.md: every code block is run by a test, or says why it is not.

Python blocks run as tests themselves (pytest-markdown-docs; fixtures in tests/doc_fixtures.py).
Shell blocks are named (``id=...``) and run by the tests that read them (tests/test_docs_shell.py).
"""

from __future__ import annotations

import re

import pytest

from sealion_agents.testing.servers import VLLM_ENGINE_KWARGS
from tests.doc_blocks import REPO, SHELLS, all_blocks

BLOCKS = all_blocks()
TESTS_TEXT = "\n".join(
    p.read_text(encoding="utf-8")
    for p in (REPO / "tests").rglob("*.py")
    if p.name != "doc_blocks.py"
)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where() for b in BLOCKS])
def test_every_block_is_run_or_says_why_not(block) -> None:
    if block.language in ("python", "py", "python3"):
        skipped = "notest" in block.options
        assert skipped == bool(block.not_run), (
            f"{block.where()}: a Python block marked notest needs '<!-- not run: reason -->' on "
            "the line above, and a block with that comment needs notest"
        )
    elif block.language == "json":
        assert block.id and f'"{block.id}"' in TESTS_TEXT, f"{block.where()}: check it in a test"
    elif block.language in SHELLS:
        if block.not_run:
            assert block.id is None, f"{block.where()}: a block not run needs no id"
            return
        assert block.id, f"{block.where()}: name the block (id=...) and run it in a test"
        assert f'"{block.id}"' in TESTS_TEXT, f"{block.where()}: no test reads id={block.id}"
    else:  # a diagram or output: plain text, nothing to run
        assert block.language in ("", "text"), f"{block.where()}: unknown language {block.info}"


def test_the_documented_vllm_cpu_settings_are_the_ones_tests_use() -> None:
    text = (REPO / "docs" / "backends.md").read_text(encoding="utf-8")
    settings = re.search(r"### CPU settings.*?\n\n(.*?)\n\n", text, re.S)
    assert settings is not None
    for name in ("dtype", "enforce_eager", "max_model_len", "distributed_executor_backend"):
        value = repr(VLLM_ENGINE_KWARGS[name]).replace("'", '"')
        assert f"{name}={value}" in settings.group(1).replace("\n", " ")


def test_the_llama_cpp_server_config_is_one_its_server_accepts() -> None:
    from llama_cpp.server.settings import ConfigFileSettings

    from tests.doc_blocks import DOCUMENTS, blocks

    (block,) = [b for p in DOCUMENTS for b in blocks(p) if b.id == "llama-server-config"]
    config = ConfigFileSettings.model_validate_json(block.text)
    aliases = {m.model_alias: m.chat_template_kwargs for m in config.models}
    assert aliases == {
        "sealion-on": {"thinking_mode": "on"},
        "sealion-off": {"thinking_mode": "off"},
    }
    assert config.interrupt_requests is False
