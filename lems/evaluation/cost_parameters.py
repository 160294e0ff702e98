"""Cost-model parameters a costed evaluation needs per window or per order size: the half-spread a cost model
charges, and the Almgren & Chriss (2000) linear-impact parameters matched to it (used by the costed backtest's
Almgren-Chriss baseline and by the frontier of :mod:`lems.evaluation.tca`)."""

from __future__ import annotations

import numpy as np

from lems.data.estimates import lookback_half_spread
from lems.execution import (
    CompositeCost,
    FeeCost,
    LinearPermanentImpact,
    SpreadCost,
    SquareRootImpact,
    TransientImpact,
)

__all__ = ["ALMGREN_CHRISS", "almgren_chriss_parameters", "window_half_spread"]

#: Label of the Almgren-Chriss baseline that :func:`lems.evaluation.backtest.costed_backtest` adds per size.
ALMGREN_CHRISS = "almgren_chriss"


def _cost_parts(cost_model) -> list:
    """The components of a cost model (a :class:`~lems.execution.CompositeCost` flattened)."""
    return list(cost_model.models) if isinstance(cost_model, CompositeCost) else [cost_model]


def window_half_spread(cost_model, windows) -> np.ndarray:
    """Half-spread per window [fraction of price] that ``cost_model`` charges: the stated ``half_spread_bps``
    of its :class:`~lems.execution.SpreadCost`, the lookback's Corwin-Schultz estimate when it is estimated,
    0 without spread cost (summed over spread components)."""
    out = np.zeros(len(windows))
    for part in _cost_parts(cost_model):
        if isinstance(part, SpreadCost):
            out = out + (part.half_spread_bps * 1e-4 if part.half_spread_bps is not None
                         else lookback_half_spread(windows))
    return out


def almgren_chriss_parameters(cost_model, size: float, sigma: float, horizon: int, half_spread: float = 0.0,
                              risk_sigma: float | None = None) -> dict[str, float] | None:
    """Almgren & Chriss (2000) linear-impact parameters matched to a cost model for one order size.

    A uniform schedule of an order of ``size`` of the expected horizon volume trades ``1/H`` of the order per bar
    at participation ``size`` (bars of average volume): :class:`~lems.execution.SquareRootImpact` then costs
    ``coef sigma size^delta`` per unit, which the linear temporary impact ``eta n`` (``n = 1/H``) matches with
    ``eta = coef sigma size^delta H``; :class:`~lems.execution.TransientImpact` is matched the same way on the
    mean cost of the uniform schedule (:meth:`~lems.execution.TransientImpact.uniform_cost`), ``eta = cost H``;
    :class:`~lems.execution.LinearPermanentImpact` moves later prices by
    ``coef sigma size H`` per fraction of the order (``gamma``); a :class:`~lems.execution.SpreadCost` and a
    :class:`~lems.execution.FeeCost` are the fixed cost per unit ``epsilon``.

    Args:
        cost_model: the :class:`lems.execution.CostModel`.
        size: the order's size [fraction of the expected horizon volume], > 0.
        sigma: volatility per bar [fraction], >= 0, that the impact scales with (costs are linear in it: the mean
            lookback volatility of the windows for their mean cost).
        horizon: ``H`` [bars].
        half_spread: the half-spread [fraction of price] of an estimated :class:`~lems.execution.SpreadCost`.
        risk_sigma: volatility per bar of the price risk (variances add: the root mean square of the windows'
            volatilities for their pooled variance); ``None``: ``sigma``.

    Returns:
        ``{"eta", "gamma", "epsilon", "sigma"}`` (``sigma`` = the risk's), or ``None`` when the model has no
        temporary impact, or not one larger than half the permanent one (the Almgren-Chriss problem is then not
        convex).
    """
    eta = gamma = epsilon = 0.0
    for part in _cost_parts(cost_model):
        if isinstance(part, SquareRootImpact):
            eta += part.coef * sigma * size ** part.delta * horizon
        elif isinstance(part, TransientImpact):  # its mean cost of the uniform schedule, as a temporary impact
            eta += part.uniform_cost(size, sigma, horizon) * horizon
        elif isinstance(part, LinearPermanentImpact):
            gamma += part.coef * sigma * size * horizon
        elif isinstance(part, SpreadCost):
            epsilon += half_spread if part.half_spread_bps is None else part.half_spread_bps * 1e-4
        elif isinstance(part, FeeCost):  # a fixed cost per unit, like the half-spread
            epsilon += part.fee_bps * 1e-4
    if not eta > 0.5 * gamma or not np.isfinite(eta):
        return None
    risk = sigma if risk_sigma is None else risk_sigma
    return {"eta": float(eta), "gamma": float(gamma), "epsilon": float(epsilon), "sigma": float(risk)}
