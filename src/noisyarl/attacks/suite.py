"""The worst-case privacy evaluation (``attacks.suite: worst_case``).

A defence is only as strong as the strongest attack it survives. Beside the paper's protocol
(one fresh proxy-shaped attacker, best test epoch) this runs:

1. **Attacker suite** (:mod:`noisyarl.attacks.attackers`): every attacker's test accuracy at its
   best *validation* epoch (honest model selection) and at its best test epoch (the paper's
   figure, labelled as such); the worst case is the maximum over attackers, and
   ``Δ_worst = utility − worst case`` sits beside the paper-protocol Δ.
2. **Multi-query averaging** (:mod:`noisyarl.attacks.multi_query`): the proxy attacker and the
   reconstruction decoder on the mean of k queries, k in ``queries``; then the same table for
   keyed noise (:mod:`noisyarl.models.keyed_noise`, any defence whose noise module,
   :meth:`~noisyarl.methods.Defence.noise_module`, adds noise: σ > 0), whose attacker adds
   fresh N(0, σ²) of its own to its training batches (σ is public), its utility and
   client-time cost, and the "key leaked" row (attacker on the noise-free features).
3. **Identity leakage** (:mod:`noisyarl.attacks.identity`) where the data has identities.

:func:`run_worst_case` returns a :class:`WorstCaseResult` (JSON round trip with ``to_dict`` /
``from_dict``); :func:`worst_case_markdown` renders it. Every learned attacker stops on a
validation plateau (:mod:`noisyarl.attacks.base`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from noisyarl.attacks.attackers import run_attacker
from noisyarl.attacks.base import AttackSettings
from noisyarl.attacks.identity import IDENTITY_LABEL, IdentityResult, run_identity_attack
from noisyarl.attacks.leakage import LeakageResult, run_leakage_attack, test_outcomes
from noisyarl.attacks.multi_query import QueryRow, run_multi_query
from noisyarl.attacks.reconstruction import ReconstructionResult
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.data.base import SPLITS, ImageSplit
from noisyarl.data.tasks import Task
from noisyarl.evaluation.report import format_table
from noisyarl.methods.base import Defence
from noisyarl.models.keyed_noise import KeyedObfuscator, image_seed
from noisyarl.models.noise import GaussianNoise, NoiseFree

DEFAULT_ATTACKERS = ("proxy", "resnet18", "linear", "mlp", "knn")
DEFAULT_QUERIES = (1, 4, 16, 64)


@dataclass
class SuiteSettings:
    """What the worst-case suite runs and how each attack trains.

    leakage / reconstruction / identity: the settings of the attribute attackers, of the
    reconstruction decoder (None: no reconstruction in the multi-query table) and of the
    re-identification head.
    """

    leakage: AttackSettings
    reconstruction: AttackSettings | None
    identity: AttackSettings | None
    attackers: tuple[str, ...] = DEFAULT_ATTACKERS
    queries: tuple[int, ...] = DEFAULT_QUERIES
    keyed_noise: bool = True


def evaluation_key(seed: int) -> bytes:
    """The keyed-noise key of an evaluation run, derived from the seed so results reproduce.

    A deployed client uses :func:`noisyarl.models.keyed_noise.new_key` (random, kept secret).
    """
    return hashlib.sha256(f"noisyarl-evaluation-key-{seed}".encode()).digest()


@dataclass
class WorstCase:
    """The strongest attacker by validation-selected test score (``privacy``, the headline)
    and by best test epoch (the paper's optimistic selection); Δ = utility − privacy for
    accuracy tasks, None for regression or a client that sends raw images."""

    privacy: float
    attacker: str
    learned: bool
    delta: float | None
    privacy_best_test_epoch: float
    attacker_best_test_epoch: str
    delta_best_test_epoch: float | None
    paper_privacy: float | None
    paper_delta: float | None
    utility: float


def summarise_worst_case(attackers: dict[str, LeakageResult], private: Task,
                         test_utility: float, paper: LeakageResult | None,
                         obfuscates: bool = True) -> WorstCase:
    """The worst case over ``attackers`` (see :class:`WorstCase`)."""
    pick = max if private.higher_is_better else min
    name = pick(attackers, key=lambda n: attackers[n].test)
    name_test = pick(attackers, key=lambda n: attackers[n].paper)
    with_delta = private.higher_is_better and obfuscates

    def delta(value: float | None) -> float | None:
        return test_utility - value if with_delta and value is not None else None

    paper_privacy = paper.paper if paper is not None else None
    return WorstCase(
        privacy=attackers[name].test, attacker=name, learned=attackers[name].chance.learned,
        delta=delta(attackers[name].test),
        privacy_best_test_epoch=attackers[name_test].paper, attacker_best_test_epoch=name_test,
        delta_best_test_epoch=delta(attackers[name_test].paper),
        paper_privacy=paper_privacy, paper_delta=delta(paper_privacy), utility=test_utility)


@dataclass
class KeyedNoise:
    """The keyed-noise defence of the same client (:mod:`noisyarl.models.keyed_noise`).

    rows: the multi-query table with keyed noise; utility_fresh / utility_keyed: the trained
    utility head on fresh vs keyed z (test split, mean over draws for fresh noise);
    key_leaked: the leakage attacker on the noise-free features (the attacker holds the key);
    share_with_new_noise: share of images whose noise changes with a one-pixel change.
    """

    rows: list[QueryRow]
    utility_fresh: float
    utility_keyed: float
    client_ms_per_image_fresh: float
    client_ms_per_image_keyed: float
    key_leaked: float
    key_leaked_paper: float
    share_with_new_noise: float

    def to_dict(self) -> dict[str, Any]:
        values = dict(vars(self))
        values["rows"] = [row.to_dict() for row in self.rows]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> KeyedNoise:
        return cls(**{**values, "rows": [QueryRow.from_dict(row) for row in values["rows"]]})


@dataclass
class WorstCaseResult:
    """Everything the worst-case suite measured; round-trips to JSON (:meth:`to_dict`)."""

    attackers: dict[str, LeakageResult]
    worst_case: WorstCase
    fresh: list[QueryRow]
    keyed: KeyedNoise | None
    keyed_skipped: str | None
    identity: IdentityResult | None
    identity_skipped: str | None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "attackers": {name: result.to_dict() for name, result in self.attackers.items()},
            "worst_case": vars(self.worst_case).copy(),
            "fresh": [row.to_dict() for row in self.fresh],
            "keyed": self.keyed.to_dict() if self.keyed else None,
            "keyed_skipped": self.keyed_skipped,
            "identity": self.identity.to_dict() if self.identity else None,
            "identity_skipped": self.identity_skipped, "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> WorstCaseResult:
        return cls(
            attackers={name: LeakageResult.from_dict(result)
                       for name, result in values["attackers"].items()},
            worst_case=WorstCase(**values["worst_case"]),
            fresh=[QueryRow.from_dict(row) for row in values["fresh"]],
            keyed=KeyedNoise.from_dict(values["keyed"]) if values["keyed"] else None,
            keyed_skipped=values["keyed_skipped"],
            identity=IdentityResult.from_dict(values["identity"]) if values["identity"] else None,
            identity_skipped=values["identity_skipped"], seconds=values["seconds"])

    def cells(self) -> dict[str, Any]:
        """The flat ``metrics.json`` keys (:data:`WORST_CASE_COLUMNS`)."""
        worst = self.worst_case
        cells = {
            "privacy_worst_case": worst.privacy, "worst_case_attacker": worst.attacker,
            "delta_worst_case": worst.delta,
            "privacy_worst_case_best_test_epoch": worst.privacy_best_test_epoch,
            "privacy_max_queries": max(self.fresh, key=lambda row: row.queries).privacy,
            "identity_top1": None, "identity_auc": None,
        }
        if self.identity is not None:
            identity = self.identity.cells()
            cells.update(identity_top1=identity["identity_top1"],
                         identity_auc=identity["identity_auc"])
        return cells


def run_worst_case(
    defence: Defence,
    target: AttackTarget,
    utility: Task,
    settings: SuiteSettings,
    *,
    test_utility: float,
    paper_leakage: LeakageResult | None = None,
    paper_reconstruction: ReconstructionResult | None = None,
) -> WorstCaseResult:
    """The whole worst-case evaluation of a trained defence (see the module docstring).

    target: the defence's client as the attacker sees it, with the private task and proxy.
    paper_leakage / paper_reconstruction: the run's paper-protocol results, reused for the
    ``proxy`` attacker and the fresh-noise k = 1 row (the same attacks, the same settings).
    """
    started = time.perf_counter()
    attackers = {name: paper_leakage if name == "proxy" and paper_leakage is not None
                 else run_attacker(name, target, settings.leakage)
                 for name in settings.attackers}
    worst = summarise_worst_case(attackers, target.task, test_utility, paper_leakage,
                                 defence.obfuscates)
    reconstruction = settings.reconstruction if defence.obfuscates else None

    def make_attacker() -> nn.Module:
        return defence.make_attacker(target.task.num_outputs)

    first = None
    if paper_leakage is not None and (reconstruction is None or paper_reconstruction):
        first = QueryRow.measured(1, paper_leakage,
                                  paper_reconstruction if reconstruction else None)
    fresh = run_multi_query(target, make_attacker, queries=list(settings.queries),
                            leakage=settings.leakage, reconstruction=reconstruction,
                            first_row=first)
    noise = defence.noise_module()
    keyed, keyed_skipped = None, None
    if settings.keyed_noise and noise is not None and noise.active:
        keyed = _keyed_noise(defence, noise, target, utility, settings, make_attacker)
    else:
        keyed_skipped = "keyed noise applies to a client with Gaussian noise (σ > 0)"
    identity, identity_skipped = _identity(target, settings)
    return WorstCaseResult(attackers, worst, fresh, keyed, keyed_skipped, identity,
                           identity_skipped, time.perf_counter() - started)


def _keyed_noise(defence: Defence, noise: GaussianNoise, target: AttackTarget, utility: Task,
                 settings: SuiteSettings, make_attacker) -> KeyedNoise:
    """The keyed-noise table; its attacker adds fresh N(0, σ²) of its own to its training
    batches (σ is public), so it cannot memorise one fixed draw per image."""
    leakage = settings.leakage
    keyed_client = KeyedObfuscator(defence.client, evaluation_key(leakage.seed), noise)
    keyed_view = ZView(keyed_client, target.context, features=keyed_client,
                       train_noise_std=noise.sigma)
    keyed_target = target.with_view(keyed_view)
    reconstruction = settings.reconstruction if defence.obfuscates else None
    rows = run_multi_query(keyed_target, make_attacker, queries=list(settings.queries),
                           leakage=leakage, reconstruction=reconstruction)
    test = target.splits["test"]
    head = defence.utility_head
    fresh = test_outcomes(target.view, head, test, utility, leakage).draws
    keyed = test_outcomes(keyed_view, head, test, utility, leakage).draws
    leaked_view = ZView(NoiseFree(defence.client, noise), target.context,
                        features=NoiseFree(defence.client, noise))
    torch.manual_seed(leakage.seed)
    leaked = run_leakage_attack(leaked_view, make_attacker(), target.splits, target.task,
                                leakage, name="key leaked")
    images = test.images[:leakage.eval_batch_size].float().div(255.0).to(target.context.device)
    return KeyedNoise(
        rows=rows, utility_fresh=sum(fresh) / len(fresh), utility_keyed=keyed[0],
        client_ms_per_image_fresh=_ms_per_image(defence.client, images),
        client_ms_per_image_keyed=_ms_per_image(keyed_client, images),
        key_leaked=leaked.test, key_leaked_paper=leaked.paper,
        share_with_new_noise=near_duplicate_check(keyed_client, test)["share_with_new_noise"])


@torch.no_grad()
def _ms_per_image(client: nn.Module, images: torch.Tensor, repeats: int = 3) -> float:
    client(images)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        client(images)
    return 1000.0 * (time.perf_counter() - started) / (repeats * images.shape[0])


def near_duplicate_check(keyed: KeyedObfuscator, split: ImageSplit,
                         count: int = 16) -> dict[str, Any]:
    """Change one pixel of each of ``count`` images by one level: the share whose keyed noise
    seed changes (1.0 means a near-duplicate frame gets independent noise, see the threat
    model of :mod:`noisyarl.models.keyed_noise`)."""
    images = split.images[:count].clone()
    changed = images.clone()
    changed[:, 0, 0, 0] = torch.where(changed[:, 0, 0, 0] < 255, changed[:, 0, 0, 0] + 1,
                                      changed[:, 0, 0, 0] - 1)
    differ = [image_seed(keyed.key, a.float() / 255) != image_seed(keyed.key, b.float() / 255)
              for a, b in zip(images, changed, strict=True)]
    return {"images": len(differ), "share_with_new_noise": sum(differ) / max(len(differ), 1)}


def _identity(target: AttackTarget, settings: SuiteSettings
              ) -> tuple[IdentityResult | None, str | None]:
    if settings.identity is None:
        return None, "attacks.worst_case.identity is off"
    if any(IDENTITY_LABEL not in target.splits[name].labels for name in SPLITS):
        return None, "the dataset has no identity labels"
    return run_identity_attack(target, settings.identity), None


# --- report ---------------------------------------------------------------------------------

ATTACKER_COLUMNS = [
    ("attacker", "attacker", "{}"),
    ("privacy", "privacy ↓ (valid-selected)", "{:.2f}"),
    ("privacy_sd", "± SD over draws", "{:.2f}"),
    ("privacy_chance", "chance", "{:.2f}"),
    ("privacy_advantage", "advantage (pp)", "{:.2f}"),
    ("privacy_paper", "privacy (paper: best test epoch)", "{:.2f}"),
    ("epochs", "epochs until stop", "{}"),
    ("status", "status", "{}"),
]
QUERY_COLUMNS = [
    ("queries", "k queries", "{}"),
    ("fresh_privacy", "privacy ↓ fresh noise", "{:.2f}"),
    ("fresh_psnr", "PSNR fresh", "{:.2f}"),
    ("fresh_ssim", "SSIM fresh", "{:.3f}"),
    ("keyed_privacy", "privacy ↓ keyed noise", "{:.2f}"),
    ("keyed_psnr", "PSNR keyed", "{:.2f}"),
    ("keyed_ssim", "SSIM keyed", "{:.3f}"),
    ("chance", "chance", "{:.2f}"),
    ("psnr_baseline", "PSNR mean image", "{:.2f}"),
]
IDENTITY_COLUMNS = [
    ("attack", "re-identification", "{}"),
    ("top1", "top-1 rate", "{:.3f}"),
    ("top1_chance", "chance", "{:.3f}"),
    ("auc", "pair ROC AUC", "{:.3f}"),
]
#: Written where an attacker or a decoder did not beat its chance level or baseline.
DID_NOT_LEARN = "did not learn"


def attacker_rows(result: WorstCaseResult) -> list[dict[str, Any]]:
    """Rows of the attacker table: each attacker's cells and its status."""
    return [{"attacker": name, **attacker.cells(),
             "status": "" if attacker.chance.learned else DID_NOT_LEARN}
            for name, attacker in result.attackers.items()]


def query_table_rows(result: WorstCaseResult) -> list[dict[str, Any]]:
    """Rows of the k-query table: fresh and keyed figures side by side."""
    keyed = {row.queries: row for row in (result.keyed.rows if result.keyed else [])}
    rows = []
    for fresh in result.fresh:
        row: dict[str, Any] = {"queries": fresh.queries, "chance": fresh.privacy_chance,
                               "psnr_baseline": fresh.psnr_baseline}
        for prefix, source in (("fresh", fresh), ("keyed", keyed.get(fresh.queries))):
            for key in ("privacy", "psnr", "ssim"):
                row[f"{prefix}_{key}"] = getattr(source, key) if source else None
        rows.append(row)
    return rows


def worst_case_markdown(result: WorstCaseResult) -> str:
    """The worst-case section of a run's ``report.md``."""
    worst = result.worst_case
    learned = "" if worst.learned else f" — the strongest attacker {DID_NOT_LEARN}"
    parts = [
        "## Worst-case privacy",
        "Each attacker trained until its validation score stopped improving; privacy = its "
        "test score at the best validation epoch (mean over test noise draws), beside the "
        "test split's majority rate.",
        format_table(attacker_rows(result), ATTACKER_COLUMNS),
        f"Worst case: {_fmt(worst.privacy)} ({worst.attacker}, validation-selected), "
        f"Δ {_fmt(worst.delta)}{learned}; best-test-epoch worst case "
        f"{_fmt(worst.privacy_best_test_epoch)} ({worst.attacker_best_test_epoch}). "
        f"Paper protocol: privacy {_fmt(worst.paper_privacy)}, Δ {_fmt(worst.paper_delta)}.",
        "### Multi-query averaging (attacker trained and scored on the mean of k queries)",
        format_table(query_table_rows(result), QUERY_COLUMNS),
    ]
    if result.keyed is not None:
        keyed = result.keyed
        parts.append(
            f"Keyed noise (its attacker adds fresh N(0, σ²) of its own in training): utility "
            f"{_fmt(keyed.utility_keyed)} vs {_fmt(keyed.utility_fresh)} with fresh noise; "
            f"client {keyed.client_ms_per_image_keyed:.2f} vs "
            f"{keyed.client_ms_per_image_fresh:.2f} ms/image. Key leaked (attacker subtracts "
            f"the noise): privacy {_fmt(keyed.key_leaked)}. A one-pixel change gives new noise "
            f"for {keyed.share_with_new_noise:.0%} of images: averaging near-duplicate frames "
            "is not covered.")
    else:
        parts.append(f"Keyed noise: skipped ({result.keyed_skipped}).")
    if result.identity is None:
        parts.append(f"Identity leakage: skipped ({result.identity_skipped}).")
    else:
        rows = [{"attack": "nearest neighbour", **result.identity.nearest_neighbour},
                {"attack": "metric head (validation-selected)", **result.identity.metric_head}]
        parts += ["### Identity leakage (test split, identity-disjoint from training)",
                  format_table(rows, IDENTITY_COLUMNS)]
    return "\n\n".join(parts) + "\n"


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.2f}"


#: Extra columns of the results tables when the worst-case suite ran.
WORST_CASE_COLUMNS = [
    ("privacy_worst_case", "worst-case privacy ↓", "{:.2f}"),
    ("worst_case_attacker", "strongest attacker", "{}"),
    ("delta_worst_case", "worst-case Δ ↑ (pp)", "{:.2f}"),
    ("privacy_max_queries", "privacy ↓ at max k", "{:.2f}"),
    ("identity_top1", "re-ID top-1", "{:.3f}"),
    ("identity_auc", "re-ID AUC", "{:.3f}"),
]


def worst_case_metrics(result: WorstCaseResult | None) -> dict[str, Any]:
    """The flat ``metrics.json`` keys of a worst-case result (all None without one)."""
    keys = [key for key, _, _ in WORST_CASE_COLUMNS] + ["privacy_worst_case_best_test_epoch"]
    return dict.fromkeys(keys) if result is None else result.cells()


__all__ = [
    "DEFAULT_ATTACKERS",
    "DEFAULT_QUERIES",
    "DID_NOT_LEARN",
    "WORST_CASE_COLUMNS",
    "KeyedNoise",
    "SuiteSettings",
    "WorstCase",
    "WorstCaseResult",
    "attacker_rows",
    "evaluation_key",
    "near_duplicate_check",
    "query_table_rows",
    "run_worst_case",
    "summarise_worst_case",
    "worst_case_markdown",
    "worst_case_metrics",
]
