"""Every ```python block of README.md and of docs/**/*.md runs, and prints what the page shows.

The convention, for whoever writes a page:

- A fence whose info string is exactly ``python`` (or ``py``) runs. Any other fence
  does not: ```text, ```bash, ```output, and ```python with anything after the
  language (```python notest) -- use that for code that needs a GPU, a process
  group, a download or data the page does not build.
- The blocks of one file run in order in one namespace (a page may build its data
  in one block and use it in the next), in a fresh interpreter per file, on the CPU
  only (``CUDA_VISIBLE_DEVICES=""``), with matplotlib's Agg backend, in an empty
  temporary working directory (files a block writes land there), with the seeds of
  ``random``, numpy and torch set to 0 before the first block.
- A block whose first line starts with ``>>>`` is a doctest session: each ``>>>``
  statement runs and its output must match the lines under it (ELLIPSIS and
  NORMALIZE_WHITESPACE on).
- A ```python block followed directly (only blank lines between) by an ```output
  or ```text block must print exactly that block (trailing spaces ignored; a line
  ``...`` stands for any number of lines).
- Each file must finish within ``TIME_LIMIT_S`` seconds.
- Generated pages are left out: ``docs/_build``, ``docs/auto_examples`` (sphinx-gallery runs
  its scripts itself) and hidden folders.

Run one page by hand: ``python tests/docs/test_code_blocks.py README.md``.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIME_LIMIT_S = 300  # per file, on the 2-core development VM beside other work
RUN_INFO = {"python", "py"}
OUTPUT_INFO = {"output", "text"}
FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    info: str
    code: str
    expected: str | None = None  # the output block that follows, if any


def parse_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, in order; output blocks are attached to the block before them."""
    blocks: list[Block] = []
    lines = text.split("\n")
    i = 0
    last_end = -1  # line index of the closing fence of the previous block
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info, indent = m["fence"], m["info"].strip(), len(m["indent"])
        j = i + 1
        while j < len(lines):
            close = lines[j].strip()
            if close.startswith(fence[0] * len(fence)) and set(close) == {fence[0]}:
                break
            j += 1
        body = [line[indent:] if line[:indent].strip() == "" else line.lstrip() for line in lines[i + 1 : j]]
        code = "\n".join(body) + "\n"
        follows = blocks and last_end >= 0 and all(not lines[k].strip() for k in range(last_end + 1, i))
        if info in OUTPUT_INFO and follows and blocks[-1].info in RUN_INFO and blocks[-1].expected is None:
            blocks[-1].expected = code
        blocks.append(Block(i + 1, info, code))
        last_end = j
        i = j + 1
    return blocks


def runnable(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.info in RUN_INFO]


def pages() -> list[Path]:
    found = [ROOT / "README.md"] if (ROOT / "README.md").exists() else []
    docs = ROOT / "docs"
    if docs.is_dir():
        generated = ("_build", ".", "auto_examples")  # build output; the gallery's scripts run in its own build
        found += sorted(
            p for p in docs.rglob("*.md") if not any(part.startswith(generated) for part in p.relative_to(docs).parts)
        )
    return [p for p in found if runnable(parse_blocks(p.read_text(encoding="utf-8")))]


def _same_output(expected: str, got: str) -> bool:
    want = [line.rstrip() for line in expected.rstrip("\n").split("\n")]
    have = [line.rstrip() for line in got.rstrip("\n").split("\n")]
    pattern = "\n".join(".*?" if line == "..." else re.escape(line) for line in want)
    return re.fullmatch(pattern.replace("\n.*?\n", "(?:\n.*?)?\n"), "\n".join(have), re.S) is not None


def run_page(path: Path) -> None:
    """Runs the page's blocks in one namespace; raises AssertionError naming the block that failed."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    namespace: dict = {"__name__": "__main__"}
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    for block in runnable(parse_blocks(path.read_text(encoding="utf-8"))):
        where = f"{path.name}, the block at line {block.line}"
        if block.code.lstrip().startswith(">>>"):
            test = doctest.DocTestParser().get_doctest(block.code, namespace, where, str(path), block.line)
            out = io.StringIO()
            runner = doctest.DocTestRunner(optionflags=flags)
            runner.run(test, out=out.write, clear_globs=False)
            if runner.failures:
                raise AssertionError(f"{where} fails:\n{out.getvalue()}")
            continue
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(block.code, f"{path}:{block.line}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{where} raised {type(error).__name__}: {error}") from error
        if block.expected is not None and not _same_output(block.expected, out.getvalue()):
            raise AssertionError(f"{where} printed\n{out.getvalue()}\ninstead of what the page shows:\n{block.expected}")


# ---------------------------------------------------------------------------------------------- tests


def test_parse_blocks_follows_the_convention():
    text = "\n".join(
        [
            "```python",
            "print(1)",
            "```",
            "",
            "```output",
            "1",
            "```",
            "  ```py",
            "  y = 2",
            "  ```",
            "```python notest",
            "x.cuda()",
            "```",
            "```text",
            "not an output: it follows a block that does not run",
            "```",
            "````python",
            "s = '```'",
            "````",
        ]
    )
    blocks = parse_blocks(text)
    assert [(b.line, b.info) for b in blocks] == [
        (1, "python"),
        (5, "output"),
        (8, "py"),
        (11, "python notest"),
        (14, "text"),
        (17, "python"),
    ]
    assert blocks[0].expected == "1\n"
    assert blocks[2].code == "y = 2\n" and blocks[2].expected is None
    assert blocks[3].expected is None  # a block that does not run has no output to compare
    assert [b.line for b in runnable(blocks)] == [1, 8, 17]
    assert blocks[5].code == "s = '```'\n"


def test_parse_blocks_attaches_text_directly_after_python():
    blocks = parse_blocks("```python\nprint('a')\n```\n```text\na\n```\n")
    assert blocks[0].expected == "a\n"
    blocks = parse_blocks("```python\nprint('a')\n```\nprose\n```text\na\n```\n")
    assert blocks[0].expected is None


def test_output_comparison():
    assert _same_output("a\nb\n", "a  \nb")
    assert not _same_output("a\nb\n", "a\nc\n")
    assert _same_output("a\n...\nd\n", "a\nb\nc\nd\n")
    assert _same_output("a\n...\nd\n", "a\nd\n")
    assert not _same_output("a\n...\nd\n", "a\nb\n")


def test_run_page_names_the_failing_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n\n```python\nprint(x + 1)\n```\n```output\n3\n```\n", encoding="utf-8")
    try:
        run_page(page)
    except AssertionError as error:
        assert "line 5" in str(error) and "printed\n2" in str(error)
    else:
        raise AssertionError("a wrong output passed")
    page.write_text("```python\n>>> 1 + 1\n3\n```\n", encoding="utf-8")
    try:
        run_page(page)
    except AssertionError as error:
        assert "line 1" in str(error)
    else:
        raise AssertionError("a wrong doctest output passed")
    page.write_text(
        "```python\nx = 2\n```\n```python\n>>> x * 2\n4\n```\n```python notest\nraise SystemExit\n```\n", encoding="utf-8"
    )
    run_page(page)


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def pytest_generate_tests(metafunc):
    if "page" in metafunc.fixturenames:
        found = pages()
        metafunc.parametrize("page", found, ids=[_page_id(p) for p in found])


def test_code_blocks_run(page):
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    }
    with tempfile.TemporaryDirectory() as cwd:
        try:
            done = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), str(page)],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIME_LIMIT_S,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{_page_id(page)}: its code blocks ran past {TIME_LIMIT_S} s") from None
    assert done.returncode == 0, f"{_page_id(page)}:\n{done.stderr[-6000:]}"


if __name__ == "__main__":
    for name in sys.argv[1:]:
        run_page(Path(name).resolve())
