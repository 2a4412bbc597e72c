"""README.md promises two set-up commands; CI must run exactly the second one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.DOTALL)


def test_readme_opens_with_demo_then_test_command():
    first, second = _readme_commands()[:2]
    assert first.startswith("python3 -m venv .venv") and first.endswith("noisyarl demo --quick")
    assert second.endswith("-m pytest")


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = _readme_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines


def test_demo_command_names_a_real_cli_option():
    from noisyarl.cli import build_parser

    args = build_parser().parse_args(["demo", "--quick"])
    assert args.quick is True
