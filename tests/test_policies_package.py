"""lems.policies, lems.data.estimates and the lems.live package: the deprecated paths, the blend without the
backtest, the static tilt, and the stage order of the new modules."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lems.live as live
from lems.backtest import backtest
from lems.data.online import OnlineWindow
from lems.data.estimates import static_volume_curve
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.execution import check_allocations
from lems.live import _plan
from lems.policies import (
    CLASSICAL_SCHEDULES,
    TUNED_SCHEDULES,
    TWAP,
    AlmgrenChriss,
    DynamicVWAP,
    FlexibleRule,
    PrecomputedPolicy,
    StaticTilt,
    StaticVWAP,
    classical_schedules,
    validation_parts,
    fit_blend_weights,
    simplex_min_second_moment,
    window_keys,
)

ROOT = Path(__file__).resolve().parents[1]

#: What lems.baselines and lems.blend exported before the split (their __all__), and the private names of theirs
#: that other code read.
OLD_BASELINES = {"BASELINES", "TWAP", "AlmgrenChriss", "FlexibleRule", "ModelPolicy", "Policy", "ScheduleTable",
                 "StaticVWAP", "almgren_chriss_cost", "almgren_chriss_frontier", "almgren_chriss_holdings",
                 "almgren_chriss_kappa", "almgren_chriss_trades", "arrival_prices", "expected_bar_volume",
                 "lookback_half_spread", "lookback_volatility", "static_volume_curve", "window_keys",
                 "_rates", "_check_windows", "_favourable", "_rule_steps", "_type_weights", "_bars_of",
                 "_lookback_rows", "_per_asset", "_ac_check"}
OLD_BLEND = {"BlendedPolicy", "fit_blend_weights", "fit_blended_policy", "simplex_min_second_moment"}


@lru_cache(maxsize=None)
def _windows():
    return make_windows(synthetic_market(n_assets=2, n_days=25, seed=7), 8, 6, stride=3)


@pytest.mark.parametrize(("module", "names", "new_home"), [
    ("lems.baselines", OLD_BASELINES, "lems.policies / lems.data.estimates"),
    ("lems.blend", OLD_BLEND, "lems.policies"),
])
def test_deprecated_modules_warn_and_export_the_same_names(module, names, new_home):
    sys.modules.pop(module, None)
    with pytest.warns(DeprecationWarning, match=new_home.replace(".", r"\.")):
        old = importlib.import_module(module)
    assert set(old.__all__) == {n for n in names if not n.startswith("_")}
    missing = [n for n in names if not hasattr(old, n)]
    assert not missing
    policies = importlib.import_module("lems.policies")
    for name in old.__all__:  # the same objects, not copies
        home = policies if hasattr(policies, name) else importlib.import_module("lems.data.estimates")
        assert getattr(old, name) is getattr(home, name)


def _old_blend_weights(policies, windows, min_rate, max_rate):
    """The weights as lems.blend computed them before the split: from the backtest's frame."""
    names = list(policies)
    frame = backtest(dict(policies), windows, min_rate=min_rate, max_rate=max_rate)
    weights = {}
    for benchmark in ("vwap", "twap"):
        rows = frame[(frame["objective"] == "track") & (frame["benchmark"] == benchmark)]
        wide = rows.pivot_table(index=["window", "side", "target"], columns="policy", values="diff", observed=True)
        diffs = wide[names].to_numpy(dtype=np.float64)
        weights[benchmark] = simplex_min_second_moment(diffs.T @ diffs / len(diffs))
    return weights


@pytest.mark.parametrize("rates", [(0.0, 1.0), (0.05, 0.4)])
def test_blend_weights_equal_the_backtest_based_fit(rates):
    win = _windows()
    policies = {"static": StaticVWAP(), "twap": TWAP(), "ac": AlmgrenChriss(risk_aversion=1e3, eta=1e-3),
                "rule": FlexibleRule(threshold=0.5)}
    new = fit_blend_weights(policies, win, min_rate=rates[0], max_rate=rates[1])
    old = _old_blend_weights(policies, win, *rates)
    for benchmark in ("vwap", "twap"):
        got = np.array([new[benchmark][k] for k in policies])
        np.testing.assert_allclose(got, old[benchmark], atol=1e-9)
    assert sum(v > 1e-6 for v in new["vwap"].values()) >= 2  # a real blend, not one policy


def test_static_tilt_fit_is_the_mean_log_share_ratio():
    win = _windows()
    tilt = StaticTilt.fit(win)
    horizon = int(win.n_ahead)
    floor = StaticTilt.SHARE_FLOOR / horizon
    realised = win.volumes / win.volumes.sum(axis=1, keepdims=True)
    static = static_volume_curve(win)
    static = static / static.sum(axis=1, keepdims=True)
    expected = np.mean(np.log(np.maximum(realised, floor)) - np.log(np.maximum(static, floor)), axis=0)
    np.testing.assert_allclose(tilt.log_tilt, expected - expected.max(), atol=1e-12)
    assert not np.allclose(tilt.log_tilt, 0.0)  # the synthetic static curve is biased somewhere


def test_static_tilt_reads_only_the_windows_it_is_given():
    win = _windows()
    fit_rows = np.arange(len(win) // 2)
    base = StaticTilt.fit(win.subset(fit_rows))
    later = {}
    for asset, bars in win.bars.items():  # every bar after the fitting windows' horizons changes
        rows = fit_rows[np.asarray(win.asset)[fit_rows] == asset]
        last = int(np.max(win.origin_index[rows])) + int(win.n_ahead) if len(rows) else -1
        changed = bars.copy()
        changed.loc[changed.index > last, "volume"] *= 7.0
        later[asset] = changed
    moved = dataclasses.replace(win, bars=later).subset(fit_rows)
    np.testing.assert_array_equal(StaticTilt.fit(moved).log_tilt, base.log_tilt)


def test_static_tilt_allocations_are_feasible_and_reduce_to_the_static_curve():
    win = _windows()
    tilt = StaticTilt.fit(win)
    allocations = tilt.allocate(win, 0.05, 0.4)
    check_allocations(allocations, 0.05, 0.4)
    flat = StaticTilt(np.zeros(int(win.n_ahead)))
    np.testing.assert_allclose(flat.allocate(win, 0.0, 1.0), StaticVWAP().allocate(win, 0.0, 1.0), atol=1e-15)
    twap_types = allocations[:, :, -1, [1, 3]]
    np.testing.assert_allclose(twap_types, TWAP().allocate(win, 0.05, 0.4)[:, :, -1, [1, 3]], atol=1e-15)
    assert not np.allclose(allocations, StaticVWAP().allocate(win, 0.05, 0.4))


def test_static_tilt_rejects_bad_input():
    win = _windows()
    with pytest.raises(ValueError, match="horizon"):
        StaticTilt(np.zeros(3)).allocate(win)
    with pytest.raises(ValueError, match="finite"):
        StaticTilt([0.0, np.nan])
    with pytest.raises(ValueError, match="at least one window"):
        StaticTilt.fit(win.subset(np.arange(0)))
    silent = dataclasses.replace(win, volumes=np.zeros_like(win.volumes))
    with pytest.raises(ValueError, match="traded volume"):
        StaticTilt.fit(silent)


def test_classical_schedules_fit_the_tuned_ones_on_validation_windows_only():
    win = _windows()
    val, test = win.subset(np.arange(len(win) // 2)), win.subset(np.arange(len(win) // 2, len(win)))
    schedules = classical_schedules(val, n_days=5)
    fit, choice = validation_parts(val)
    assert 0 < len(fit) < len(val) and len(choice) > 0
    assert fit.horizon_end.max() < choice.origin.min()  # the fit never reads a bar of the choice windows' horizons
    assert tuple(schedules) == (*CLASSICAL_SCHEDULES, *TUNED_SCHEDULES) == ("twap", "static_vwap", "static_tilt",
                                                                            "dynamic_vwap")
    assert all(policy.name == name for name, policy in schedules.items())
    assert isinstance(schedules["twap"], TWAP) and schedules["static_vwap"].n_days == 5
    np.testing.assert_array_equal(schedules["static_tilt"].log_tilt, StaticTilt.fit(fit, n_days=5).log_tilt)
    dynamic = DynamicVWAP.fit(fit, n_days=5)
    assert (schedules["dynamic_vwap"].rho, schedules["dynamic_vwap"].level_weight) == (dynamic.rho,
                                                                                       dynamic.level_weight)
    assert schedules["dynamic_vwap"].fit_spreads == dynamic.fit_spreads  # the fit saw the validation windows only
    # ... and of those, the fitting part only: the choice windows' volumes do not move the fit
    louder = val.volumes.copy()
    louder[np.asarray(val.origin >= choice.origin.min())] *= 7.0
    again = classical_schedules(dataclasses.replace(val, volumes=louder), n_days=5)
    assert again["dynamic_vwap"].fit_spreads == dynamic.fit_spreads
    np.testing.assert_array_equal(again["static_tilt"].log_tilt, schedules["static_tilt"].log_tilt)
    for policy in schedules.values():
        check_allocations(policy.allocate(test, 0.05, 0.4), 0.05, 0.4)
    # no validation windows: the pair alone, nothing fitted on other windows
    for nothing in (None, val.subset(np.arange(0))):
        assert list(classical_schedules(nothing)) == ["twap", "static_vwap"]
    # a validation window without traded volume: the tilt is fitted on the others
    silent = val.volumes.copy()
    silent[0] = 0.0
    quiet = dataclasses.replace(val, volumes=silent)
    tilt = classical_schedules(quiet, n_days=5)["static_tilt"]
    quiet_fit = validation_parts(quiet)[0]
    np.testing.assert_array_equal(tilt.log_tilt, StaticTilt.fit(quiet_fit.subset(np.arange(1, len(quiet_fit))),
                                                                n_days=5).log_tilt)


def test_precomputed_policy_serves_any_subset_of_its_windows():
    win = _windows()
    allocations = StaticVWAP().allocate(win)
    stored = PrecomputedPolicy("static", allocations, win)
    rows = np.array([3, 0, 5])
    np.testing.assert_array_equal(stored.allocate(win.subset(rows)), allocations[rows])
    with pytest.raises(ValueError, match="stored allocations"):
        PrecomputedPolicy("static", allocations).allocate(win.subset(rows))


#: What each new module may import from lems (stage order: execution <- data <- ... <- policies <- live).
_ALLOWED = {
    "lems/execution": ("lems.execution",),
    "lems/data/estimates.py": ("lems.execution", "lems.data"),
    "lems/data/online.py": ("lems.execution", "lems.data"),
    "lems/policies": ("lems.execution", "lems.data", "lems.policies"),
    "lems/live": ("lems.execution", "lems.data", "lems.batching", "lems.live"),
}


def _lems_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lems":
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.split(".")[0] == "lems"]
    return names


@pytest.mark.parametrize("where", sorted(_ALLOWED))
def test_new_modules_import_no_higher_stage(where):
    target = ROOT / where
    files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    files = [f for f in files if f.exists()]
    assert files
    for f in files:
        for module in _lems_imports(f):
            assert module.startswith(_ALLOWED[where]), f"{f.relative_to(ROOT)} imports {module}"
            assert module not in ("lems.baselines", "lems.blend", "lems.live"), f"{f} imports deprecated {module}"


def test_window_keys_are_utc():  # shared by ScheduleTable and PrecomputedPolicy
    keys = window_keys(["a"], pd.to_datetime(["2024-01-01 00:00"]))
    assert str(keys.levels[1].tz) == "UTC"


def test_live_keeps_its_names_and_one_model_cache():
    assert live._Window is OnlineWindow
    assert live._LIVE_STEPS is _plan._LIVE_STEPS
    for name in ("ChildOrder", "ExecutionSession", "SessionError", "model_shares", "schedule", "DONE_TOL",
                 "_PolicyPlan", "_policy_share", "_unwrap", "_frame_to_dict", "_frame_from_dict", "_replay"):
        assert hasattr(live, name), name
