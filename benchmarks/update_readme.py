"""Copy the latest results table into README.md between its bench markers:
``python -m benchmarks.update_readme [benchmarks/results/results.md]``."""

import sys
from pathlib import Path

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    table = Path(argv[0] if argv else "benchmarks/results/results.md").read_text().strip()
    readme = Path("README.md")
    text = readme.read_text()
    a, b = text.index(START) + len(START), text.index(END)
    readme.write_text(text[:a] + "\n" + table + "\n" + text[b:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
