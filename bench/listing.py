"""Every benchmark with what it measures (the first line of its docstring): `just bench` alone."""

from __future__ import annotations

import ast
from pathlib import Path


def main() -> None:
    print("just bench NAME [ARGS]: runs bench/bench_NAME.py (--help on each says its arguments)\n")
    for script in sorted(Path(__file__).parent.glob("bench_*.py")):
        docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
        name = script.stem.removeprefix("bench_").replace("_", "-")
        print(f"  {name:<16} {docstring.splitlines()[0] if docstring else ''}")


if __name__ == "__main__":
    main()
