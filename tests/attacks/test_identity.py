"""Identity leakage: re-identification metrics and attacks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from noisyarl.attacks.base import AttackSettings
from noisyarl.attacks.identity import identity_metrics, run_identity_attack
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.evaluation.metrics import roc_auc, top1_identification_rate
from noisyarl.runtime import StepContext
from noisyarl.synthetic.faces import SynthConfig


def test_roc_auc_on_a_hand_made_example():
    # positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) -> 3/4
    assert roc_auc([0.9, 0.5, 0.4, 0.1], [True, False, True, False]) == 0.75
    assert roc_auc([1.0, 1.0], [True, False]) == 0.5  # a tie counts one half
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc([0.1, 0.2], [True, True])


@given(st.lists(st.tuples(st.floats(-100, 100), st.booleans()), min_size=2, max_size=40)
       .filter(lambda pairs: len({flag for _, flag in pairs}) == 2))
def test_roc_auc_equals_the_pairwise_definition(pairs):
    scores = [score for score, _ in pairs]
    labels = [flag for _, flag in pairs]
    positives = [s for s, flag in pairs if flag]
    negatives = [s for s, flag in pairs if not flag]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    assert roc_auc(scores, labels) == pytest.approx(wins / (len(positives) * len(negatives)))
    assert roc_auc(scores, labels) + roc_auc([-s for s in scores], labels) == pytest.approx(1.0)


def test_top1_identification_on_a_hand_made_example():
    identities = torch.tensor([1, 1, 2, 2, 3])
    similarity = torch.tensor([
        [9.0, 0.8, 0.9, 0.0, 0.0],   # nearest other: sample 2 (identity 2) -> miss
        [0.8, 9.0, 0.1, 0.0, 0.0],   # nearest other: sample 0 -> hit
        [0.9, 0.1, 9.0, 0.7, 0.0],   # nearest other: sample 0 -> miss
        [0.0, 0.0, 0.7, 9.0, 0.0],   # nearest other: sample 2 -> hit
        [0.0, 0.0, 0.0, 0.0, 9.0],   # identity 3 has one sample: not a probe
    ])
    assert top1_identification_rate(similarity, identities) == 0.5


def test_identity_metrics_are_perfect_for_separated_identities_and_chance_for_noise():
    generator = torch.Generator().manual_seed(0)
    identities = torch.arange(30).repeat_interleave(4)
    prototypes = torch.randn(30, 16, generator=generator)
    close = prototypes[identities] + 0.05 * torch.randn(120, 16, generator=generator)
    figures = identity_metrics(close, identities)
    assert figures["top1"] == 1.0 and figures["auc"] > 0.999
    assert figures["top1_chance"] == pytest.approx(3 / 119)
    noise = identity_metrics(torch.randn(120, 16, generator=generator), identities)
    assert noise["top1"] < 0.15 and 0.4 < noise["auc"] < 0.6


@pytest.fixture(scope="module")
def clean_faces(generated_datasets):
    """Generated faces without pose, lighting or background variation (identity traits stay;
    expression, glasses and facial hair still change per image)."""
    from noisyarl.data.registry import load_splits

    root = generated_datasets.faces(
        "celeba", SynthConfig(num_images=1200, image_size=48, seed=5, nuisance=0.0))
    return load_splits("celeba", root, 48)


def test_raw_faces_are_re_identified_far_above_chance(clean_faces):
    """Undefended features (the raw image, what the upper bound sends): the trained metric head
    separates same-person pairs almost perfectly and names the person far above chance."""
    torch.manual_seed(0)
    view = ZView(nn.Identity(), StepContext(torch.device("cpu")), features=nn.Identity())
    target = AttackTarget(view=view, splits=clean_faces, task=None, image_size=48)
    result = run_identity_attack(target, AttackSettings(max_epochs=10))
    head, nearest = result.metric_head, result.nearest_neighbour
    assert result.curve.best_epoch == head["epoch"]
    assert head["auc"] > 0.9
    assert head["top1"] > 10 * head["top1_chance"]
    assert nearest["top1"] > 5 * nearest["top1_chance"]
