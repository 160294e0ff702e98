"""Execution cost models (docs/execution.md §1: "unless an impact model is configured") and the prices they give.

A :class:`CostModel` says, per bar of an order, the temporary cost its own fills pay and the permanent move it
leaves on later bars; :func:`cost_adjusted_prices` turns bar prices into the order's fill prices and the market's
prices after its impact. :func:`corwin_schultz_half_spread` estimates the half-spread a :class:`SpreadCost` can
read. Models are written once on the array namespace of their inputs (numpy float64, or ``keras.ops``:
differentiable, so a loss can train through them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from lems.execution._ops import _cast_like, _non_negative_finite, _positive_finite, array_namespace
from lems.execution.orders import _side_sign


class CostInputs(NamedTuple):
    """What a cost model may read, per bar of each order (arrays of either namespace, broadcastable).

    Attributes:
        participation: ``pi_s``, the order's child quantity over the bar's market volume (>= 0, realised).
        sigma: volatility of the bar's relative price per bar (fraction, e.g. 0.002), estimated from the
            lookback only (:func:`lems.data.estimates.lookback_volatility`); ``None`` when no model needs it.
        half_spread: estimated half bid-ask spread (fraction of price, e.g. 2e-4), per order or per bar;
            ``None`` when not estimated.
    """

    participation: Any
    sigma: Any = None
    half_spread: Any = None


def _required(inputs: CostInputs, field_name: str, model: str):
    value = getattr(inputs, field_name)
    if value is None:
        raise ValueError(f"{model} needs {field_name} (pass {field_name}=... estimated from the lookback)")
    return value


def _safe_power(ops, x, exponent: float):
    """``x ** exponent`` for ``x >= 0`` with value 0 and gradient 0 at ``x == 0`` (no inf * 0 = NaN)."""
    positive = x > 0
    safe = ops.where(positive, x, ops.ones_like(x))
    return ops.where(positive, ops.power(safe, exponent), ops.zeros_like(x))


class TransientParts(NamedTuple):
    """Price impact with memory of an order, per bar (fractions of price, >= 0; :meth:`CostModel.transient`).

    Attributes:
        inherited: the decayed impact of the order's child orders of the EARLIER bars ``u < s`` (a market price
            displacement: it moves the market's price of bar ``s`` and the order's fills there).
        own: the instantaneous impact of bar ``s``'s own child order, averaged over the bar (its fills only).
    """

    inherited: Any
    own: Any


class CostModel:
    """Interface of an execution cost model (docs/execution.md §1: "unless an impact model is configured").

    A cost model says, per bar ``s`` of an order, as fractions of the bar's price (never negative):

    * :meth:`temporary` ``c_s``: paid by the order's own fills in bar ``s`` only (spread, temporary impact);
    * :meth:`permanent` ``g_s``: the permanent price move caused by the order's trading in bar ``s``. It shifts
      the market price of the LATER bars ``u > s`` only (Almgren & Chriss 2000: the trade of interval ``k`` moves
      the price ``S_k`` from which interval ``k + 1`` starts; interval ``k`` itself pays only the temporary
      impact). :func:`cost_adjusted_prices` accumulates the shifts;
    * :meth:`transient` (optional, impact with memory: :class:`TransientImpact`): what the order's earlier child
      orders still weigh on bar ``s`` (``inherited_s``, a shift like the permanent one) and bar ``s``'s own
      instantaneous part (``own_s``, like a temporary cost). It needs the step axis, the others are elementwise.

    Adverse for the trader on both sides: a buy pays ``p_s (1 + shift_s + c_s)``, a sell receives
    ``p_s (1 - shift_s - c_s)``. Models are written once on the array namespace of their inputs (numpy float64 or
    ``keras.ops``, differentiable) and combine with ``+`` (:class:`CompositeCost`).

    Attributes:
        needs_sigma: the model reads :attr:`CostInputs.sigma`.
        needs_half_spread: the model reads :attr:`CostInputs.half_spread` (an estimated spread).
    """

    needs_sigma: bool = False
    needs_half_spread: bool = False

    def temporary(self, inputs: CostInputs):
        """Temporary cost ``c_s`` per bar (fraction of price, >= 0), the shape of ``inputs.participation``."""
        ops = array_namespace(inputs.participation)
        return ops.zeros_like(inputs.participation)

    def permanent(self, inputs: CostInputs):
        """Permanent price move ``g_s`` caused by bar ``s`` (fraction of price, >= 0): shifts bars ``> s``."""
        ops = array_namespace(inputs.participation)
        return ops.zeros_like(inputs.participation)

    def transient(self, inputs: CostInputs, axis: int = 1) -> TransientParts | None:
        """Impact with memory along the step ``axis`` (:class:`TransientImpact`); ``None``: the model has none.

        Returns:
            :class:`TransientParts`: ``inherited_s`` (what the order's trading in bars ``u < s`` still weighs on bar
            ``s``: shifts the market's price of bar ``s`` and the order's fills there) and ``own_s`` (bar ``s``'s
            own instantaneous part: the order's fills of bar ``s`` only), fractions of price, >= 0.
        """
        return None

    def fee(self, inputs: CostInputs):
        """Exchange fee per unit traded in bar ``s`` (fraction of the fill's notional; ``None``: no fee). Charged on
        the fills like a temporary cost but reported apart (:attr:`CostedPrices.before_fees`,
        :attr:`lems.execution.Shortfall.fee_bps`); a maker rebate can make it negative."""
        return None

    @property
    def is_free(self) -> bool:
        """True when the model costs nothing by construction (prices pass through unchanged)."""
        return False

    def __add__(self, other: CostModel) -> CompositeCost:
        if not isinstance(other, CostModel):
            return NotImplemented
        return CompositeCost((self, other))


@dataclass(frozen=True)
class NoCost(CostModel):
    """No cost: every child order fills at the bar's VWAP (docs/execution.md §1, the seed's convention; default)."""

    @property
    def is_free(self) -> bool:
        return True


@dataclass(frozen=True)
class SpreadCost(CostModel):
    """The half bid-ask spread, paid on every unit traded (a temporary cost independent of size).

    Args:
        half_spread_bps: the half-spread in bps (>= 0). ``None``: use the estimate in
            :attr:`CostInputs.half_spread`, e.g. the Corwin & Schultz (2012) high-low estimator over the lookback
            (:func:`corwin_schultz_half_spread`, :func:`lems.data.estimates.lookback_half_spread`).

    Raises:
        ValueError: a negative or non-finite ``half_spread_bps``.
    """

    half_spread_bps: float | None = None

    def __post_init__(self) -> None:
        if self.half_spread_bps is not None:
            object.__setattr__(self, "half_spread_bps", _non_negative_finite(
                "half_spread_bps", self.half_spread_bps, "[0, inf) bps"))

    @property
    def needs_half_spread(self) -> bool:  # type: ignore[override]
        return self.half_spread_bps is None

    def temporary(self, inputs: CostInputs):
        ops = array_namespace(inputs.participation, inputs.half_spread)
        if self.half_spread_bps is not None:
            return ops.zeros_like(inputs.participation) + self.half_spread_bps * 1e-4
        return ops.zeros_like(inputs.participation) + _required(inputs, "half_spread", "SpreadCost()")


@dataclass(frozen=True)
class FeeCost(CostModel):
    """Exchange fees per child order, in bps of its notional: taker by default, a maker share optional.

    The fee per unit is ``(1 - maker_fraction) * taker_bps + maker_fraction * maker_bps`` (a negative ``maker_bps``
    is a rebate). A buy pays ``p (1 + fee)``, a sell receives ``p (1 - fee)``: the same as a price adjustment, but
    reported as its own part of the implementation shortfall (:attr:`lems.execution.Shortfall.fee_bps`). Crypto
    venues charge takers about 2 to 10 bps.

    Args:
        taker_bps: fee of aggressive (taker) fills [bps, >= 0], default 0.
        maker_bps: fee of passive (maker) fills [bps, finite; negative: a rebate], default 0.
        maker_fraction: share of each child order filled passively, in [0, 1] (default 0: all taker).

    Raises:
        ValueError: a negative or non-finite ``taker_bps``, a non-finite ``maker_bps``, ``maker_fraction`` outside
            ``[0, 1]``, or a net rebate (the fee per unit below zero).
    """

    taker_bps: float = 0.0
    maker_bps: float = 0.0
    maker_fraction: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "taker_bps", _non_negative_finite("taker_bps", self.taker_bps, "[0, inf) bps"))
        maker = self.maker_bps
        if isinstance(maker, bool) or not isinstance(maker, (int, float, np.integer, np.floating)) \
                or not np.isfinite(maker):
            raise ValueError(f"maker_bps must be a finite number of bps, got {maker!r}")
        object.__setattr__(self, "maker_bps", float(maker))
        fraction = _non_negative_finite("maker_fraction", self.maker_fraction, "[0, 1]")
        if fraction > 1:
            raise ValueError(f"maker_fraction must be in [0, 1], got {self.maker_fraction!r}")
        object.__setattr__(self, "maker_fraction", fraction)
        if self.fee_bps < 0:
            raise ValueError(f"the fee per unit is a net rebate ({self.fee_bps:g} bps): lems charges fees, it does "
                             "not model rebate capture; lower maker_fraction or raise maker_bps")

    @property
    def fee_bps(self) -> float:
        """The fee per unit traded [bps]."""
        return (1.0 - self.maker_fraction) * self.taker_bps + self.maker_fraction * self.maker_bps

    @property
    def is_free(self) -> bool:
        return self.fee_bps == 0

    def fee(self, inputs: CostInputs):
        ops = array_namespace(inputs.participation)
        return ops.zeros_like(inputs.participation) + self.fee_bps * 1e-4


@dataclass(frozen=True)
class SquareRootImpact(CostModel):
    """Temporary market impact ``c_s = coef * sigma * pi_s ** delta`` (the square-root law for ``delta = 0.5``).

    ``pi_s`` is the participation of the order in bar ``s`` (child quantity / bar volume) and ``sigma`` the
    per-bar volatility estimated from the lookback. The square-root law: the impact of a metaorder of ``Q`` in a
    market trading ``V`` is ``Y sigma sqrt(Q / V)`` with ``Y`` of order one (Tóth, Lemperière, Deremble, de
    Lataillade, Kockelkoren & Bouchaud 2011, "Anomalous price impact and the critical nature of liquidity in
    financial markets", Phys. Rev. X 1, 021006; Bouchaud, Bonart, Donier & Gould 2018, "Trades, Quotes and
    Prices", ch. 12: ``Y`` about 0.5 to 1). Almgren, Thum, Hauptmann & Li (2005, "Direct estimation of equity
    market impact", Risk 18) fit the same form per unit of trading rate with exponent 0.6 (``delta = 0.6``) and
    ``coef = 0.142`` against DAILY volatility. Here the law is applied bar by bar with the bar's volatility; for a
    uniform schedule at participation ``rho`` over ``H`` bars the metaorder law ``Y sigma_H sqrt(rho)`` (horizon
    volatility ``sigma_H = sigma sqrt(H)``) corresponds to ``coef = Y sqrt(H)``. ``delta = 1`` gives the linear
    temporary impact of Almgren & Chriss (2000) with ``eta = coef * sigma * Q / V``.

    The bars are charged independently (no memory), so the cost of the same order depends on the bar length:
    one hour at 5 % of its volume with an hourly volatility of 60 bps costs 13.4 bps as one bar, 3.9 bps as 12
    five-minute bars and 1.7 bps as 60 one-minute bars (``sigma`` per bar scales as ``sqrt(bar length)``), which
    rewards splitting finer. :class:`TransientImpact` (impact with memory, calibrated at the horizon) does not.

    Args:
        coef: dimensionless coefficient (>= 0), default 1.0.
        delta: exponent in ``(0, 1]``, default 0.5.

    Raises:
        ValueError: a negative or non-finite ``coef``, ``delta`` outside ``(0, 1]``.
    """

    coef: float = 1.0
    delta: float = 0.5
    needs_sigma = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "coef", _non_negative_finite("coef", self.coef))
        delta = _positive_finite("delta", self.delta, "(0, 1]")
        if delta > 1:
            raise ValueError(f"delta must be in (0, 1], got {self.delta!r}")
        object.__setattr__(self, "delta", delta)

    def temporary(self, inputs: CostInputs):
        ops = array_namespace(inputs.participation, inputs.sigma)
        sigma = _required(inputs, "sigma", "SquareRootImpact")
        return self.coef * sigma * _safe_power(ops, inputs.participation, self.delta)


@dataclass(frozen=True)
class LinearPermanentImpact(CostModel):
    """Linear permanent impact (Almgren & Chriss 2000, "Optimal execution of portfolio transactions", J. Risk 3):
    trading ``pi_s`` of bar ``s``'s volume moves the price of every later bar by ``g_s = coef * sigma * pi_s``.

    Linear in the quantity traded, as the permanent impact ``g(v) = gamma v`` of Almgren & Chriss, with
    ``gamma = coef * sigma / V_s`` per unit (fraction of price): with constant bar volume ``V`` and an order of
    ``Q``, ``gamma = coef * sigma * Q / V`` per fraction of the order. The bar of the trade itself is not shifted
    (its cost is the temporary impact), bars before it never. Almgren et al. (2005) estimate ``gamma = 0.314``
    against daily volatility and the fraction of DAILY volume; per bar of ``1/n`` of a day that is about
    ``0.314 / sqrt(n)``.

    Args:
        coef: dimensionless coefficient (>= 0).

    Raises:
        ValueError: a negative or non-finite ``coef``.
    """

    coef: float = 0.1
    needs_sigma = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "coef", _non_negative_finite("coef", self.coef))

    def permanent(self, inputs: CostInputs):
        sigma = _required(inputs, "sigma", "LinearPermanentImpact")
        return self.coef * sigma * inputs.participation


#: Decay kernels of :class:`TransientImpact`.
TRANSIENT_KERNELS = ("power", "exponential")


def _kernel_integrals(kernel: str, tau: float, beta: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``G1(t) = int_0^t G`` [minutes] and ``G2(t) = int_0^t G1`` [minutes^2] of the decay kernel ``G`` (G(0) = 1).

    ``"exponential"``: ``G(t) = exp(-t / tau)``; ``"power"``: ``G(t) = (1 + t / tau) ** -beta``. Float64.
    """
    t = np.asarray(t, dtype=np.float64)
    if kernel == "exponential":
        g1 = -tau * np.expm1(-t / tau)
        g2 = tau * t + tau**2 * np.expm1(-t / tau)
        return g1, g2
    x = 1.0 + t / tau
    g1 = tau / (1.0 - beta) * (x ** (1.0 - beta) - 1.0)
    g2 = tau / (1.0 - beta) * (tau / (2.0 - beta) * (x ** (2.0 - beta) - 1.0) - t)
    return g1, g2


@lru_cache(maxsize=64)
def _propagator(kernel: str, tau: float, beta: float, bar_minutes: float, horizon: int):
    """``(W, scale)``: ``W[u, s]`` = weight of bar ``u``'s instantaneous response on the average price of bar ``s``
    [minutes] (0 for ``u > s``: causal), and ``sqrt(H) / G1(H dt)`` [1 / minutes] (float64).

    With a constant trading rate inside each bar, ``W[u, s] = (1/dt) int_{bar s} int_{bar u} G(t - x) dx dt``:
    ``(G2((k+1) dt) - 2 G2(k dt) + G2((k-1) dt)) / dt`` for ``k = s - u >= 1``, ``G2(dt) / dt`` for ``k = 0``.
    """
    dt = bar_minutes
    k = np.arange(horizon, dtype=np.float64)
    if kernel == "exponential":  # closed form of the second difference (no cancellation)
        _, g2_dt = _kernel_integrals(kernel, tau, beta, dt)
        lag = tau**2 * np.expm1(-dt / tau) ** 2 * np.exp(-(k - 1.0) * dt / tau) / dt
        weights = np.where(k == 0, g2_dt / dt, lag)
    else:
        _, g2 = _kernel_integrals(kernel, tau, beta, np.concatenate([[0.0], (k + 1.0) * dt]))
        g2_prev = np.concatenate([[0.0], g2[:-1]])  # G2((k-1) dt), 0 for k = 0
        weights = (g2[1:] - 2.0 * g2[:-1] + g2_prev[:-1]) / dt
    lags = k[None, :] - k[:, None]  # s - u
    matrix = np.where(lags >= 0, weights[np.clip(lags, 0, None).astype(int)], 0.0)
    g1_horizon, _ = _kernel_integrals(kernel, tau, beta, horizon * dt)
    return matrix, float(np.sqrt(horizon) / g1_horizon)


@dataclass(frozen=True)
class TransientImpact(CostModel):
    """Transient (propagator) market impact: each child order's impact decays with the time since it traded.

    The order trades at the participation rate ``pi_u`` (child quantity / bar volume, constant inside bar ``u``);
    its price displacement at time ``t`` [minutes] is that of a propagator model (Bouchaud, Gefen, Potters & Wyart
    2004, "Fluctuations and response in financial markets: the subtle nature of 'random' price changes", Quant.
    Finance 4; Obizhaeva & Wang 2013, "Optimal trading strategy and supply/demand dynamics", J. Financial Markets
    16; Gatheral 2010, "No-dynamic-arbitrage and market impact", Quant. Finance 10)::

        I(t) = K * int_0^t G(t - x) * pi(x) ** delta dx

    with the concave instantaneous response ``pi ** delta`` and the decay kernel ``G`` (``G(0) = 1``):

    * ``kernel="power"`` (Bouchaud et al.): ``G(t) = (1 + t / tau) ** -beta``, ``tau = resilience_minutes`` the
      short-time cutoff, ``0 < beta < 1``. With ``beta = delta = 1/2`` (the defaults) the square-root law holds at
      every duration with the same ``K`` (``I(T)`` grows as ``sqrt(rho T)``).
    * ``kernel="exponential"`` (Obizhaeva & Wang resilience): ``G(t) = exp(-t / tau)``, ``tau = resilience_minutes``
      the resilience time.

    The price a child order pays in bar ``s`` is the bar's average of ``I(t)``: the decayed impact of all EARLIER
    child orders (:attr:`TransientParts.inherited`, which moves the market's price of bar ``s`` too) plus its own
    instantaneous part (:attr:`TransientParts.own`). Bars before a child order are never moved. The bar averages are
    exact integrals of ``G`` (``W[u, s]`` of :func:`_propagator`), so a schedule that is the same continuous
    trading rate costs the same whatever the bar length: only times in minutes enter (``bar_minutes`` is an input).

    Calibration (square-root law at the horizon): ``K = coef * sigma_T / G1(T)``, ``G1(T) = int_0^T G`` [minutes],
    ``T = H * bar_minutes`` the order's horizon, ``sigma_T = sigma * sqrt(H)`` its volatility (``sigma`` per bar,
    :attr:`CostInputs.sigma`; per-bar volatilities scale as ``sqrt(bar_minutes)``). A uniform metaorder of ``Q`` in
    a market trading ``V_T`` over ``T`` (participation ``rho = Q / V_T`` in every bar) then moves the price by
    ``I(T) = coef * sigma_T * rho ** delta`` at the horizon (Tóth et al. 2011, Phys. Rev. X 1, 021006: ``Y`` =
    ``coef`` about 0.5 to 1) and pays on average (:meth:`uniform_cost`)::

        cost = coef * sigma_T * rho ** delta * G2(T) / (T * G1(T))      # G2(T) = int_0^T G1

    2/3 of the peak for the power law with ``beta = 1/2`` and ``tau << T`` (0.63 at ``tau`` = 1 min, ``T`` = 60
    min), between 1/2 (``tau >> T``) and 1 (``tau << T``) for the exponential. Example: one hour at 5 % of its volume
    with ``sigma_T`` = 60 bps and ``coef = 1``: peak 13.4 bps, average cost 8.4 bps (power law, ``tau`` = 1 min;
    9.6 bps exponential with ``tau`` = 20 min), the same as 1, 12 or 60 bars
    (exact for a constant rate; a uniform schedule over bars of unequal volume differs by its rate's variation).

    Args:
        bar_minutes: length of a bar [minutes], > 0 (the data's bar length: 60 for hourly bars).
        coef: ``Y``, dimensionless, >= 0 (default 1.0): the peak impact at the horizon in units of
            ``sigma_T * rho ** delta``.
        delta: exponent of the instantaneous response in ``(0, 1]`` (default 0.5).
        kernel: ``"power"`` (default) or ``"exponential"``.
        resilience_minutes: ``tau`` [minutes], > 0 (default 1.0: the power law's cutoff; for the exponential kernel
            the resilience time, typically 10 to 60 minutes).
        beta: decay exponent of the power-law kernel in ``(0, 1)`` (default 0.5; unused by the exponential).

    Raises:
        ValueError: a non-positive or non-finite ``bar_minutes`` or ``resilience_minutes``, a negative ``coef``,
            ``delta`` outside ``(0, 1]``, ``beta`` outside ``(0, 1)``, an unknown kernel.
    """

    bar_minutes: float
    coef: float = 1.0
    delta: float = 0.5
    kernel: str = "power"
    resilience_minutes: float = 1.0
    beta: float = 0.5
    needs_sigma = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "bar_minutes", _positive_finite("bar_minutes", self.bar_minutes, "(0, inf) minutes"))
        object.__setattr__(self, "coef", _non_negative_finite("coef", self.coef))
        delta = _positive_finite("delta", self.delta, "(0, 1]")
        if delta > 1:
            raise ValueError(f"delta must be in (0, 1], got {self.delta!r}")
        object.__setattr__(self, "delta", delta)
        if self.kernel not in TRANSIENT_KERNELS:
            raise ValueError(f"kernel must be one of {TRANSIENT_KERNELS}, got {self.kernel!r}")
        object.__setattr__(self, "resilience_minutes", _positive_finite(
            "resilience_minutes", self.resilience_minutes, "(0, inf) minutes"))
        beta = _positive_finite("beta", self.beta, "(0, 1)")
        if beta >= 1:
            raise ValueError(f"beta must be in (0, 1), got {self.beta!r}")
        object.__setattr__(self, "beta", beta)

    def _propagator(self, horizon: int):
        return _propagator(self.kernel, self.resilience_minutes, self.beta, self.bar_minutes, int(horizon))

    def transient(self, inputs: CostInputs, axis: int = 1) -> TransientParts:
        ops = array_namespace(inputs.participation, inputs.sigma)
        sigma = _required(inputs, "sigma", "TransientImpact")
        participation = inputs.participation
        ndim = len(participation.shape)
        if ndim == 0:
            raise ValueError("TransientImpact needs the participation per bar along a step axis")
        horizon = participation.shape[axis]
        matrix, scale = self._propagator(horizon)
        response = _safe_power(ops, participation, self.delta)
        moved = ops.moveaxis(response, axis, -1)
        lower = _cast_like(ops, np.triu(matrix, k=1), moved)  # [u, s], u < s
        inherited = ops.moveaxis(ops.matmul(moved, lower), -1, axis)
        factor = self.coef * scale * sigma
        own = factor * float(matrix[0, 0]) * response
        return TransientParts(factor * inherited, own)

    def uniform_cost(self, participation: float, sigma: float, horizon: int) -> float:
        """Average impact cost [fraction of price] of a uniform schedule at a constant ``participation`` over
        ``horizon`` bars of per-bar volatility ``sigma``: ``coef sigma_T rho**delta G2(T) / (T G1(T))``."""
        horizon_minutes = horizon * self.bar_minutes
        g1, g2 = _kernel_integrals(self.kernel, self.resilience_minutes, self.beta, horizon_minutes)
        return float(self.coef * sigma * np.sqrt(horizon) * participation**self.delta * g2 / (horizon_minutes * g1))

    def peak_impact(self, participation: float, sigma: float, horizon: int) -> float:
        """Price displacement at the horizon [fraction of price] of a uniform schedule at a constant
        ``participation``: the square-root law ``coef * sigma_T * rho ** delta``."""
        return float(self.coef * sigma * np.sqrt(horizon) * participation**self.delta)


@dataclass(frozen=True)
class CompositeCost(CostModel):
    """The sum of cost models (temporary costs and permanent moves add up).

    Args:
        models: the cost models (nested composites are flattened).

    Raises:
        ValueError: an element that is not a :class:`CostModel`.
    """

    models: tuple = ()

    def __post_init__(self) -> None:
        flat: list[CostModel] = []
        for m in tuple(self.models):
            if not isinstance(m, CostModel):
                raise ValueError(f"CompositeCost takes CostModel instances, got {type(m).__name__}")
            flat.extend(m.models if isinstance(m, CompositeCost) else (m,))
        object.__setattr__(self, "models", tuple(flat))

    @property
    def needs_sigma(self) -> bool:  # type: ignore[override]
        return any(m.needs_sigma for m in self.models)

    @property
    def needs_half_spread(self) -> bool:  # type: ignore[override]
        return any(m.needs_half_spread for m in self.models)

    @property
    def is_free(self) -> bool:
        return all(m.is_free for m in self.models)

    def temporary(self, inputs: CostInputs):
        return _sum_parts([m.temporary(inputs) for m in self.models], inputs)

    def permanent(self, inputs: CostInputs):
        return _sum_parts([m.permanent(inputs) for m in self.models], inputs)

    def fee(self, inputs: CostInputs):
        parts = [f for f in (m.fee(inputs) for m in self.models) if f is not None]
        return _sum_parts(parts, inputs) if parts else None

    def transient(self, inputs: CostInputs, axis: int = 1) -> TransientParts | None:
        parts = [p for p in (m.transient(inputs, axis) for m in self.models) if p is not None]
        if not parts:
            return None
        return TransientParts(_sum_parts([p.inherited for p in parts], inputs),
                              _sum_parts([p.own for p in parts], inputs))


def _sum_parts(parts: list, inputs: CostInputs):
    total = CostModel().temporary(inputs)  # zeros of the participation's shape
    for part in parts:
        total = total + part
    return total


def corwin_schultz_half_spread(high, low, axis: int = -1) -> np.ndarray:
    """Half bid-ask spread from high and low prices (Corwin & Schultz 2012, "A simple way to estimate bid-ask
    spreads from daily high and low prices", J. Finance 67(2), 719-760), averaged over consecutive bar pairs.

    For bars ``t, t+1``: ``beta = ln(H_t/L_t)^2 + ln(H_{t+1}/L_{t+1})^2``, ``gamma = ln(max(H_t, H_{t+1}) /
    min(L_t, L_{t+1}))^2``, ``alpha = (sqrt(2 beta) - sqrt(beta)) / (3 - 2 sqrt 2) - sqrt(gamma / (3 - 2 sqrt
    2))``, spread ``S = 2 (e^alpha - 1) / (1 + e^alpha)``. Negative pair estimates are set to zero before
    averaging (as in the paper); no overnight adjustment. Pass the LOOKBACK bars only to keep it causal.

    Args:
        high, low: bar highs and lows (positive, ``high >= low``), at least two bars along ``axis``.
        axis: the bar axis.

    Returns:
        Half-spread ``S / 2`` (fraction of price, >= 0), reduced over ``axis`` (float64).

    Raises:
        ValueError: fewer than two bars, non-finite or non-positive prices, or ``high < low``.
    """
    hi = np.moveaxis(np.asarray(high, dtype=np.float64), axis, -1)
    lo = np.moveaxis(np.asarray(low, dtype=np.float64), axis, -1)
    if hi.shape != lo.shape or hi.shape[-1] < 2:
        raise ValueError(f"high and low need the same shape with >= 2 bars, got {hi.shape} and {lo.shape}")
    if not (np.all(np.isfinite(hi)) and np.all(np.isfinite(lo)) and np.all(lo > 0)):
        raise ValueError("high and low must be finite and positive")
    if np.any(hi < lo):
        raise ValueError("high must be >= low in every bar")
    log_range2 = np.log(hi / lo) ** 2
    beta = log_range2[..., 1:] + log_range2[..., :-1]
    gamma = np.log(np.maximum(hi[..., 1:], hi[..., :-1]) / np.minimum(lo[..., 1:], lo[..., :-1])) ** 2
    k = 3.0 - 2.0 * np.sqrt(2.0)
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / k - np.sqrt(gamma / k)
    spread = np.maximum(2.0 * np.expm1(alpha) / (1.0 + np.exp(alpha)), 0.0)
    return spread.mean(axis=-1) / 2.0




class CostedPrices(NamedTuple):
    """Prices of an execution under a cost model (same shape, step axis kept).

    Attributes:
        fill: the order's execution price per bar: ``p_s (1 + side * (shift_s + c_s))``.
        market: the market's price per bar after the order's permanent impact: ``p_s (1 + side * shift_s)``.
        before_fees: the execution price without the exchange fees ``f_s`` (:meth:`CostModel.fee`): ``fill`` is
            ``p_s (1 + side * (shift_s + c_s + f_s))``; ``None`` when the model charges no fee (then ``fill``).
    """

    fill: Any
    market: Any
    before_fees: Any = None


def _exclusive_cumsum(ops, x, axis: int):
    """``sum_{u < s} x_u`` along ``axis`` (exact: bar ``s`` never enters its own or an earlier sum)."""
    moved = ops.moveaxis(x, axis, 0)
    csum = ops.cumsum(moved, axis=0)
    shifted = ops.concatenate([ops.zeros_like(moved[:1]), csum[:-1]], axis=0)
    return ops.moveaxis(shifted, 0, axis)


def cost_adjusted_prices(prices, participation, cost_model: CostModel | None = None, *, side=1, sigma=None,
                         half_spread=None, axis: int = 1) -> CostedPrices:
    """Execution and market prices of an order under a cost model (differentiable on ``keras.ops``).

    The permanent moves ``g_s`` of bars ``< s`` shift bar ``s`` (``shift_s = sum_{u<s} g_u``, adverse: up for a
    buy, down for a sell), and so does the decayed impact of their child orders under a model with memory
    (:attr:`TransientParts.inherited`); the order's fills also pay the temporary cost ``c_s`` of their own bar (and
    the instantaneous part :attr:`TransientParts.own`) and the exchange fee (:meth:`CostModel.fee`, kept apart in
    :attr:`CostedPrices.before_fees`). A free model
    (:class:`NoCost`) returns ``prices`` unchanged (the same object: every frictionless number is reproduced bit
    for bit).

    Args:
        prices: bar prices ``p_s`` (positive, any scale), step axis ``axis``.
        participation: per-bar participation ``pi_s`` (:func:`bar_participation`).
        cost_model: the cost model (``None``: :class:`NoCost`).
        side: +1 buy, -1 sell (broadcastable, or "buy"/"sell").
        sigma: per-bar volatility (fraction), broadcastable; needed by impact models.
        half_spread: estimated half-spread (fraction of price), broadcastable; needed by ``SpreadCost()``.
        axis: the step axis.

    Returns:
        :class:`CostedPrices`.

    Raises:
        ValueError: a missing input the model needs; with numpy inputs, costs that make a price non-positive
            (a sell's costs above 100 %: check the coefficients and the order size).
    """
    cost_model = NoCost() if cost_model is None else cost_model
    if not isinstance(cost_model, CostModel):
        raise ValueError(f"cost_model must be a lems.execution.CostModel, got {type(cost_model).__name__}")
    if cost_model.is_free:
        return CostedPrices(prices, prices)
    side = _side_sign(side)
    ops = array_namespace(prices, participation, side, sigma, half_spread)
    inputs = CostInputs(participation, sigma, half_spread)
    shift = _exclusive_cumsum(ops, cost_model.permanent(inputs), axis)
    temporary = cost_model.temporary(inputs)
    memory = cost_model.transient(inputs, axis)
    if memory is not None:
        shift = shift + memory.inherited
        temporary = temporary + memory.own
    sign = _cast_like(ops, side, shift)
    market = prices * (1.0 + sign * shift)
    fill = prices * (1.0 + sign * (shift + temporary))
    fee = cost_model.fee(inputs)
    before_fees = None
    if fee is not None:
        before_fees, fill = fill, prices * (1.0 + sign * (shift + temporary + fee))
    if ops is np and not (np.all(fill > 0) and np.all(market > 0)):
        raise ValueError("execution costs exceed the price (a sell's costs above 100 %): check the cost model's "
                         "coefficients and the order size")
    return CostedPrices(fill, market, before_fees)

