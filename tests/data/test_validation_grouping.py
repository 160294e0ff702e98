"""validate_bars groups rows by symbol (code point order, stable) exactly as validating each symbol alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lems.data.synthetic import synthetic_market
from lems.data.validation import validate_bars

NAMES = ["b", "a", "é", "Z"]


@pytest.mark.parametrize("symbol_dtype", ["str", object])
def test_interleaved_symbols_come_back_grouped_and_sorted(symbol_dtype):
    bars = synthetic_market(n_assets=4, n_days=3, bar_minutes=60, seed=4)
    rename = dict(zip(sorted(bars["symbol"].unique()), NAMES))
    bars = bars.assign(symbol=bars["symbol"].map(rename).astype(symbol_dtype))
    interleaved = bars.sort_values("timestamp", kind="stable").set_index(np.arange(len(bars))[::-1])
    out = validate_bars(interleaved)
    assert list(pd.unique(out["symbol"])) == sorted(NAMES)  # "Z" < "a" < "b" < "é"
    alone = pd.concat([validate_bars(bars[bars["symbol"] == s].reset_index(drop=True)) for s in sorted(NAMES)],
                      ignore_index=True)
    pd.testing.assert_frame_equal(out, alone, check_exact=True)


def test_order_errors_name_the_input_row():
    bars = synthetic_market(n_assets=2, n_days=2, bar_minutes=60, seed=4).sort_values("timestamp", kind="stable")
    bars = bars.reset_index(drop=True)
    second = bars.index[bars["symbol"] == bars["symbol"].iloc[0]][1]
    with pytest.raises(ValueError, match=f"duplicated .* at row {second + 1}$"):
        validate_bars(pd.concat([bars.iloc[: second + 1], bars.iloc[[second]], bars.iloc[second + 1:]],
                                ignore_index=True))
