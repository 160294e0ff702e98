"""Issue 25: ``balanced_lem_loss``, the seed loss with its two families weighed equally and tracking scored on the
squared diff (a validation loss whose best epoch moves with the reported tracking spread), per backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lems.data_formater import add_config_to_y
from lems.execution import seed_outcome
from lems.loss import balanced_lem_loss, lem_loss

pytestmark = pytest.mark.backend

H = 5


def _case(batch: int = 12, seed: int = 0):
    """Compact targets ``(B, H, 2)`` and random allocations ``(B, H, H+1, 4, 2)`` (float32)."""
    rng = np.random.default_rng(seed)
    volume = rng.gamma(2.0, size=(batch, H))
    price = np.exp(np.cumsum(rng.normal(0, 0.004, size=(batch, H)), axis=1))
    y = np.stack([volume / volume.sum(axis=1, keepdims=True), price], axis=-1).astype("float32")
    raw = rng.gamma(1.0, size=(batch, H, H + 1, 4, 2))
    return y, (raw / raw.sum(axis=1, keepdims=True)).astype("float32")


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x), np.float64)


def test_balanced_lem_loss_is_half_the_flexible_softplus_mean_plus_half_the_tracking_mean_square():
    y, a = _case()
    diff = _np(seed_outcome(keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(y), smooth=True).diff) * 100
    flexible = diff[:, :H][:, :, [0, 1]] - diff[:, :H][:, :, [2, 3]]
    expected = (0.5 * np.logaddexp(0.0, flexible).reshape(len(y), -1).mean(axis=1)
                + 0.5 * np.square(diff[:, H]).reshape(len(y), -1).mean(axis=1))
    np.testing.assert_allclose(_np(balanced_lem_loss(y, a)), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(_np(balanced_lem_loss(add_config_to_y(y), a)), expected, rtol=1e-5, atol=1e-7)


def test_balanced_lem_loss_ranks_a_perfect_tracker_first_and_is_registered():
    y, a = _case(seed=1)
    perfect = a.copy()
    perfect[:, :, H] = y[:, :, 0][:, :, None, None]  # fixed column: the realised volume shares (TWAP orders too)
    perfect[:, :, H, [1, 3]] = 1.0 / H
    gap = _np(balanced_lem_loss(y, a)) - _np(balanced_lem_loss(y, perfect))  # same flexible columns: tracking only
    tracked = _np(seed_outcome(keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(y), smooth=True).diff)
    np.testing.assert_allclose(gap, 0.5 * np.square(tracked[:, H] * 100).reshape(len(y), -1).mean(axis=1),
                               rtol=1e-4, atol=1e-6)  # the perfect tracker's fixed-column diffs are zero
    assert float(np.mean(_np(lem_loss(y, perfect)))) < float(np.mean(_np(lem_loss(y, a))))
    assert keras.saving.get_registered_object("lems>balanced_lem_loss") is balanced_lem_loss
