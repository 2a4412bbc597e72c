"""Keep a long benchmark's finished runs small enough to commit, and put them back to resume.

A benchmark longer than one session (``bench_compare.py --seeds ... --pareto``) is continued
with ``--resume`` in a later session, on another machine. Its run directories hold checkpoints
(tens of MB each), but a finished run is reused from three small files alone: ``config.yaml``,
``tasks.json`` and ``metrics.json``. This script copies those of every finished run under SRC,
plus the tables and figures (``table.*``, ``pareto.*``, ``report.md``, ``*.png`` beside them),
to DEST with the same relative paths. Copying back (DEST to a fresh ``--out``) lets the
benchmark skip every kept run.

Usage: python benchmarks/keep_runs.py SRC DEST     (e.g. /tmp/b15 benchmarks/results/b15)
       python benchmarks/keep_runs.py benchmarks/results/b15 /tmp/b15   (to resume)
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

RUN_FILES = ("config.yaml", "tasks.json", "metrics.json")
TABLE_PATTERNS = ("table.*", "pareto.*", "report.md", "privacy_utility.png")


def kept_files(source: Path) -> list[Path]:
    """The files to keep under ``source``: the three files of each finished run (a folder with
    a ``config.yaml`` and a ``metrics.json``, wherever it sits: ``PAIR/runs/RUN`` of a
    comparison, ``ARM/RUN`` of the precision study) and each comparison's tables and figures."""
    files, run_dirs = [], set()
    for metrics in sorted(source.glob("**/metrics.json")):
        if (metrics.parent / "config.yaml").exists():
            run_dirs.add(metrics.parent)
            files += [metrics.parent / name for name in RUN_FILES
                      if (metrics.parent / name).exists()]
    for pattern in TABLE_PATTERNS:
        files += [path for path in sorted(source.glob(f"**/{pattern}"))
                  if not run_dirs.intersection(path.parents)]
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args()
    files = kept_files(args.source)
    for path in files:
        target = args.dest / path.relative_to(args.source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    print(f"copied {len(files)} files from {args.source} to {args.dest}")


if __name__ == "__main__":
    main()
