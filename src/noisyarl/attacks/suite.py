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
   :meth:`~noisyarl.methods.Defence.noise_module`, adds noise: σ > 0), its utility and
   client-time cost, and the "key leaked" row (attacker on the noise-free features).
3. **Identity leakage** (:mod:`noisyarl.attacks.identity`) where the data has identities.

:func:`run_worst_case` returns a JSON-able dict; :func:`worst_case_markdown` renders it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import torch

from noisyarl.attacks.attackers import AttackJob, run_attacker
from noisyarl.attacks.common import freeze, obfuscated_batches
from noisyarl.attacks.features import z_shape_of
from noisyarl.attacks.identity import IDENTITY_LABEL, run_identity_attack
from noisyarl.attacks.leakage import run_leakage_attack
from noisyarl.attacks.multi_query import run_multi_query
from noisyarl.data.base import SPLITS, ImageSplit
from noisyarl.data.tasks import Task
from noisyarl.evaluation.report import format_table
from noisyarl.methods.base import Defence
from noisyarl.models.keyed_noise import KeyedObfuscator, image_seed
from noisyarl.models.noise import NoiseFree
from noisyarl.runtime import StepContext

DEFAULT_ATTACKERS = ("proxy", "resnet18", "linear", "mlp", "knn")
DEFAULT_QUERIES = (1, 4, 16, 64)


@dataclass
class SuiteSettings:
    """What the worst-case suite runs and how long each attack trains.

    leakage / reconstruction: ``epochs``, ``lr``, ``batch_size`` of the attribute attackers and
    of the reconstruction decoder (those of ``attacks.leakage`` / ``attacks.reconstruction``);
    reconstruction None: no reconstruction in the multi-query table.
    """

    leakage: dict[str, Any]
    reconstruction: dict[str, Any] | None
    attackers: tuple[str, ...] = DEFAULT_ATTACKERS
    queries: tuple[int, ...] = DEFAULT_QUERIES
    keyed_noise: bool = True
    identity: bool = True
    identity_epochs: int = 10
    image_size: int = 64
    eval_batch_size: int = 256
    seed: int = 0
    progress: bool = False


def evaluation_key(seed: int) -> bytes:
    """The keyed-noise key of an evaluation run, derived from the seed so results reproduce.

    A deployed client uses :func:`noisyarl.models.keyed_noise.new_key` (random, kept secret).
    """
    return hashlib.sha256(f"noisyarl-evaluation-key-{seed}".encode()).digest()


def run_worst_case(
    defence: Defence,
    splits: dict[str, ImageSplit],
    utility: Task,
    private: Task,
    context: StepContext,
    settings: SuiteSettings,
    *,
    test_utility: float,
    paper_leakage: dict[str, Any] | None = None,
    paper_reconstruction: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole worst-case evaluation of a trained defence (see the module docstring).

    paper_leakage / paper_reconstruction: the run's paper-protocol results (dicts of
    ``LeakageResult`` / ``ReconstructionResult``), reused for the ``proxy`` attacker and the
    fresh-noise k = 1 row when given (they are the same attacks with the same settings).
    """
    started = time.perf_counter()
    attackers = _attacker_suite(defence, splits, private, context, settings, paper_leakage)
    result: dict[str, Any] = {
        "attackers": attackers,
        "worst_case": summarise_worst_case(attackers, private, test_utility,
                                           paper_leakage, defence.obfuscates),
    }
    result["multi_query"] = _multi_query(defence, splits, utility, private, context, settings,
                                         paper_leakage, paper_reconstruction)
    result["identity"] = _identity(defence, splits, context, settings)
    result["seconds"] = time.perf_counter() - started
    return result


def _job(defence, client, splits, private, context, settings) -> AttackJob:
    leakage = settings.leakage
    return AttackJob(
        defence=defence, client=client, splits=splits, task=private, context=context,
        z_shape=z_shape_of(freeze(client), splits["train"], context),
        epochs=leakage["epochs"], lr=leakage["lr"], batch_size=leakage["batch_size"],
        eval_batch_size=settings.eval_batch_size, seed=settings.seed, progress=settings.progress,
    )


def _attacker_suite(defence, splits, private, context, settings, paper_leakage):
    job = _job(defence, defence.client, splits, private, context, settings)
    results = {}
    for name in settings.attackers:
        if name == "proxy" and paper_leakage is not None:
            results[name] = dict(paper_leakage)
        else:
            results[name] = run_attacker(name, job).to_dict()
    return results


def summarise_worst_case(
    attackers: dict[str, dict[str, Any]],
    private: Task,
    test_utility: float,
    paper_leakage: dict[str, Any] | None,
    obfuscates: bool = True,
) -> dict[str, Any]:
    """The strongest attacker, by validation-selected test score (``privacy``) and by best
    test epoch (``privacy_best_test_epoch``); Δ = utility − privacy for accuracy tasks, None for
    a regression task or a client that sends raw images (as in the paper's tables)."""
    pick = max if private.higher_is_better else min

    def strongest(key: str) -> tuple[str, float]:
        name = pick(attackers, key=lambda n: attackers[n][key])
        return name, float(attackers[name][key])

    name, privacy = strongest("test_at_best_valid")
    name_test, privacy_test = strongest("test_best")
    paper = paper_leakage["test_best"] if paper_leakage else None
    with_delta = private.higher_is_better and obfuscates

    def delta(value):
        return test_utility - value if with_delta and value is not None else None

    return {
        "privacy": privacy, "attacker": name, "delta": delta(privacy),
        "privacy_best_test_epoch": privacy_test, "attacker_best_test_epoch": name_test,
        "delta_best_test_epoch": delta(privacy_test),
        "paper_privacy": paper, "paper_delta": delta(paper),
        "utility": test_utility,
    }


def _multi_query(defence, splits, utility, private, context, settings, paper_leakage,
                 paper_reconstruction) -> dict[str, Any]:
    reconstruction = settings.reconstruction if defence.obfuscates else None
    common = dict(queries=list(settings.queries), image_size=settings.image_size,
                  leakage_settings=settings.leakage, reconstruction_settings=reconstruction,
                  eval_batch_size=settings.eval_batch_size, seed=settings.seed,
                  progress=settings.progress)

    def make_attacker():
        return defence.make_attacker(private.num_outputs)

    noise = defence.noise_module()
    first = None
    if paper_leakage is not None and (reconstruction is None or paper_reconstruction):
        first = {"privacy": paper_leakage["test_best"],
                 "privacy_at_best_valid": paper_leakage["test_at_best_valid"],
                 "psnr": paper_reconstruction["psnr"] if reconstruction else None,
                 "ssim": paper_reconstruction["ssim"] if reconstruction else None}
    result: dict[str, Any] = {
        "fresh": run_multi_query(defence.client, make_attacker, splits, private, context,
                                 first_row=first, noise=noise, **common),
    }
    if not (settings.keyed_noise and noise is not None and noise.active):
        result["keyed"] = None
        result["keyed_skipped"] = "keyed noise applies to a client with Gaussian noise (σ > 0)"
        return result
    keyed = KeyedObfuscator(defence.client, evaluation_key(settings.seed), noise)
    result["keyed"] = run_multi_query(keyed, make_attacker, splits, private, context, **common)
    result["keyed_cost"] = _keyed_cost(defence, keyed, splits["test"], utility, context,
                                       settings.eval_batch_size)
    result["key_leaked"] = _key_leaked(defence, noise, make_attacker, splits, private, context,
                                       settings)
    result["near_duplicate"] = near_duplicate_check(keyed, splits["test"])
    return result


def _keyed_cost(defence, keyed, test, utility, context, batch_size) -> dict[str, Any]:
    """Utility of the trained head on keyed z vs fresh z (test split), and client time."""
    fresh_score = utility_score(defence.client, defence.utility_head, test, utility, context,
                                batch_size)
    keyed_score = utility_score(keyed, defence.utility_head, test, utility, context, batch_size)
    images = test.images[:batch_size].float().div(255.0).to(context.device)
    return {
        "utility_fresh": fresh_score, "utility_keyed": keyed_score,
        "utility_change": keyed_score - fresh_score,
        "client_ms_per_image_fresh": _ms_per_image(defence.client, images),
        "client_ms_per_image_keyed": _ms_per_image(keyed, images),
    }


@torch.no_grad()
def utility_score(client, head, split, task, context, batch_size) -> float:
    """The utility head's test score (accuracy in percent, or MSE) on ``client``'s z."""
    head.eval()
    total = torch.zeros((), device=context.device)
    for _, z, labels in obfuscated_batches(freeze(client), split, batch_size, context):
        with context.autocast():
            outputs = head(z)
        total += task.score_sum(outputs, labels[task.label].to(context.device))
    return task.finalize(float(total), len(split))


@torch.no_grad()
def _ms_per_image(client, images, repeats: int = 3) -> float:
    client(images)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        client(images)
    return 1000.0 * (time.perf_counter() - started) / (repeats * images.shape[0])


def _key_leaked(defence, noise, make_attacker, splits, private, context,
                settings) -> dict[str, Any]:
    """The attacker who holds the key recovers z − σ·ε(key, image) = h: the client with its
    noise module switched off."""
    torch.manual_seed(settings.seed)
    result = run_leakage_attack(
        NoiseFree(defence.client, noise), make_attacker(), splits, private, context,
        eval_batch_size=settings.eval_batch_size, seed=settings.seed,
        progress=settings.progress, **settings.leakage)
    return {"privacy": result.test_best, "privacy_at_best_valid": result.test_at_best_valid}


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


def _identity(defence, splits, context, settings) -> dict[str, Any]:
    if not settings.identity:
        return {"skipped": "attacks.worst_case.identity is off"}
    if any(IDENTITY_LABEL not in splits[name].labels for name in SPLITS):
        return {"skipped": "the dataset has no identity labels"}
    leakage = settings.leakage
    return run_identity_attack(
        defence.client, splits, context, epochs=settings.identity_epochs, lr=leakage["lr"],
        batch_size=leakage["batch_size"], eval_batch_size=settings.eval_batch_size,
        seed=settings.seed, progress=settings.progress)


# --- report ---------------------------------------------------------------------------------

ATTACKER_COLUMNS = [
    ("attacker", "attacker", "{}"),
    ("test_at_best_valid", "privacy ↓ (validation-selected)", "{:.2f}"),
    ("test_best", "privacy ↓ (best test epoch, paper)", "{:.2f}"),
    ("test_last", "last epoch", "{:.2f}"),
]
QUERY_COLUMNS = [
    ("queries", "k queries", "{}"),
    ("fresh_privacy", "privacy ↓ fresh noise", "{:.2f}"),
    ("fresh_psnr", "PSNR fresh", "{:.2f}"),
    ("fresh_ssim", "SSIM fresh", "{:.3f}"),
    ("keyed_privacy", "privacy ↓ keyed noise", "{:.2f}"),
    ("keyed_psnr", "PSNR keyed", "{:.2f}"),
    ("keyed_ssim", "SSIM keyed", "{:.3f}"),
]
IDENTITY_COLUMNS = [
    ("attack", "re-identification", "{}"),
    ("top1", "top-1 rate", "{:.3f}"),
    ("top1_chance", "chance", "{:.3f}"),
    ("auc", "pair ROC AUC", "{:.3f}"),
]


def query_table_rows(multi_query: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the k-query table: fresh and keyed figures side by side."""
    keyed = {row["queries"]: row for row in multi_query.get("keyed") or []}
    rows = []
    for fresh in multi_query["fresh"]:
        row = {"queries": fresh["queries"]}
        for prefix, source in (("fresh", fresh), ("keyed", keyed.get(fresh["queries"]))):
            for key in ("privacy", "psnr", "ssim"):
                row[f"{prefix}_{key}"] = source.get(key) if source else None
        rows.append(row)
    return rows


def worst_case_markdown(result: dict[str, Any]) -> str:
    """The worst-case section of a run's ``report.md``."""
    worst = result["worst_case"]
    attackers = [{"attacker": name, **values} for name, values in result["attackers"].items()]
    parts = [
        "## Worst-case privacy",
        format_table(attackers, ATTACKER_COLUMNS),
        f"Worst case: {_fmt(worst['privacy'])} ({worst['attacker']}, validation-selected), "
        f"Δ {_fmt(worst['delta'])}; best-test-epoch worst case "
        f"{_fmt(worst['privacy_best_test_epoch'])} ({worst['attacker_best_test_epoch']}). "
        f"Paper protocol: privacy {_fmt(worst['paper_privacy'])}, Δ {_fmt(worst['paper_delta'])}.",
        "### Multi-query averaging (attacker trained and scored on the mean of k queries)",
        format_table(query_table_rows(result["multi_query"]), QUERY_COLUMNS),
    ]
    multi = result["multi_query"]
    if multi.get("keyed"):
        cost, leaked = multi["keyed_cost"], multi["key_leaked"]
        parts.append(
            f"Keyed noise: utility {_fmt(cost['utility_keyed'])} vs {_fmt(cost['utility_fresh'])} "
            f"with fresh noise; client {cost['client_ms_per_image_keyed']:.2f} vs "
            f"{cost['client_ms_per_image_fresh']:.2f} ms/image. Key leaked (attacker subtracts "
            f"the noise): privacy {_fmt(leaked['privacy'])}. A one-pixel change gives new noise "
            f"for {multi['near_duplicate']['share_with_new_noise']:.0%} of images: averaging "
            "near-duplicate frames is not covered."
        )
    identity = result["identity"]
    if "skipped" in identity:
        parts.append(f"Identity leakage: skipped ({identity['skipped']}).")
    else:
        rows = [{"attack": "nearest neighbour", **identity["nearest_neighbour"]},
                {"attack": "metric head (validation-selected)", **identity["metric_head"]}]
        parts += ["### Identity leakage (test split, identity-disjoint from training)",
                  format_table(rows, IDENTITY_COLUMNS)]
    return "\n\n".join(parts) + "\n"


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.2f}"


__all__ = [
    "DEFAULT_ATTACKERS",
    "DEFAULT_QUERIES",
    "SuiteSettings",
    "evaluation_key",
    "near_duplicate_check",
    "query_table_rows",
    "run_worst_case",
    "summarise_worst_case",
    "utility_score",
    "worst_case_markdown",
    "worst_case_metrics",
    "WORST_CASE_COLUMNS",
]


#: Extra columns of the results tables when the worst-case suite ran.
WORST_CASE_COLUMNS = [
    ("privacy_worst_case", "worst-case privacy ↓", "{:.2f}"),
    ("worst_case_attacker", "strongest attacker", "{}"),
    ("delta_worst_case", "worst-case Δ ↑ (pp)", "{:.2f}"),
    ("privacy_max_queries", "privacy ↓ at max k", "{:.2f}"),
    ("identity_top1", "re-ID top-1", "{:.3f}"),
    ("identity_auc", "re-ID AUC", "{:.3f}"),
]


def worst_case_metrics(result: dict[str, Any] | None) -> dict[str, Any]:
    """The flat ``metrics.json`` keys of a worst-case result (all None without one).

    privacy_worst_case: strongest attacker, validation-selected; delta_worst_case beside the
    paper-protocol ``delta``; privacy_max_queries: the proxy attacker on the mean of the largest
    k queries (fresh noise); identity_top1 / identity_auc: the stronger of the two
    re-identification attacks (validation-selected metric head, or nearest neighbour).
    """
    keys = [key for key, _, _ in WORST_CASE_COLUMNS] + ["privacy_worst_case_best_test_epoch"]
    flat: dict[str, Any] = dict.fromkeys(keys)
    if result is None:
        return flat
    worst = result["worst_case"]
    flat.update(
        privacy_worst_case=worst["privacy"], worst_case_attacker=worst["attacker"],
        delta_worst_case=worst["delta"],
        privacy_worst_case_best_test_epoch=worst["privacy_best_test_epoch"],
        privacy_max_queries=max(result["multi_query"]["fresh"],
                                key=lambda row: row["queries"])["privacy"],
    )
    identity = result["identity"]
    if "skipped" not in identity:
        attacks = (identity["nearest_neighbour"], identity["metric_head"])
        flat["identity_top1"] = max(attack["top1"] for attack in attacks)
        flat["identity_auc"] = max(attack["auc"] for attack in attacks)
    return flat
