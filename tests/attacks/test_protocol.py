"""The attack protocol with the project's default settings finds what is there to find.

On generated faces the private label (Male) is learnable from undefended features; an attacker
that did not beat the majority rate there, or a decoder that did not beat the mean training
image on noise-free features, would make every privacy figure of the toolkit meaningless.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from noisyarl.attacks import ATTACKS, AttackSettings, AttackTarget, ZView
from noisyarl.attacks.leakage import LeakageResult
from noisyarl.attacks.reconstruction import ReconstructionResult
from noisyarl.builders import untrained_defence
from noisyarl.data.registry import load_splits
from noisyarl.data.tasks import Task
from noisyarl.runtime import StepContext
from noisyarl.synthetic.faces import SynthConfig

pytestmark = pytest.mark.slow  # two attacks trained to their plateau, under a minute each

CPU = StepContext(torch.device("cpu"))
DEFAULTS = AttackSettings()  # the project's defaults, not tuned for this test
# Only the epoch ceiling is lowered, to keep CI short: less training can only make the
# assertions harder to meet.


@pytest.fixture(scope="module")
def undefended(generated_datasets):
    """An untrained RN18_2 client without noise on 700 generated faces (40 px: 560 train,
    70 valid, 70 test; the ImageNet stem keeps z at 128 x 5 x 5, so the attacks stay cheap)."""
    root = generated_datasets.faces("celeba", SynthConfig(num_images=700, image_size=40, seed=5))
    splits = load_splits("celeba", root, 40)
    torch.manual_seed(0)
    defence = untrained_defence("noisy_arl", 40, split=2, sigma=0.0)
    private = Task("Male", splits["train"].label_info["Male"])
    view = ZView.of(defence.client, defence.noise_module(), CPU, splits["test"])
    return AttackTarget(view=view, splits=splits, task=private, image_size=40,
                        proxy=defence.make_attacker)


def test_the_leakage_attacker_beats_the_majority_rate_on_undefended_features(undefended):
    result = ATTACKS["leakage"]().run(undefended, replace(DEFAULTS, max_epochs=10))
    assert isinstance(result, LeakageResult)
    assert result.chance.learned
    assert result.chance.advantage > 15.0, (result.test, result.chance.chance)
    assert result.curve.best_epoch <= result.curve.epochs_run <= 10


def test_the_decoder_beats_the_mean_image_on_noise_free_features(undefended):
    result = ATTACKS["reconstruction"]().run(undefended, replace(DEFAULTS, max_epochs=6))
    assert isinstance(result, ReconstructionResult)
    assert result.learned
    assert result.psnr > result.baseline.psnr + 1.0, (result.psnr, result.baseline)
    assert result.ssim > result.baseline.ssim
