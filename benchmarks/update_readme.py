"""Copy a results table into README.md between its markers:
``python -m benchmarks.update_readme [RESULTS.md [MARKER]]`` (default ``benchmarks/results/results.md``
between ``<!-- bench:start -->`` and ``<!-- bench:end -->``; MARKER ``bench1`` uses ``<!-- bench1:... -->``)."""

import sys
from pathlib import Path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    table = Path(argv[0] if argv else "benchmarks/results/results.md").read_text().strip()
    marker = argv[1] if len(argv) > 1 else "bench"
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    readme = Path("README.md")
    text = readme.read_text()
    if start not in text or end not in text:
        print(f"README.md has no {start} ... {end} block", file=sys.stderr)
        return 2
    a, b = text.index(start) + len(start), text.index(end)
    readme.write_text(text[:a] + "\n" + table + "\n" + text[b:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
