"""Product code holds no repeated logic block of six or more lines (one home per concern).

The checker compares normalised source lines (stripped; blanks, comments, docstrings, import
statements, decorators and function signatures dropped) across ``firmware/``, ``storage/``,
``inference/``, ``drivers/`` and ``ota/``, and reports each repeated run as ``file:line`` pairs.
A repeated block wants a helper; it is not a reason to widen ``WINDOW``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("firmware", "storage", "inference", "drivers", "ota")
WINDOW = 6  # lines: a block this long, written twice, is a duplicate


def _skipped_lines(tree: ast.AST) -> set[int]:
    """Line numbers that are not logic: imports, decorators, signatures, docstrings."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            skip.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for dec in node.decorator_list:
                skip.update(range(dec.lineno, (dec.end_lineno or dec.lineno) + 1))
            skip.update(range(node.lineno, node.body[0].lineno))  # the signature
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                skip.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return skip


def logic_lines(source: str) -> list[tuple[int, str]]:
    """(line number, normalised text) of each line of logic in ``source``."""
    skip = _skipped_lines(ast.parse(source))
    out = []
    for no, raw in enumerate(source.splitlines(), start=1):
        text = raw.strip()
        if no in skip or not text or text.startswith("#"):
            continue
        out.append((no, text))
    return out


def duplicates(files: dict[str, str], window: int = WINDOW) -> list[tuple[str, str]]:
    """Each repeated run of ``window`` logic lines, as (``file:line``, ``file:line``) pairs."""
    seen: dict[tuple[str, ...], list[tuple[str, int, int]]] = defaultdict(list)
    for name, source in sorted(files.items()):
        lines = logic_lines(source)
        for i in range(len(lines) - window + 1):
            key = tuple(text for _, text in lines[i:i + window])
            seen[key].append((name, i, lines[i][0]))
    pairs: list[tuple[str, str]] = []
    reported: set[tuple[str, int]] = set()
    for hits in seen.values():
        first = hits[0]
        for other in hits[1:]:
            if other[0] == first[0] and other[1] - first[1] < window:
                continue  # the same lines, overlapping themselves (a run of equal lines)
            # a long duplicate matches at every offset: report only where it starts
            if (first[0], first[1] - 1) in reported and (other[0], other[1] - 1) in reported:
                reported.update({(first[0], first[1]), (other[0], other[1])})
                continue
            reported.update({(first[0], first[1]), (other[0], other[1])})
            pairs.append((f"{first[0]}:{first[2]}", f"{other[0]}:{other[2]}"))
    return sorted(pairs)


def product_sources() -> dict[str, str]:
    return {str(p.relative_to(REPO)): p.read_text(encoding="utf-8")
            for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def test_product_code_has_no_repeated_blocks() -> None:
    found = duplicates(product_sources())
    assert not found, "repeated blocks (extract a helper):\n" + "\n".join(
        f"  {a}  ==  {b}" for a, b in found)


def test_checker_catches_a_planted_duplicate_and_ignores_what_is_not_logic() -> None:
    block = "\n".join(f"    total += weight * {i}" for i in range(WINDOW))
    a = f'"""Doc."""\nimport os\n\ndef f(weight):\n    total = 0\n{block}\n    return total\n'
    b = f"def g(weight: int,\n      other: int) -> int:\n    total = 1\n{block}\n    return 0\n"
    assert duplicates({"a.py": a, "b.py": b}) == [("a.py:6", "b.py:4")]
    # one line shorter than the window is not a duplicate
    short = "\n".join(block.splitlines()[:-1])
    assert duplicates({"a.py": f"def f(weight):\n{short}\n",
                       "b.py": f"def g(weight):\n{short}\n"}) == []
    # imports, signatures, decorators, docstrings and comments do not count
    boiler = ("import os\nimport sys\nimport json\nimport re\nimport io\nimport abc\n"
              "@decorator\n@other\n"
              "def f(a: int,\n      b: int,\n      c: int,\n      d: int,\n      e: int,\n"
              "      g: int) -> None:\n    '''One.\n\n    Two.\n    Three.\n    Four.\n    '''\n"
              "    # one\n    # two\n    # three\n    # four\n    # five\n    # six\n"
              "    return None\n")
    assert duplicates({"a.py": boiler, "b.py": boiler.replace("return None", "pass")}) == []
