"""benchmarks/headroom.py's core on a tiny synthetic market (no real data): the ladder's ends, the static curve as
its own reference."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import headroom
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.policies import classical_schedules


@pytest.fixture(scope="module")
def numbers():
    bars = synthetic_market(n_assets=2, n_days=50, bar_minutes=60, seed=3)
    windows = make_windows(bars, 24, 6, stride=2, start="2021-01-28")
    _, val, test = windows.split("2021-01-28", "2021-02-10")
    return headroom.headroom(classical_schedules(val), test, chunk=97)  # chunks of odd size: the concatenation


def test_ladder_ends_and_static_reference(numbers):
    rungs, summary = numbers["ladder"], numbers["summary"]
    horizon = rungs.index.max()
    assert horizon == 6 and list(rungs.index) == list(range(7))
    assert rungs.loc[horizon, "spread_bps"] < 1e-9 and rungs.loc[horizon, "spread_vs_static"] < 1e-12
    assert rungs.loc[0, "spread_bps"] == pytest.approx(summary.loc["static_vwap", "spread_bps"], rel=1e-12)
    assert rungs.loc[0, "spread_vs_static"] == 1.0 and summary.loc["static_vwap", "spread_vs_static"] == 1.0
    assert numbers["static_curve_gap"] < 1e-12  # StaticVWAP trades the curve the ladder starts from
    assert np.allclose(numbers["r2_vs_static"]["static_vwap"], 0.0, atol=1e-12)
    assert numbers["r2_vs_static"].shape == (horizon - 1, 4)  # steps 0 .. H-2, four classical schedules
    assert np.allclose(numbers["variance_fraction"].sum(axis=0), 1.0)
    assert set(summary.index) == {"twap", "static_vwap", "static_tilt", "dynamic_vwap"}
