"""Task correlation read from a dataset's label files (appendix B)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats.contingency import association, crosstab

from noisyarl.data.registry import load_labels
from noisyarl.evaluation.correlation import label_association


def test_cramers_v_of_two_columns_matches_scipy(tiny_celeba_root):
    result = label_association("celeba", tiny_celeba_root, "Mouth_Slightly_Open", "Smiling")
    labels, _ = load_labels("celeba", tiny_celeba_root, "train")
    a, b = labels["Mouth_Slightly_Open"].numpy(), labels["Smiling"].numpy()
    expected = association(crosstab(a, b).count, method="cramer")
    assert result.cramers_v == pytest.approx(expected, abs=1e-12)
    assert result.samples == a.shape[0] and int(result.table.sum()) == a.shape[0]
    assert np.array_equal(result.table, crosstab(a, b).count)


def test_generator_association_is_visible_through_the_loader(small_celeba_root):
    # The generator draws Mouth_Slightly_Open with V ~ 0.53 to Smiling and Male with V ~ 0.14
    # (appendix B); on 1,280 training faces the two must stay clearly ordered.
    mouth = label_association("celeba", small_celeba_root, "Mouth_Slightly_Open", "Smiling")
    gender = label_association("celeba", small_celeba_root, "Male", "Smiling")
    assert 0.4 < mouth.cramers_v < 0.65 and gender.cramers_v < 0.3


def test_unknown_or_regression_columns_are_refused(tiny_celeba_root):
    with pytest.raises(ValueError, match="unknown label 'Smile'"):
        label_association("celeba", tiny_celeba_root, "Smile", "Male")
    with pytest.raises(ValueError, match="regression label"):
        label_association("celeba", tiny_celeba_root, "landmarks", "Male")
