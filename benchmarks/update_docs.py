"""Copy benchmark results into docs/benchmarks.md between its markers.

``python -m benchmarks.update_docs [RESULTS.md [MARKER]]`` copies a table (default
``benchmarks/results/results.md``) between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` (another MARKER
uses ``<!-- MARKER:... -->``). ``python -m benchmarks.update_docs --summary DIR...`` writes one table of the
ratios of several runs' ``DIR/results.json`` side by side between ``<!-- bench-summary:... -->``.
Run it from the repository root.
"""

import json
import sys
from pathlib import Path

from .report import summary

PAGE = Path("docs") / "benchmarks.md"


def _replace(marker: str, content: str) -> int:
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = PAGE.read_text()
    if start not in text or end not in text:
        print(f"{PAGE} has no {start} ... {end} block", file=sys.stderr)
        return 2
    a, b = text.index(start) + len(start), text.index(end)
    PAGE.write_text(text[:a] + "\n" + content.strip() + "\n" + text[b:])
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--summary"]:
        runs = [(str(Path(d) / "results.md"), json.loads((Path(d) / "results.json").read_text())) for d in argv[1:]]
        return _replace("bench-summary", summary(runs))
    table = Path(argv[0] if argv else "benchmarks/results/results.md").read_text()
    return _replace(argv[1] if len(argv) > 1 else "bench", table)


if __name__ == "__main__":
    sys.exit(main())
