"""The Almgren & Chriss (2000) optimal execution schedule ("Optimal execution of portfolio transactions",
J. Risk 3): closed-form urgency, holdings, trade list, cost and risk, the efficient frontier, and the policy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lems.data.estimates import lookback_volatility
from lems.data.windows import WindowSet
from lems.execution import schedule_from_weights
from lems.policies.base import _N_TARGETS, _N_TYPES, _columns, _rates, _to_seed_layout

__all__ = [
    "AlmgrenChriss",
    "almgren_chriss_cost",
    "almgren_chriss_frontier",
    "almgren_chriss_holdings",
    "almgren_chriss_kappa",
    "almgren_chriss_trades",
]


def _ac_check(risk_aversion: Any, sigma: Any, eta: float, gamma: float, tau: float) -> tuple[np.ndarray, ...]:
    """Validated Almgren-Chriss parameters as float64 arrays; ``eta_tilde = eta - gamma tau / 2``."""
    lam = np.asarray(risk_aversion, dtype=np.float64)
    sig = np.asarray(sigma, dtype=np.float64)
    for name, value, allowed in (("risk_aversion", lam, "[0, inf)"), ("sigma", sig, "[0, inf) (fraction per bar)")):
        if not np.all(np.isfinite(value)) or np.any(value < 0):
            raise ValueError(f"{name} must be in {allowed}, got {value.min() if value.size else value!r}")
    for name, value, allowed in (("eta", eta, "(0, inf)"), ("tau", tau, "(0, inf) (bars)")):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be in {allowed}, got {value!r}")
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"gamma must be in [0, inf), got {gamma!r}")
    eta_tilde = eta - 0.5 * gamma * tau
    if eta_tilde <= 0:
        raise ValueError(f"eta must exceed gamma * tau / 2 ({0.5 * gamma * tau:g}) for a convex cost, got {eta!r}")
    return lam, sig, np.float64(eta_tilde)


def almgren_chriss_kappa(risk_aversion: Any, sigma: Any, eta: float, gamma: float = 0.0,
                         tau: float = 1.0) -> np.ndarray:
    """Urgency ``kappa`` of the discrete Almgren-Chriss solution (Almgren & Chriss 2000, eq. for ``kappa``).

    ``2 (cosh(kappa tau) - 1) / tau^2 = kappa_tilde^2 = lambda sigma^2 / eta_tilde`` with ``eta_tilde = eta -
    gamma tau / 2``; solved as ``kappa = 2 / tau * asinh(kappa_tilde tau / 2)`` (the same equation, accurate
    for small ``kappa``).

    Args:
        risk_aversion: ``lambda`` >= 0 [per unit of the order's value]: the objective is ``E + lambda Var`` of the
            shortfall as a fraction of the order's value at the arrival price.
        sigma: volatility of the relative price per bar (fraction), >= 0.
        eta: linear temporary impact [fraction of price per (fraction of the order per bar)], > 0.
        gamma: linear permanent impact [fraction of price per fraction of the order], >= 0.
        tau: bar length in bars (1).

    Returns:
        ``kappa`` [1 / bar], broadcast over ``risk_aversion`` and ``sigma``.

    Raises:
        ValueError: a parameter outside its range, or ``eta <= gamma tau / 2``.
    """
    lam, sig, eta_tilde = _ac_check(risk_aversion, sigma, eta, gamma, tau)
    kappa_tilde = np.sqrt(lam * sig**2 / eta_tilde)
    return 2.0 / tau * np.arcsinh(kappa_tilde * tau / 2.0)


def almgren_chriss_holdings(horizon: int, risk_aversion: Any, sigma: Any, eta: float, gamma: float = 0.0,
                            tau: float = 1.0) -> np.ndarray:
    """Optimal remaining holdings ``x_j = sinh(kappa (T - t_j)) / sinh(kappa T)``, ``j = 0 .. H`` (``X = 1``).

    Almgren & Chriss (2000), the discrete-time optimal trajectory for ``E + lambda Var``; ``t_j = j tau``,
    ``T = H tau``. ``kappa = 0`` (no risk aversion or no volatility) gives the straight line ``1 - j / H`` (TWAP).
    Evaluated as ``exp(-kappa t_j) (1 - exp(-2 kappa (T - t_j))) / (1 - exp(-2 kappa T))`` (no overflow).

    Args:
        horizon: ``H`` >= 1 (bars).
        risk_aversion, sigma, eta, gamma, tau: see :func:`almgren_chriss_kappa`.

    Returns:
        ``(..., H + 1)`` float64 holdings (fractions of the order), ``x_0 = 1``, ``x_H = 0``, non-increasing.
    """
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer number of bars >= 1, got {horizon!r}")
    kappa = almgren_chriss_kappa(risk_aversion, sigma, eta, gamma, tau)[..., None]
    t = np.arange(int(horizon) + 1, dtype=np.float64) * tau
    total = int(horizon) * tau
    positive = kappa > 0
    k = np.where(positive, kappa, 1.0)
    curved = np.exp(-k * t) * -np.expm1(-2.0 * k * (total - t)) / -np.expm1(-2.0 * k * total)
    return np.where(positive, curved, 1.0 - t / total)


def almgren_chriss_trades(horizon: int, risk_aversion: Any, sigma: Any, eta: float, gamma: float = 0.0,
                          tau: float = 1.0) -> np.ndarray:
    """Optimal trade list ``n_j = x_{j-1} - x_j``, ``j = 1 .. H`` (fractions of the order, summing to 1).

    Returns:
        ``(..., H)`` float64, >= 0 (front-loaded for ``kappa > 0``).
    """
    x = almgren_chriss_holdings(horizon, risk_aversion, sigma, eta, gamma, tau)
    return np.maximum(-np.diff(x, axis=-1), 0.0)


def almgren_chriss_cost(trades: Any, sigma: Any, eta: float, gamma: float = 0.0, epsilon: float = 0.0,
                        tau: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Expected cost and variance of a trade list under the Almgren & Chriss (2000) model (``X = 1``).

    ``E = gamma / 2 + epsilon sum |n_k| + eta_tilde / tau sum n_k^2`` and ``V = sigma^2 tau sum_{k=1}^{H} x_k^2``
    with ``x_k = 1 - sum_{j<=k} n_j`` the holdings after bar ``k``: fractions of the order's value (times 1e4 for
    bps).

    Args:
        trades: ``(..., H)`` fractions of the order per bar (summing to 1).
        sigma, eta, gamma, tau: see :func:`almgren_chriss_kappa`. epsilon: fixed cost per unit traded
            (half-spread, fraction of price), >= 0.

    Returns:
        ``(expected, variance)``, each reduced over the last axis.
    """
    _, sig, eta_tilde = _ac_check(0.0, sigma, eta, gamma, tau)
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be in [0, inf), got {epsilon!r}")
    n = np.asarray(trades, dtype=np.float64)
    x = 1.0 - np.cumsum(n, axis=-1)
    expected = 0.5 * gamma + epsilon * np.abs(n).sum(axis=-1) + eta_tilde / tau * (n**2).sum(axis=-1)
    variance = sig**2 * tau * (x**2).sum(axis=-1)
    return expected, variance


def almgren_chriss_frontier(horizon: int, risk_aversions: Any, sigma: float, eta: float, gamma: float = 0.0,
                            epsilon: float = 0.0, tau: float = 1.0):
    """The efficient frontier of Almgren & Chriss (2000): expected cost against risk, one row per ``lambda``.

    Args:
        horizon: ``H`` (bars).
        risk_aversions: the ``lambda`` grid (>= 0).
        sigma, eta, gamma, epsilon, tau: see :func:`almgren_chriss_cost`.

    Returns:
        A ``pandas.DataFrame`` with columns ``risk_aversion``, ``kappa`` [1/bar], ``expected_cost_bps`` and
        ``std_bps`` (standard deviation of the shortfall), in the order of ``risk_aversions``; the cost rises and
        the risk falls along increasing ``lambda``.
    """
    lam = np.atleast_1d(np.asarray(risk_aversions, dtype=np.float64))
    trades = almgren_chriss_trades(horizon, lam, sigma, eta, gamma, tau)
    expected, variance = almgren_chriss_cost(trades, sigma, eta, gamma, epsilon, tau)
    return pd.DataFrame({"risk_aversion": lam, "kappa": almgren_chriss_kappa(lam, sigma, eta, gamma, tau),
                         "expected_cost_bps": expected * 1e4, "std_bps": np.sqrt(variance) * 1e4})


class AlmgrenChriss:
    """The Almgren & Chriss (2000) optimal schedule for a risk aversion ``lambda`` (closed form).

    Trades ``n_j = x_{j-1} - x_j`` with ``x_j = sinh(kappa (H - j)) / sinh(kappa H)``
    (:func:`almgren_chriss_trades`), ``sigma`` per window from its lookback
    (:func:`~lems.data.estimates.lookback_volatility`, causal) unless given. The schedule is fixed at the origin and
    the same for every order type, column and target; the limits are applied exactly by
    :func:`lems.execution.schedule_from_weights` (unchanged when they do not bind).
    ``lambda = 0`` is TWAP.

    Args:
        risk_aversion: ``lambda`` >= 0, per unit of the order's value (see :func:`almgren_chriss_kappa`).
        eta: linear temporary impact [fraction of price per (fraction of the order per bar)], > 0. For a linear
            participation cost ``c = k sigma pi`` (:class:`lems.execution.SquareRootImpact` with ``delta = 1``)
            and an order of ``rho`` of the horizon volume: ``eta = k sigma rho H``.
        gamma: linear permanent impact [fraction of price per fraction of the order], >= 0.
        sigma: a fixed per-bar volatility (fraction) for every window; ``None``: each window's lookback.
        name: label of the policy.
    """

    def __init__(self, risk_aversion: float = 0.0, eta: float = 1e-3, gamma: float = 0.0,
                 sigma: float | None = None, name: str = "almgren_chriss") -> None:
        _ac_check(risk_aversion, 0.0 if sigma is None else sigma, eta, gamma, 1.0)
        if np.ndim(risk_aversion) or (sigma is not None and np.ndim(sigma)):
            raise ValueError("risk_aversion and sigma must be scalars")
        self.risk_aversion, self.eta, self.gamma = float(risk_aversion), float(eta), float(gamma)
        self.sigma = None if sigma is None else float(sigma)
        self.name = str(name)

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """Almgren-Chriss allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`~lems.policies.Policy`)."""
        lo, hi = _rates(windows, min_rate, max_rate)
        n, horizon = len(windows), int(windows.n_ahead)
        if n == 0:
            return np.zeros((0, horizon, horizon + 1, _N_TYPES, _N_TARGETS))
        sigma = lookback_volatility(windows) if self.sigma is None else np.full(n, self.sigma)
        trades = almgren_chriss_trades(horizon, self.risk_aversion, sigma, self.eta, self.gamma)  # (N, H)
        per_window = schedule_from_weights(trades, lo[:, 0], hi[:, 0], axis=1)
        per_type = np.repeat(per_window[:, :, None], _N_TYPES, axis=2)
        return _to_seed_layout(_columns(per_type, horizon))

    def __repr__(self) -> str:
        return (f"AlmgrenChriss(risk_aversion={self.risk_aversion}, eta={self.eta}, gamma={self.gamma}, "
                f"sigma={self.sigma}, name={self.name!r})")
