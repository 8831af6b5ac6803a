"""The size rules of tta's code (STYLE.md): no module over 500 lines, no function over 80 (decorators,
signature and docstring included), so no file holds two ideas and no step hides a second one."""

from __future__ import annotations

import ast
from pathlib import Path

TTA = Path(__file__).resolve().parents[1] / "tta"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def test_no_file_or_function_is_too_long():
    long_files, long_functions = [], []
    for path in sorted(TTA.rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            long_files.append(f"{path.relative_to(TTA.parent)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(TTA.parent)}:{node.lineno} {node.name}")
    assert not long_files and not long_functions, (long_files, long_functions)
