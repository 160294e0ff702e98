"""Forecast combination of tracking schedules: a convex blend of policies' fixed-duration schedules, its weights
fitted on validation windows (Bates & Granger 1969: combining forecasts whose errors are not perfectly
correlated lowers the error's variance).

A fixed-duration order's VWAP tracking error is linear in its schedule (docs/execution.md §4: quantity targets exactly,
notional targets to first order), so the blend ``sum_k w_k a_k`` of schedules ``a_k`` has the error
``sum_k w_k d_k``: its mean square is ``w' M w`` with ``M`` the second-moment matrix of the policies' errors on the
same orders. :func:`fit_blend_weights` minimises it over the simplex (``w >= 0``, ``sum w = 1``), so the blend of
feasible schedules is feasible (the trading limits of docs/execution.md §2 define a convex set) and never tracks worse,
on the windows it was fitted on, than the best policy it blends. Fit on validation windows, report on test ones.

The flexible-duration columns are NOT blended (their outcome is not linear in the schedule: the benchmark window
ends with the order): they come from one policy (``flexible_from``).

Policy stage: the fit scores the schedules with :func:`lems.execution.fixed_duration_diffs` directly (never the
backtest, a higher stage).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from lems.data.windows import WindowSet
from lems.execution import BENCHMARKS, IS_VWAP_ORDER, ORDER_TYPES, fixed_duration_diffs
from lems.policies.base import _check_windows

__all__ = ["BlendedPolicy", "fit_blend_weights", "fit_blended_policy", "simplex_min_second_moment"]


def simplex_min_second_moment(moments: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """``argmin_w w' M w`` over the simplex, exactly (enumerating supports: for the few policies a blend holds).

    Args:
        moments: ``(K, K)`` symmetric positive semi-definite second-moment matrix of the K policies' errors.
        tol: weights above ``-tol`` count as non-negative.

    Returns:
        ``(K,)`` float64 weights, non-negative, summing to 1.

    Raises:
        ValueError: a matrix that is not square, finite and symmetric.
    """
    m = np.asarray(moments, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0 or not np.all(np.isfinite(m)):
        raise ValueError(f"moments must be a finite non-empty square matrix, got shape {m.shape}")
    if not np.allclose(m, m.T, rtol=1e-9, atol=1e-12 * max(float(np.abs(m).max()), 1.0)):
        raise ValueError("moments must be symmetric")
    k = m.shape[0]
    best, best_value = None, np.inf
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            sub = m[np.ix_(support, support)]
            ones = np.ones(size)
            try:
                raw = np.linalg.solve(sub, ones)
            except np.linalg.LinAlgError:
                raw = np.linalg.lstsq(sub, ones, rcond=None)[0]
            total = raw.sum()
            if not np.isfinite(total) or abs(total) < tol:
                continue
            w_sub = raw / total
            if np.any(w_sub < -tol):
                continue
            w = np.zeros(k)
            w[list(support)] = np.clip(w_sub, 0.0, None)
            w /= w.sum()
            value = float(w @ m @ w)
            if best is None or value < best_value - 1e-15 * max(abs(best_value), 1.0):
                best, best_value = w, value
    if best is None:  # not reachable for a PSD matrix (any single policy is a feasible support)
        raise ValueError("no feasible blend")
    return best


def fit_blend_weights(policies: Mapping[str, Any], windows: WindowSet, *, min_rate: Any = 0.0,
                      max_rate: Any = 1.0) -> dict[str, dict[str, float]]:
    """Weights of the blend with the smallest mean square fixed-duration tracking error on ``windows``, per benchmark.

    Args:
        policies: label -> :class:`lems.policies.Policy` (e.g. the model, its volume forecast, the static curve
            and TWAP).
        windows: the windows to fit on (validation: never the ones reported).
        min_rate, max_rate: trading limits [fraction of the order per bar].

    Returns:
        ``{"vwap": {label: weight}, "twap": {label: weight}}``: each non-negative, summing to 1.

    Raises:
        ValueError: no policy, no window.
    """
    names = [str(k) for k in policies]
    if not names or len(windows) == 0:
        raise ValueError("fit_blend_weights needs at least one policy and one window")
    _check_windows(windows)
    per_policy = [fixed_duration_diffs(policy.allocate(windows, min_rate=min_rate, max_rate=max_rate),
                                       windows.prices, windows.volumes)
                  for policy in policies.values()]  # each (N, 4, 2)
    weights = {}
    for benchmark in BENCHMARKS:
        of_benchmark = np.array([bench == benchmark for _, bench in ORDER_TYPES])
        diffs = np.stack([d[:, of_benchmark].ravel() for d in per_policy], axis=1)  # (orders, K)
        w = simplex_min_second_moment(diffs.T @ diffs / len(diffs))
        weights[benchmark] = {name: float(v) for name, v in zip(names, w)}
    return weights


class BlendedPolicy:
    """Fixed-duration schedules blended across policies; flexible columns from one of them.

    Args:
        policies: label -> :class:`lems.policies.Policy`.
        weights: ``{"vwap": {label: w}, "twap": {label: w}}`` (:func:`fit_blend_weights`): the fixed column's VWAP
            order types are blended with the first, its TWAP order types with the second. Labels without a weight
            count 0; each benchmark's weights must be non-negative and sum to 1.
        flexible_from: label of the policy whose flexible (min-duration) columns are used as they are.
        name: label of the blend.

    Raises:
        ValueError: unknown labels, weights outside the simplex.
    """

    def __init__(self, policies: Mapping[str, Any], weights: Mapping[str, Mapping[str, float]], flexible_from: str,
                 name: str = "blend") -> None:
        self.policies = {str(k): p for k, p in policies.items()}
        if flexible_from not in self.policies:
            raise ValueError(f"flexible_from {flexible_from!r} is not one of {list(self.policies)}")
        self.flexible_from, self.name = str(flexible_from), str(name)
        self.weights = {}
        for benchmark in BENCHMARKS:
            given = dict(weights.get(benchmark, {}))
            unknown = set(given) - set(self.policies)
            if unknown:
                raise ValueError(f"weights name policies that are not blended: {sorted(unknown)}")
            w = np.array([float(given.get(k, 0.0)) for k in self.policies])
            if not (np.all(np.isfinite(w)) and np.all(w >= 0) and abs(w.sum() - 1.0) < 1e-6):
                raise ValueError(f"{benchmark} weights must be non-negative and sum to 1, got {given}")
            self.weights[benchmark] = w / w.sum()

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """Allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`lems.policies.Policy`): within the limits, as
        every blended policy's are."""
        out = None
        fixed = 0.0
        is_vwap = IS_VWAP_ORDER[None, None, :, None]
        for i, (label, policy) in enumerate(self.policies.items()):
            w_vwap, w_twap = self.weights["vwap"][i], self.weights["twap"][i]
            if label != self.flexible_from and w_vwap == 0 and w_twap == 0:
                continue
            allocations = np.asarray(policy.allocate(windows, min_rate=min_rate, max_rate=max_rate), np.float64)
            if label == self.flexible_from:
                out = allocations.copy()
            fixed = fixed + np.where(is_vwap, w_vwap, w_twap) * allocations[:, :, -1]
        out[:, :, -1] = fixed
        return out

    def __repr__(self) -> str:
        parts = {b: {k: round(float(v), 3) for k, v in zip(self.policies, w) if v > 0} for b, w in self.weights.items()}
        return f"BlendedPolicy({parts}, flexible_from={self.flexible_from!r}, name={self.name!r})"


def fit_blended_policy(policies: Mapping[str, Any], windows: WindowSet, flexible_from: str, *, min_rate: Any = 0.0,
                       max_rate: Any = 1.0, name: str = "blend") -> BlendedPolicy:
    """:class:`BlendedPolicy` with the weights :func:`fit_blend_weights` finds on ``windows`` (validation)."""
    weights = fit_blend_weights(policies, windows, min_rate=min_rate, max_rate=max_rate)
    return BlendedPolicy(policies, weights, flexible_from, name=name)
