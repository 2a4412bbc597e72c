"""Scoring: the exact binomial test, and per-method shares on a hand-made answer set."""

from __future__ import annotations

import csv
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyarl.study.build import load_study
from noisyarl.study.results import (
    binomial_test,
    format_scores,
    score_method,
    study_results,
)
from noisyarl.study.store import DATABASE_FILE, AnswerStore


def test_binomial_test_matches_textbook_values():
    # 7 of 10 at p = 1/2: P(X >= 7) = 176/1024, two-sided doubles it (symmetric).
    assert binomial_test(7, 10, 0.5, "greater") == pytest.approx(176 / 1024)
    assert binomial_test(7, 10, 0.5) == pytest.approx(352 / 1024)
    assert binomial_test(5, 10, 0.5) == pytest.approx(1.0)
    assert binomial_test(0, 0, 0.5) == 1.0
    # 30 of 30 correct: P = 2 * 2^-30.
    assert binomial_test(30, 30, 0.5) == pytest.approx(2 * 0.5 ** 30)
    # asymmetric p: 3 of 10 at p = 0.1 (scipy.stats.binomtest(3, 10, 0.1).pvalue)
    assert binomial_test(3, 10, 0.1) == pytest.approx(0.07019082, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 200), data=st.data(),
       p=st.floats(0.05, 0.95).filter(lambda p: not math.isclose(p, 0.5, abs_tol=1e-9)))
def test_binomial_test_agrees_with_scipy(n, data, p):
    scipy_stats = pytest.importorskip("scipy.stats")
    k = data.draw(st.integers(0, n))
    for alternative in ("two-sided", "greater", "less"):
        expected = 1.0 if n == 0 else scipy_stats.binomtest(k, n, p, alternative).pvalue
        assert binomial_test(k, n, p, alternative) == pytest.approx(expected, rel=1e-6,
                                                                    abs=1e-12)


def test_appendix_reading_of_perfect_privacy():
    even = score_method("m", ["correct", "wrong"] * 15, participants=30, chance=0.5)
    assert even.correct_share == even.wrong_share == 0.5
    assert even.guess_adjusted_accuracy == 0.5 and even.p_value == pytest.approx(1.0)
    assert "consistent with chance" in even.reading
    blind = score_method("m", ["cannot_judge"] * 10, participants=5, chance=0.5)
    assert blind.cannot_judge_share == 1.0 and blind.guess_adjusted_accuracy == 0.5
    assert "perfect privacy" in blind.reading
    leaky = score_method("m", ["correct"] * 28 + ["wrong"] * 2, participants=30, chance=0.5)
    assert leaky.p_value < 1e-5 and "above chance" in leaky.reading


def _answer_all(store, code, choices_by_row, items):
    """Answer ``code``'s whole order; the choice depends on the image's method and row."""
    progress = store.start(code)
    while progress.next_image is not None:
        item = items[progress.next_image]
        progress = store.answer(code, progress.next_image,
                                choices_by_row[item["method"]][item["row"]])


def test_results_on_a_hand_made_answer_set(toy_study, toy_codes):
    manifest = load_study(toy_study)
    items = {item["id"]: item for item in manifest["items"]}
    clear, noisy = manifest["methods"]  # true labels per row: 1, 0, 1 ("1" = Male = Yes)
    store = AnswerStore(toy_study / DATABASE_FILE, list(items))
    # participant A: all correct on `clear`; on `noisy` wrong, cannot judge, correct
    _answer_all(store, toy_codes[0], {clear: ["1", "0", "1"],
                                      noisy: ["0", "cannot_judge", "1"]}, items)
    # participant B: on `clear` correct, wrong, cannot judge; `noisy` all cannot judge
    _answer_all(store, toy_codes[1], {clear: ["1", "1", "cannot_judge"],
                                      noisy: ["cannot_judge"] * 3}, items)

    scores = {score.method: score for score in study_results(toy_study)}
    assert (scores[clear].correct, scores[clear].wrong, scores[clear].cannot_judge) == (4, 1, 1)
    assert (scores[noisy].correct, scores[noisy].wrong, scores[noisy].cannot_judge) == (1, 1, 4)
    assert scores[clear].correct_share == pytest.approx(4 / 6)
    assert scores[noisy].cannot_judge_share == pytest.approx(4 / 6)
    assert scores[clear].guess_adjusted_accuracy == pytest.approx((4 + 0.5) / 6)
    assert scores[noisy].guess_adjusted_accuracy == pytest.approx((1 + 2) / 6)
    assert scores[clear].p_value == pytest.approx(binomial_test(4, 5, 0.5))
    assert scores[clear].participants == scores[noisy].participants == 2

    out = toy_study / "results"
    with open(out / "summary.csv", newline="") as handle:
        summary = {row["method"]: row for row in csv.DictReader(handle)}
    assert int(summary[clear]["correct"]) == 4 and int(summary[noisy]["cannot_judge"]) == 4
    with open(out / "answers.csv", newline="") as handle:
        answers = list(csv.DictReader(handle))
    assert len(answers) == 12 and {row["participant"] for row in answers} == {"P01", "P02"}
    assert not any(code in (out / "answers.csv").read_text() for code in toy_codes)
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = format_scores(list(scores.values()))
    assert clear in table and "66.7%" in table


def test_results_command_prints_the_table(toy_study, toy_codes, capsys):
    from noisyarl.cli import main

    manifest = load_study(toy_study)
    items = {item["id"]: item for item in manifest["items"]}
    store = AnswerStore(toy_study / DATABASE_FILE, list(items))
    _answer_all(store, toy_codes[2], {method: ["cannot_judge"] * 3
                                      for method in manifest["methods"]}, items)
    assert main(["study", "results", str(toy_study)]) == 0
    printed = capsys.readouterr().out
    assert "perfect privacy" in printed and all(m in printed for m in manifest["methods"])
