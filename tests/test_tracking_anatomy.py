"""The spread arithmetic of benchmarks/tracking_anatomy.py on hand-built diffs (no model, no market data)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def anatomy():
    spec = importlib.util.spec_from_file_location("tracking_anatomy", ROOT / "benchmarks" / "tracking_anatomy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _diffs(n_days: int = 20, per_day: int = 30, seed: int = 0, model_noise_bps: float = 0.0):
    """Diffs [bps] of a model (half of TWAP's, plus independent noise), TWAP and a worse static curve."""
    rng = np.random.default_rng(seed)
    n = n_days * per_day
    twap = rng.normal(0.0, 10.0, (n, 4))
    model = 0.5 * twap + rng.normal(0.0, model_noise_bps, (n, 4))
    diffs = {"model": model, "twap": twap, "static_vwap": 1.2 * twap + rng.normal(0.0, 1.0, (n, 4))}
    days = np.repeat(np.arange(n_days).astype("datetime64[D]"), per_day)
    return diffs, days


def test_spread_ratios_against_the_best_classical(anatomy):
    """The model's noise is independent of TWAP's diffs, so its ratio varies across day resamples: a real
    interval (population ratio sqrt(0.5^2 + 0.3^2) = 0.583) around the sample ratio."""
    diffs, days = _diffs(model_noise_bps=3.0)
    table = anatomy.spread_ratios(diffs, days, n_boot=200)
    assert "twap" in table.index.name  # the lower classical spread
    ratio = table["ratio_to_best_classical"]
    expected = np.std(diffs["model"], ddof=1) / np.std(diffs["twap"], ddof=1)
    assert ratio["twap"] == 1.0 and ratio["model"] == pytest.approx(expected) and ratio["static_vwap"] > 1.0
    low, high = table.loc["model", ["ci_low", "ci_high"]]
    assert low < ratio["model"] < high and 0.01 < high - low < 0.15
    assert low < np.hypot(0.5, 0.3) < high
    assert table.loc["twap", "ci_low"] == table.loc["twap", "ci_high"] == 1.0  # the reference against itself
    assert (table["ci_low"] <= table["ratio_to_best_classical"] + 1e-12).all()
    assert (table["ratio_to_best_classical"] <= table["ci_high"] + 1e-12).all()


def test_group_ratios_per_group(anatomy):
    diffs, _ = _diffs()
    groups = np.where(np.arange(len(diffs["model"])) % 2 == 0, "even", "odd")
    table = anatomy.group_ratios(diffs, groups)
    assert set(table.index) == {"even", "odd"} and table["windows"].sum() == len(groups)
    assert np.allclose(table["model_ratio"], 0.5)


def test_tail_table_shares_and_rms(anatomy):
    diffs, _ = _diffs()
    diffs["model"] = diffs["model"].copy()
    diffs["model"][0, 0] = 1e4  # one huge order carries nearly all of the model's variance
    table = anatomy.tail_table(diffs)
    shares = table[[f"variance_share_top_{f:g}" for f in anatomy.TAIL_FRACTIONS]]
    assert ((shares >= 0) & (shares <= 1)).all().all()
    assert table.loc["model", "variance_share_top_0.001"] > 0.99
    assert table.loc["twap", "variance_share_top_0.01"] >= table.loc["twap", "variance_share_top_0.001"]
    # on the orders where TWAP errs most, TWAP's RMS is at least its RMS on the rest
    assert table.loc["twap", "rms_on_classical_top_1pct"] > table.loc["twap", "rms_on_the_rest"]


def test_with_fixed_column_broadcasts_every_column(anatomy):
    fixed = np.random.default_rng(1).dirichlet(np.ones(5), size=(3, 4, 2)).transpose(0, 3, 1, 2)  # (3, 5, 4, 2)
    full = anatomy.with_fixed_column(fixed)
    assert full.shape == (3, 5, 6, 4, 2)
    assert np.array_equal(full[:, :, -1], fixed) and np.array_equal(full[:, :, 0], fixed)


def test_average_shape_and_tilt(anatomy):
    rng = np.random.default_rng(2)
    static = rng.dirichlet(np.ones(6), size=(50, 4, 2)).transpose(0, 3, 1, 2)  # (50, 6, 4, 2)
    factor = np.linspace(0.5, 1.5, 6)[None, :, None, None]
    model = static * factor / (static * factor).sum(axis=1, keepdims=True)
    profile, log_tilt = anatomy.average_shape(model, static)
    assert profile.shape == log_tilt.shape == (1, 6, 4, 2)
    assert np.allclose(profile.sum(axis=1), 1.0)
    # the tilt recovers the per-step factor up to a constant (each window's normaliser is the same at every step),
    # and reshaping the static curve by it gives the model back
    assert np.allclose(np.diff(log_tilt, axis=1), np.broadcast_to(np.diff(np.log(factor), axis=1), (1, 5, 4, 2)))
    assert np.allclose(anatomy.tilted(static, log_tilt), model)
    assert np.allclose(anatomy.tilted(static, np.zeros_like(log_tilt)), static)
