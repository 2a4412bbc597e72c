"""``noisyarl study results``: score the answers per method (appendix C).

Each answer is *Correct* (the true private class), *Wrong* (another class) or *Cannot judge*.
Appendix C's reading for a balanced binary task: 50% Correct / 50% Wrong is a random guess, and
"Cannot judge" is one too (without that option the participant would have guessed), so an even
split, or all "Cannot judge", is the best privacy a defence can reach. Per method we report:

* the shares of Correct / Wrong / Cannot judge among all its answers;
* the *guess-adjusted accuracy* ``(correct + chance * cannot_judge) / answers``: "Cannot judge"
  counted as a random guess, as the appendix reads it (chance = 1 / number of classes, since the
  study is balanced);
* an exact two-sided binomial test of the judged answers (Correct vs Wrong) against chance. It
  treats answers as independent, which answers by the same participant are not quite: read the
  p-value as a guide, not a verdict.

Writes ``results/summary.csv``, ``results/answers.csv`` (participants renamed P01, P02, ... in
the order they started; their codes are credentials and stay out), ``results/results.json`` and
``results/results.png`` (stacked bars).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from noisyarl.errors import ConfigError
from noisyarl.study.build import CANNOT_JUDGE, load_study
from noisyarl.study.store import DATABASE_FILE, AnswerRow, AnswerStore
from noisyarl.utils.io import atomic_write_text, write_json

RESULTS_DIR = "results"
#: Significance level of the reading (the p-value itself is reported too).
ALPHA = 0.05


def binomial_pmf(k: int, n: int, p: float) -> float:
    """P(X = k) for X ~ Binomial(n, p), computed in log space (no overflow for large n).

    >>> round(binomial_pmf(2, 4, 0.5), 4)
    0.375
    """
    if not 0 <= k <= n:
        return 0.0
    if p in (0.0, 1.0):
        return float(k == (n if p == 1.0 else 0))
    return math.exp(math.log(math.comb(n, k)) + k * math.log(p) + (n - k) * math.log1p(-p))


def binomial_test(k: int, n: int, p: float, alternative: str = "two-sided") -> float:
    """Exact binomial test of ``k`` successes in ``n`` trials against success probability ``p``.

    ``two-sided``: the probability of every outcome no more likely than ``k`` (the same rule as
    ``scipy.stats.binomtest``); ``greater``: P(X >= k); ``less``: P(X <= k). n = 0 gives 1.

    >>> round(binomial_test(7, 10, 0.5), 6)  # 2 * 176 / 1024
    0.34375
    >>> round(binomial_test(7, 10, 0.5, "greater"), 6)
    0.171875
    """
    if not 0 <= k <= n or not 0 <= p <= 1:
        raise ValueError(f"need 0 <= k <= n and 0 <= p <= 1, got k={k}, n={n}, p={p}")
    if n == 0:
        return 1.0
    pmf = [binomial_pmf(i, n, p) for i in range(n + 1)]
    if alternative == "greater":
        value = sum(pmf[k:])
    elif alternative == "less":
        value = sum(pmf[:k + 1])
    elif alternative == "two-sided":
        threshold = pmf[k] * (1 + 1e-7)  # scipy's tolerance for ties in floating point
        value = sum(mass for mass in pmf if mass <= threshold)
    else:
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")
    return min(1.0, value)


@dataclass
class MethodScore:
    """Answers about one method's reconstructions; shares are fractions of ``answers``."""

    method: str
    answers: int
    participants: int
    correct: int
    wrong: int
    cannot_judge: int
    correct_share: float
    wrong_share: float
    cannot_judge_share: float
    guess_adjusted_accuracy: float
    chance: float
    p_value: float
    reading: str


def score_method(method: str, outcomes: list[str], participants: int,
                 chance: float) -> MethodScore:
    """Score the outcomes (``correct`` / ``wrong`` / ``cannot_judge``) of one method."""
    correct, wrong = outcomes.count("correct"), outcomes.count("wrong")
    cannot = outcomes.count(CANNOT_JUDGE)
    total = len(outcomes)
    share = (lambda count: count / total) if total else (lambda count: float("nan"))
    p_value = binomial_test(correct, correct + wrong, chance)
    return MethodScore(
        method=method, answers=total, participants=participants, correct=correct, wrong=wrong,
        cannot_judge=cannot, correct_share=share(correct), wrong_share=share(wrong),
        cannot_judge_share=share(cannot),
        guess_adjusted_accuracy=share(correct + chance * cannot),
        chance=chance, p_value=p_value, reading=_reading(correct, wrong, cannot, chance, p_value),
    )


def _reading(correct: int, wrong: int, cannot: int, chance: float, p_value: float) -> str:
    if correct + wrong + cannot == 0:
        return "no answers yet"
    if correct + wrong == 0:
        return "all 'cannot judge': perfect privacy (appendix C)"
    judged_accuracy = correct / (correct + wrong)
    if p_value >= ALPHA:
        return (f"judged answers consistent with chance (p = {p_value:.3g}): no evidence that "
                "people recognise the attribute")
    if judged_accuracy > chance:
        return f"attribute recognised above chance (p = {p_value:.3g}): privacy leaks"
    return f"below chance (p = {p_value:.3g}): people systematically misread the attribute"


def outcome(choice: str, label: int) -> str:
    """``correct``, ``wrong`` or ``cannot_judge`` for a stored choice and the true class."""
    if choice == CANNOT_JUDGE:
        return CANNOT_JUDGE
    return "correct" if int(choice) == label else "wrong"


def score_answers(manifest: dict[str, Any], answers: list[AnswerRow]) -> list[MethodScore]:
    """One :class:`MethodScore` per method of ``manifest`` (in its order)."""
    items = {item["id"]: item for item in manifest["items"]}
    outcomes: dict[str, list[str]] = {method: [] for method in manifest["methods"]}
    people: dict[str, set[str]] = {method: set() for method in manifest["methods"]}
    for answer in answers:
        item = items[answer.image_id]
        outcomes[item["method"]].append(outcome(answer.choice, item["label"]))
        people[item["method"]].add(answer.code)
    return [score_method(method, outcomes[method], len(people[method]), manifest["chance"])
            for method in manifest["methods"]]


def study_results(study_dir: str | Path) -> list[MethodScore]:
    """Score the study in ``study_dir`` and write the files of the module docstring."""
    study_dir = Path(study_dir)
    manifest = load_study(study_dir)
    database = study_dir / DATABASE_FILE
    if not database.is_file():
        raise ConfigError(f"{study_dir}: no answers yet ({DATABASE_FILE} is missing); "
                          "run `noisyarl study serve` first")
    answers = AnswerStore(database, [item["id"] for item in manifest["items"]]).all_answers()
    scores = score_answers(manifest, answers)
    out = study_dir / RESULTS_DIR
    atomic_write_text(out / "summary.csv", _csv([asdict(score) for score in scores]))
    atomic_write_text(out / "answers.csv", _csv(_answer_rows(manifest, answers)))
    write_json(out / "results.json", {
        "question": manifest["question"]["text"], "chance": manifest["chance"],
        "alpha": ALPHA, "methods": [asdict(score) for score in scores]})
    plot_scores(scores, out / "results.png", title=manifest["question"]["text"])
    return scores


def _answer_rows(manifest: dict[str, Any], answers: list[AnswerRow]) -> list[dict[str, Any]]:
    """One row per answer; participant codes replaced by P01, P02, ... in starting order."""
    items = {item["id"]: item for item in manifest["items"]}
    first_seen: dict[str, float] = {}
    for answer in answers:
        first_seen[answer.code] = min(first_seen.get(answer.code, math.inf), answer.answered_at)
    aliases = {code: f"P{rank:02d}" for rank, code in
               enumerate(sorted(first_seen, key=first_seen.__getitem__), start=1)}
    names = manifest.get("class_names") or []
    rows = []
    for answer in sorted(answers, key=lambda a: (aliases[a.code], a.position)):
        item = items[answer.image_id]
        rows.append({
            "participant": aliases[answer.code], "position": answer.position + 1,
            "image_id": answer.image_id, "method": item["method"], "image": item["row"],
            "true_class": names[item["label"]] if item["label"] < len(names) else item["label"],
            "choice": answer.choice, "outcome": outcome(answer.choice, item["label"]),
            "answered_at": answer.answered_at,
        })
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot_scores(scores: list[MethodScore], path: str | Path, title: str = "") -> Path:
    """Horizontal stacked bars (Correct / Wrong / Cannot judge, % of answers) per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = (("Correct", "correct_share", "#3a7d44"), ("Wrong", "wrong_share", "#c8553d"),
             ("Cannot judge", "cannot_judge_share", "#9e9e9e"))
    figure, axes = plt.subplots(figsize=(7, 1.2 + 0.6 * len(scores)), dpi=100)
    rows = range(len(scores))
    left = [0.0] * len(scores)
    for name, key, colour in parts:
        widths = [100 * getattr(score, key) if score.answers else 0.0 for score in scores]
        axes.barh(rows, widths, left=left, color=colour, label=name)
        for row, (start, width) in enumerate(zip(left, widths, strict=True)):
            if width >= 6:
                axes.text(start + width / 2, row, f"{width:.0f}%", ha="center", va="center",
                          color="white", fontsize=9)
        left = [start + width for start, width in zip(left, widths, strict=True)]
    axes.set_yticks(list(rows), [f"{s.method} (n={s.answers})" for s in scores])
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of answers")
    axes.set_title(title, fontsize=10)
    axes.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.35 - 0.1 / len(scores)),
                frameon=False, fontsize=9)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    from noisyarl.utils.io import atomic_write_bytes

    return atomic_write_bytes(path, buffer.getvalue())


def format_scores(scores: list[MethodScore]) -> str:
    """A plain-text table of the scores (what ``noisyarl study results`` prints)."""
    header = (f"{'method':<28} {'answers':>7} {'correct':>8} {'wrong':>7} {'cannot':>7} "
              f"{'adj.acc':>7} {'p':>8}  reading")
    lines = [header]
    for s in scores:
        lines.append(
            f"{s.method:<28} {s.answers:>7} {100 * s.correct_share:>7.1f}% "
            f"{100 * s.wrong_share:>6.1f}% {100 * s.cannot_judge_share:>6.1f}% "
            f"{100 * s.guess_adjusted_accuracy:>6.1f}% {s.p_value:>8.3g}  {s.reading}")
    return "\n".join(lines)
