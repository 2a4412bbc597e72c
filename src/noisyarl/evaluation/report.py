"""Result files: Markdown tables, ``summary.json``/``summary.csv`` and ``report.md``.

Every file is written atomically (see :mod:`noisyarl.utils.io`), so an interrupted run never
leaves a half-written summary or report behind.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from noisyarl.evaluation.statistics import Interval
from noisyarl.utils.io import atomic_write_text, to_json_value, write_json

#: A table column: (row key, header text, format string such as ``"{:.2f}"``).
Column = tuple[str, str, str]

#: Shown for a missing value (key absent, ``None``, empty string or NaN).
MISSING = "—"

#: Columns for rows of ``reference/paper_tables.csv`` (values may be strings from a CSV reader).
PAPER_COLUMNS: list[Column] = [
    ("table", "table", "{}"),
    ("dataset", "dataset", "{}"),
    ("private_task", "private", "{}"),
    ("utility_task", "utility task", "{}"),
    ("method", "method", "{}"),
    ("split", "K", "{}"),
    ("sigma", "σ", "{}"),
    ("utility", "utility", "{}"),
    ("privacy", "privacy", "{}"),
    ("delta", "Δ (pp)", "{}"),
    ("utility_metric", "utility metric", "{}"),
]


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A Markdown (GitHub) table of ``rows``, one column per ``(key, header, fmt)``.

    Missing values (absent key, ``None``, ``""``, NaN) show as ``—``; a value the format string
    does not accept (e.g. ``"{:.2f}"`` on a string) is shown with ``str``.

    >>> print(format_table([{"method": "MaxEnt", "delta": 30.421}, {"method": "RN18"}],
    ...                    [("method", "method", "{}"), ("delta", "Δ", "{:.2f}")]))
    | method | Δ |
    | --- | --- |
    | MaxEnt | 30.42 |
    | RN18 | — |
    """
    lines = [
        _table_line(header for _, header, _ in columns),
        _table_line("---" for _ in columns),
    ]
    for row in rows:
        lines.append(_table_line(format_cell(row.get(key), fmt) for key, _, fmt in columns))
    return "\n".join(lines)


def format_cell(value: Any, fmt: str = "{}") -> str:
    """One table cell: ``value`` formatted with ``fmt``, or ``—`` when missing; an
    :class:`~noisyarl.evaluation.statistics.Interval` shows its mean and interval.

    >>> format_cell(None), format_cell(0.12345, "{:.3f}"), format_cell("n/a", "{:.2f}")
    ('—', '0.123', 'n/a')
    """
    if _is_missing(value):
        return MISSING
    try:
        text = value.text(fmt) if isinstance(value, Interval) else fmt.format(value)
    except (ValueError, TypeError):
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def write_summary(rows: Sequence[Mapping[str, Any]], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``summary.json`` (a list of the row objects) and ``summary.csv`` into ``out_dir``.

    The CSV has one column per key, in order of first appearance over the rows; missing values,
    ``None`` and non-finite floats are empty cells (``null`` in the JSON), and nested values
    (lists, dicts) are JSON text. Returns ``(json_path, csv_path)``.
    """
    out_dir = Path(out_dir)
    json_path = write_json(out_dir / "summary.json", list(rows))
    return json_path, write_csv(rows, out_dir / "summary.csv")


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` as CSV (columns and cells as in :func:`write_summary`); returns ``path``."""
    return atomic_write_text(path, _csv_text(rows))


def paper_reference_rows(**filters: str) -> list[dict[str, str]]:
    """Rows of the paper's tables 1-3 (``paper_tables.csv``, shipped with the package) whose
    columns equal ``filters`` (compared as text, case-insensitive), in file order.

    Columns: table, dataset, private_task, utility_task, method, split, sigma, privacy, utility,
    delta, utility_metric; privacy and utility in percent (utility is MSE where utility_metric
    is ``mse``). For report context only, never as expected values.

    >>> [row["method"] for row in paper_reference_rows(table="2")]
    ['RN18', 'MaxEnt', 'NoisyARL']
    """
    text = resources.files("noisyarl.evaluation").joinpath("paper_tables.csv").read_text("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    unknown = [key for key in filters if rows and key not in rows[0]]
    if unknown:
        raise ValueError(f"unknown paper-table column(s) {unknown}; columns: {list(rows[0])}")
    wanted = {key: str(value).lower() for key, value in filters.items()}
    return [row for row in rows if all(row[k].lower() == v for k, v in wanted.items())]


def write_report(
    out_dir: str | Path,
    title: str,
    summary_rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    images: Mapping[str, str | Path] | None = None,
    notes: Sequence[str] | None = None,
    paper_rows: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``out_dir/report.md`` and return its path.

    Sections: the results table (``columns``: the caller's, e.g.
    :data:`noisyarl.runners.result.SUMMARY_COLUMNS`), the paper's
    reference rows if given (:data:`PAPER_COLUMNS`; for orientation, not expected values), the
    images (``{caption: PNG path}``, embedded with paths relative to ``out_dir``) and the notes
    (device, noise on/off, ...).
    """
    out_dir = Path(out_dir)
    sections = [f"# {title}", "## Results\n\n" + format_table(summary_rows, columns)]
    if paper_rows:
        sections.append(
            "## Paper reference\n\nFigures reported in the paper, for orientation only: "
            "they come from other data, sizes and training budgets.\n\n"
            + format_table(paper_rows, PAPER_COLUMNS)
        )
    if images:
        figures = [f"### {caption}\n\n![{caption}]({_link(out_dir, path)})"
                   for caption, path in images.items()]
        sections.append("## Figures\n\n" + "\n\n".join(figures))
    if notes:
        sections.append("## Notes\n\n" + "\n".join(f"- {note}" for note in notes))
    return atomic_write_text(out_dir / "report.md", "\n\n".join(sections) + "\n")


def _table_line(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _is_missing(value: Any) -> bool:
    if isinstance(value, str):
        return value == ""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    rows = [to_json_value(dict(row)) for row in rows]
    fieldnames = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(row.get(key)) for key in fieldnames})
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _link(out_dir: Path, path: str | Path) -> str:
    """Markdown link target for ``path``: relative to ``out_dir`` where possible, POSIX slashes."""
    path = Path(path)
    try:
        target = os.path.relpath(path.resolve(), out_dir.resolve())
    except ValueError:  # another drive on Windows
        target = str(path.resolve())
    target = Path(target).as_posix()
    return f"<{target}>" if " " in target else target


__all__ = [
    "MISSING",
    "PAPER_COLUMNS",
    "Column",
    "format_cell",
    "format_table",
    "paper_reference_rows",
    "write_csv",
    "write_report",
    "write_summary",
]
