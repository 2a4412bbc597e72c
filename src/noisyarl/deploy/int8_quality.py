"""Does the int8 client leak more, or serve less, than the fp32 client it replaces?

Both ONNX files of a run are scored the same way a run scores its torch client
(:func:`noisyarl.runners.experiment.attack`), with the client replaced by the file:

* **utility**: the run's trained utility head on z of the test split, averaged over the
  run's test noise draws (``attacks.noise_draws``);
* **privacy**: a fresh copy of the defence's proxy attacker trained on z of the train split
  until its validation score stops improving (the leakage attack's settings and budget); the
  test score at its best validation epoch.

Each file's noise-free features h come from the file itself (its noise draws zeroed,
:func:`~noisyarl.deploy.quantize.without_noise`, run in ONNX Runtime) and the view adds
N(0, σ²) exactly as the shipped graph does. For one seed both clients get the *same* noise
draws and the same attacker initialisation, so the int8 − fp32 difference of a seed is the
quantisation's alone; over seeds it is a paired t-interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from noisyarl.attacks.base import AttackSettings
from noisyarl.attacks.leakage import run_leakage_attack, test_outcomes
from noisyarl.attacks.view import ZView
from noisyarl.builders import attack_settings, load_data, training_steps
from noisyarl.data.base import ImageSplit
from noisyarl.deploy.export import INPUT_NAME
from noisyarl.deploy.quantize import without_noise
from noisyarl.evaluation.statistics import PairedComparison, paired_t, t_interval
from noisyarl.runners.runs import LoadedRun, load_run
from noisyarl.runtime import StepContext
from noisyarl.utils.seeding import PHASE_OFFSETS


class OnnxFeatures(nn.Module):
    """The noise-free features of an ONNX client: images [B, 3, S, S] float32 in [0, 1] ->
    h [B, C, H, W] float32, computed by ONNX Runtime on the CPU (no gradients)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        import onnxruntime

        self.session = onnxruntime.InferenceSession(without_noise(model),
                                                    providers=["CPUExecutionProvider"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {INPUT_NAME: batch})[0])


@dataclass
class ClientScores:
    """One client file's figures, one value per seed (percent, or the task's metric).

    utility: the utility head's test score, mean over the noise draws; privacy: the converged
    attacker's test score at its best validation epoch; attacker_epochs: epochs it trained.
    """

    name: str
    path: str
    utility: list[float] = field(default_factory=list)
    privacy: list[float] = field(default_factory=list)
    attacker_epochs: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "utility": self.utility,
                "privacy": self.privacy, "attacker_epochs": self.attacker_epochs,
                "utility_interval": t_interval(self.utility).to_dict(),
                "privacy_interval": t_interval(self.privacy).to_dict()}


@dataclass
class Int8Quality:
    """The int8 client against the fp32 client of one run, paired by seed.

    utility_chance / privacy_chance: the test split's majority rates (percent); n_test: test
    images; sigma: the clients' noise σ.
    """

    run_dir: str
    seeds: list[int]
    fp32: ClientScores
    int8: ClientScores
    utility_chance: float
    privacy_chance: float
    n_test: int
    sigma: float

    @property
    def utility_difference(self) -> PairedComparison:
        """int8 − fp32 utility, paired t over seeds (needs ≥ 2 seeds for an interval)."""
        return paired_t(self.int8.utility, self.fp32.utility)

    @property
    def privacy_difference(self) -> PairedComparison:
        """int8 − fp32 attacker accuracy, paired t over seeds."""
        return paired_t(self.int8.privacy, self.fp32.privacy)

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "seeds": self.seeds, "fp32": self.fp32.to_dict(),
                "int8": self.int8.to_dict(), "utility_chance": self.utility_chance,
                "privacy_chance": self.privacy_chance, "n_test": self.n_test,
                "sigma": self.sigma,
                "utility_difference": self.utility_difference.to_dict(),
                "privacy_difference": self.privacy_difference.to_dict()}

    def markdown(self) -> str:
        """A table (mean ± 95 % t-interval over seeds, beside the majority rate) and the
        paired differences in words."""
        def cell(values: list[float]) -> str:
            interval = t_interval(values)
            if len(values) < 2:
                return f"{interval.mean:.2f}"
            return f"{interval.mean:.2f} ± {interval.high - interval.mean:.2f}"

        lines = [f"{len(self.seeds)} seeds (paired noise draws and attacker initialisation), "
                 f"{self.n_test} test images, σ = {self.sigma:g}.", "",
                 "| client | utility (%) | utility majority (%) | privacy: attacker (%) "
                 "| privacy majority (%) |", "|---|---|---|---|---|"]
        for scores in (self.fp32, self.int8):
            lines.append(f"| {scores.name} | {cell(scores.utility)} | {self.utility_chance:.2f} "
                         f"| {cell(scores.privacy)} | {self.privacy_chance:.2f} |")
        lines += ["", "- " + self.utility_difference.words("int8", "fp32", "Utility"),
                  "- " + self.privacy_difference.words("int8", "fp32", "Attacker accuracy")]
        return "\n".join(lines) + "\n"


def int8_quality(run_dir: str | Path, fp32_path: str | Path, int8_path: str | Path, *,
                 seeds: Sequence[int] = (0, 1, 2, 3, 4),
                 splits: dict[str, ImageSplit] | None = None,
                 settings: AttackSettings | None = None) -> Int8Quality:
    """Score both ONNX clients of ``run_dir`` (see the module docstring) for every seed.

    splits: the run's splits when already loaded (default: read from its dataset); settings:
    the attacker's settings (default: the run's ``attacks.leakage`` ones with the defence's
    budget); each seed replaces their ``seed``.
    """
    run = load_run(run_dir)
    splits = splits if splits is not None else load_data(run.config, progress=False)
    context = StepContext(torch.device("cpu"))
    sigma = _sigma(run)
    clients = {}
    for name, path in (("fp32", fp32_path), ("int8", int8_path)):
        features = OnnxFeatures(onnx.load(str(path)))
        view = ZView(features, context, features=features, noise_std=sigma)
        clients[name] = (ClientScores(name, str(path)), view)
    base = settings or attack_settings(
        run.config, run.config.attacks.leakage, progress=False,
        defence_steps=training_steps(run.config, len(splits["train"])))
    for seed in seeds:
        for scores, view in clients.values():
            _score_seed(run, view, splits, replace(base, seed=int(seed)), scores)
    test = splits["test"]
    return Int8Quality(
        run_dir=str(run_dir), seeds=[int(s) for s in seeds], fp32=clients["fp32"][0],
        int8=clients["int8"][0],
        utility_chance=run.utility.chance_level(test.labels[run.utility.label]),
        privacy_chance=run.private.chance_level(test.labels[run.private.label]),
        n_test=len(test), sigma=sigma)


def _score_seed(run: LoadedRun, view: ZView, splits: dict[str, ImageSplit],
                settings: AttackSettings, scores: ClientScores) -> None:
    """Append one seed's utility and converged-attacker privacy to ``scores``."""
    torch.manual_seed(settings.seed + PHASE_OFFSETS["utility_test"])
    utility = test_outcomes(view, run.defence.utility_head, splits["test"], run.utility,
                            settings)
    torch.manual_seed(settings.seed)  # the attacker's initial weights
    attacker = run.defence.make_attacker(run.private.num_outputs)
    leakage = run_leakage_attack(view, attacker, splits, run.private, settings,
                                 name=f"{scores.name} attacker")
    scores.utility.append(float(utility.mean))
    scores.privacy.append(float(leakage.test))
    scores.attacker_epochs.append(leakage.curve.epochs_run)


def _sigma(run: LoadedRun) -> float:
    """The σ the run's client adds (0 without an active noise module)."""
    noise = run.defence.noise_module()
    return noise.sigma if noise is not None and noise.active else 0.0


__all__ = ["ClientScores", "Int8Quality", "OnnxFeatures", "int8_quality"]
