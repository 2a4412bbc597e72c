"""Tests of noisyarl.evaluation.report: Markdown tables, summary files, report.md."""

from __future__ import annotations

import csv
import json
import math

from noisyarl.evaluation.report import (
    MISSING,
    PAPER_COLUMNS,
    format_table,
    write_report,
    write_summary,
)

COLUMNS = [("method", "method", "{}"), ("sigma", "σ", "{:g}"), ("delta", "Δ", "{:.2f}")]

REPORT_COLUMNS = [
    ("method", "method", "{}"), ("split", "K", "{}"), ("sigma", "σ", "{:g}"),
    ("client_gflops", "client GFLOPs", "{:.3f}"), ("utility", "utility ↑", "{:.2f}"),
    ("privacy", "privacy ↓", "{:.2f}"), ("delta", "Δ ↑ (pp)", "{:.2f}"),
    ("psnr", "PSNR (dB)", "{:.2f}"), ("ssim", "SSIM", "{:.3f}"),
]

ROWS = [
    {"method": "RN18 (upper bound)", "split": 0, "sigma": 0.0, "client_gflops": 3.6,
     "utility": 93.48, "privacy": 94.2, "delta": None, "psnr": None, "ssim": None},
    {"method": "noisy ARL", "split": 3, "sigma": 960.0, "client_gflops": 1.905,
     "utility": 52.64, "privacy": 20.68, "delta": 31.96, "psnr": 14.137, "ssim": 0.3512},
]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_format_table_has_header_separator_and_one_line_per_row():
    lines = format_table(ROWS, COLUMNS).splitlines()

    assert _cells(lines[0]) == ["method", "σ", "Δ"]
    assert _cells(lines[1]) == ["---"] * 3
    assert _cells(lines[2]) == ["RN18 (upper bound)", "0", MISSING]
    assert _cells(lines[3]) == ["noisy ARL", "960", "31.96"]
    assert len(lines) == 2 + len(ROWS)


def test_format_table_shows_missing_values_as_a_dash_and_tolerates_odd_values():
    rows = [{"method": "a|b", "sigma": float("nan"), "delta": "n/a"}, {}]
    lines = format_table(rows, COLUMNS).splitlines()
    assert lines[2] == "| a\\|b | — | n/a |"  # a pipe inside a cell is escaped
    assert lines[3] == "| — | — | — |"


def test_write_summary_writes_json_and_csv(tmp_path):
    rows = [*ROWS, {"method": "extra", "psnr": math.inf, "cost": {"z_shape": [256, 12, 12]}}]

    json_path, csv_path = write_summary(rows, tmp_path / "out")

    assert json_path == tmp_path / "out" / "summary.json"
    saved = json.loads(json_path.read_text(encoding="utf-8"))
    assert saved[:2] == ROWS
    assert saved[2]["psnr"] is None  # inf is not JSON: written as null
    with csv_path.open(encoding="utf-8", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == [*ROWS[0], "cost"]  # union of keys, first-seen order
    assert table[1]["method"] == "noisy ARL" and float(table[1]["delta"]) == 31.96
    assert table[0]["delta"] == "" and table[2]["psnr"] == ""
    assert json.loads(table[2]["cost"]) == {"z_shape": [256, 12, 12]}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["summary.csv", "summary.json"]


def test_write_summary_replaces_an_older_summary(tmp_path):
    write_summary(ROWS, tmp_path)
    write_summary(ROWS[:1], tmp_path)
    assert len(json.loads((tmp_path / "summary.json").read_text())) == 1
    assert len((tmp_path / "summary.csv").read_text().splitlines()) == 2


def test_write_report_has_table_images_paper_rows_and_notes(tmp_path):
    (tmp_path / "figures").mkdir()
    grid = tmp_path / "figures" / "reconstructions.png"
    grid.write_bytes(b"png")
    paper = [{"table": "1", "dataset": "FairFace", "private_task": "Race", "utility_task": "Age",
              "method": "NoisyARL", "split": "3", "sigma": "960", "privacy": "20.68",
              "utility": "52.64", "delta": "31.96", "utility_metric": "accuracy"}]

    path = write_report(tmp_path, "noisyarl run", ROWS, REPORT_COLUMNS,
                        images={"Reconstructions (originals on top)": grid},
                        notes=["Device: cpu; noise on"], paper_rows=paper)

    text = path.read_text(encoding="utf-8")
    assert path == tmp_path / "report.md"
    assert text.startswith("# noisyarl run\n")
    lines = text.splitlines()
    result_header = lines.index(format_table([], REPORT_COLUMNS).splitlines()[0])
    assert _cells(lines[result_header + 3]) == [
        "noisy ARL", "3", "960", "1.905", "52.64", "20.68", "31.96", "14.14", "0.351"]
    assert format_table(paper, PAPER_COLUMNS) in text
    assert "![Reconstructions (originals on top)](figures/reconstructions.png)" in text
    assert "- Device: cpu; noise on" in text
    assert text.index("## Results") < text.index("## Paper reference") < text.index("## Notes")


def test_write_report_leaves_out_empty_sections(tmp_path):
    text = write_report(tmp_path, "t", ROWS, COLUMNS).read_text(encoding="utf-8")
    for heading in ("## Paper reference", "## Figures", "## Notes"):
        assert heading not in text
    assert "## Results" in text
