"""The code blocks of README.md and docs/*.md, read for the tests that run them.

Python blocks run as tests through pytest-markdown-docs (``fixture:NAME`` in a block's info
string injects a fixture of ``tests/doc_fixtures.py``). A shell block is named in its info
string (```` ```bash id=qa-commands ````) and a test reads its commands with
:func:`shell_commands` and runs them. A block that is not run says why in an HTML comment on
the line above it: ``<!-- not run: reason -->``. ``tests/test_docs.py`` checks that every
block is one of these.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
SHELLS = {"bash", "sh", "shell", "console"}
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its info string and its text."""

    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    text: str
    not_run: str | None  # the reason given on the line above, if any

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def options(self) -> set[str]:
        return set(self.info.split()[1:])

    @property
    def id(self) -> str | None:
        found = [o.split("=", 1)[1] for o in self.options if o.startswith("id=")]
        return found[0] if found else None

    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a markdown file, in order."""
    from markdown_it import MarkdownIt

    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for token in MarkdownIt("commonmark").parse("\n".join(lines)):
        if token.type != "fence" or token.map is None:
            continue
        start = token.map[0]
        above = lines[start - 1] if start > 0 else ""
        match = NOT_RUN.search(above)
        found.append(
            Block(path, start + 1, token.info.strip(), token.content, match and match.group(1))
        )
    return found


def all_blocks() -> list[Block]:
    """Every fenced block of README.md and docs/*.md."""
    return [block for path in DOCUMENTS for block in blocks(path)]


def shell_block(block_id: str) -> Block:
    """The shell block named ``id=block_id`` (exactly one must exist)."""
    named = [b for b in all_blocks() if b.language in SHELLS and b.id == block_id]
    assert len(named) == 1, f"expected one shell block with id={block_id}, found {len(named)}"
    return named[0]


def shell_commands(block_id: str) -> list[list[str]]:
    """The commands of a named shell block as argument lists: comments dropped, lines joined
    where they end with a backslash."""
    text = shell_block(block_id).text.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands
