"""Transaction-cost analysis of costed backtest frames (:func:`lems.evaluation.backtest.costed_backtest`): slippage
and implementation shortfall by order size, every headline number frictionless beside net of costs, and the
Almgren-Chriss efficient frontier matched to the cost model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lems.policies import almgren_chriss_frontier
from lems.evaluation.cost_parameters import ALMGREN_CHRISS, almgren_chriss_parameters, window_half_spread
from lems.evaluation.frames import _prepare, _prepare_costed
from lems.execution import BENCHMARKS

__all__ = ["ALMGREN_CHRISS", "FRONTIER_URGENCIES", "almgren_chriss_parameters", "frontier_table",
           "net_of_cost_table", "tca_table", "window_half_spread"]

#: Urgencies ``kappa * H`` spanned by the efficient frontier figure (0 = TWAP).
FRONTIER_URGENCIES = np.linspace(0.0, 6.0, 61)


def _fixed(frame: pd.DataFrame, benchmark: str = "vwap") -> pd.DataFrame:
    return frame[(frame["objective"] == "track") & (frame["benchmark"] == benchmark)]


def _by_size(frame: pd.DataFrame, column: str, how: str = "mean", sign: float = 1.0) -> pd.Series:
    return sign * frame.groupby(["order_size", "policy"], observed=True, sort=True)[column].agg(how)


def tca_table(costed: pd.DataFrame) -> pd.DataFrame:
    """Slippage of the fixed-duration orders by order size and policy [bps, positive = a cost to the trader].

    Implementation shortfall vs the arrival price with its Perold parts (``is_bps = delay + timing + impact +
    fee + opportunity``; :class:`lems.execution.Shortfall`; ``fee_bps``: exchange fees), its standard deviation over orders (``is_std_bps``) and
    that of the schedule's part ``is - delay`` (``schedule_std_bps``: without the move from the arrival price to
    the first bar, which no schedule controls; the risk of the Almgren-Chriss frontier), of the VWAP-type orders
    (both sides and targets: the market's moves cancel in the means, the costs remain); slippage vs VWAP
    (``-improvement``, the VWAP-type orders) and vs TWAP (the TWAP-type orders); mean unfilled fraction and mean
    peak bar participation [%].

    Returns:
        Columns ``order_size, policy, is_bps, delay_bps, timing_bps, impact_bps, fee_bps, opportunity_bps, is_std_bps,
        schedule_std_bps, vs_vwap_bps, vs_twap_bps, unfilled_pct, peak_participation_pct, orders``.
    """
    costed = _prepare_costed(costed)
    vwap, twap = _fixed(costed, "vwap"), _fixed(costed, "twap")
    out = pd.DataFrame({"is_bps": _by_size(vwap, "shortfall_bps")})
    for part in ("delay", "timing", "impact", "fee", "opportunity"):
        out[f"{part}_bps"] = _by_size(vwap, f"{part}_bps")
    out["is_std_bps"] = _by_size(vwap, "shortfall_bps", "std")
    out["schedule_std_bps"] = _by_size(vwap.assign(schedule_bps=vwap["shortfall_bps"] - vwap["delay_bps"]),
                                       "schedule_bps", "std")
    out["vs_vwap_bps"] = _by_size(vwap, "improvement_bps", sign=-1.0)
    out["vs_twap_bps"] = _by_size(twap, "improvement_bps", sign=-1.0)
    out["unfilled_pct"] = _by_size(vwap, "unfilled", sign=100.0)
    out["peak_participation_pct"] = _by_size(vwap, "peak_bar_participation", sign=100.0)
    out["orders"] = vwap.groupby(["order_size", "policy"], observed=True, sort=True).size()
    out = out.reset_index()
    out["policy"] = out["policy"].astype(str)
    return out


def _headline_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Per policy: fixed VWAP tracking error and flexible mean improvement vs VWAP and vs TWAP [bps]."""
    flex = frame[frame["objective"] == "beat"]
    out = pd.DataFrame({"te": _fixed(frame).groupby("policy", observed=True)["tracking_error_bps"].mean()})
    for bench in BENCHMARKS:
        out[f"flex_{bench}"] = flex[flex["benchmark"] == bench].groupby("policy", observed=True)[
            "improvement_bps"].mean()
    out.index = out.index.astype(str)
    return out


def net_of_cost_table(frame: pd.DataFrame, costed: pd.DataFrame) -> pd.DataFrame:
    """Every headline number frictionless next to its net-of-cost counterpart, by order size and policy [bps].

    Fixed duration: VWAP tracking error (lower is better); flexible duration: mean improvement vs VWAP and vs
    TWAP (all min durations, both sides and targets; higher is better). The frictionless numbers do not depend on
    the size (NaN for a policy absent from the frictionless frame, e.g. Almgren-Chriss).

    Returns:
        Columns ``order_size, policy, te_free_bps, te_net_bps, flex_vwap_free_bps, flex_vwap_net_bps,
        flex_twap_free_bps, flex_twap_net_bps``.
    """
    free = _headline_numbers(_prepare(frame))
    costed = _prepare_costed(costed)
    rows = []
    for size, part in costed.groupby("order_size", sort=True):
        net = _headline_numbers(part)
        for policy in net.index:
            row = {"order_size": float(size), "policy": policy}
            for key in ("te", "flex_vwap", "flex_twap"):
                row[f"{key}_free_bps"] = free[key].get(policy, np.nan)
                row[f"{key}_net_bps"] = net.loc[policy, key]
            rows.append(row)
    return pd.DataFrame(rows)


def _frontier_lambdas(params: dict[str, float], horizon: int) -> np.ndarray:
    """Risk aversions giving the urgencies :data:`FRONTIER_URGENCIES` (``kappa H``) for these parameters."""
    kappa = FRONTIER_URGENCIES / horizon
    eta_tilde = params["eta"] - 0.5 * params["gamma"]
    return (2.0 * np.sinh(kappa / 2.0)) ** 2 * eta_tilde / max(params["sigma"], 1e-12) ** 2


def frontier_table(costed: pd.DataFrame, cost_model, ac_risk_aversion: float | None = None) -> pd.DataFrame:
    """The Almgren-Chriss efficient frontier per order size (:func:`lems.baselines.almgren_chriss_frontier`), with
    the parameters matched to the cost model (:func:`almgren_chriss_parameters`) at the costed windows' mean
    lookback volatility and half-spread, and their root-mean-square volatility for the risk; the stated
    ``ac_risk_aversion`` is added to the grid.

    Returns:
        Columns ``order_size, risk_aversion, kappa, expected_cost_bps, std_bps, stated`` (True on the stated
        ``lambda``); no rows for sizes without a matched Almgren-Chriss problem.
    """
    costed = _prepare_costed(costed)
    horizon = int(_fixed(costed)["min_duration"].max())
    rows = []
    for size, part in costed.groupby("order_size", sort=True):
        windows = part.drop_duplicates("window")
        sigma = windows["sigma"].to_numpy(np.float64)
        params = almgren_chriss_parameters(cost_model, float(size), float(sigma.mean()), horizon,
                                           float(windows["half_spread"].mean()),
                                           risk_sigma=float(np.sqrt(np.mean(sigma**2))))
        if params is None:
            continue
        lambdas = _frontier_lambdas(params, horizon)
        stated = np.zeros(len(lambdas), dtype=bool)
        if ac_risk_aversion is not None:
            lambdas, stated = np.append(lambdas, ac_risk_aversion), np.append(stated, True)
        table = almgren_chriss_frontier(horizon, lambdas, params["sigma"], params["eta"], params["gamma"],
                                        params["epsilon"])
        rows.append(table.assign(order_size=float(size), stated=stated))
    if not rows:
        return pd.DataFrame(columns=["order_size", "risk_aversion", "kappa", "expected_cost_bps", "std_bps",
                                     "stated"])
    out = pd.concat(rows, ignore_index=True)
    return out[["order_size", "risk_aversion", "kappa", "expected_cost_bps", "std_bps", "stated"]]
