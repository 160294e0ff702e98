"""Synthetic market: bars with predictable volume and unpredictable prices.

The generator outputs the canonical bars frame (see ``lems.data.validation``):
``symbol, timestamp, open, high, low, close, volume, notional, notional_estimated, price,
trades`` sorted by ``(symbol, timestamp)`` with a ``RangeIndex``.

Model, per asset ``a`` and bar ``t`` (all logs natural):

* Log bar VWAP ``log p_t = log p_{t-1} + r_t`` with ``r_t = s_t * z_t``: zero drift, so log prices
  are a martingale and no price signal can be learned. ``s_t^2 = sigma_bar^2 * h_t * m_t`` where
  ``h_t`` is a GARCH(1,1) state (``h_{t+1} = (1-alpha-beta) + alpha*h_t*z_t^2 + beta*h_t``,
  unconditional mean 1) and ``m_t`` scales by the bar duration (and the overnight variance on the
  first bar of a session). ``z_t`` are unit-variance Student-t innovations with a common factor
  across assets (fat tails, cross-asset correlation).
* ``log V_t = level_a + seasonal(slot, day) + x_t + beta_abs * |z_t| * sqrt(h_t) + noise``, with
  ``x_t`` an AR(1) (``x_t = phi x_{t-1} + u_t``, ``u`` with a common factor across assets).
  Seasonal: a smooth daily cycle plus a weekend dip (24/7), or a U shape over the session with a
  closing-auction bump (sessions), and volume proportional to bar duration.
* Optional day-level volume shocks (``volume_shock_sigma > 0``; off by default): once per asset and day (24/7:
  UTC day; sessions: trading session), at a uniformly drawn bar of the day, the log volume jumps by
  ``N(0, volume_shock_sigma^2)`` and the jump then decays geometrically by ``volume_shock_decay`` per bar. The
  realised intraday curve then departs from the static one in a way the bars already seen predict (the first
  bars after a shock tell how much volume the next ones will carry): what a dynamic VWAP forecast exploits.
  Drawn from a separate random stream, so the other paths are the same with or without shocks.
* OHLC around the VWAP: ``close = p * exp(b)``, ``open = previous close`` inside a continuous run
  (``open = p * exp(a)`` on the first bar of a session), ``high``/``low`` beyond
  ``max``/``min(open, close, p)``, so ``low <= p <= high`` always. ``notional = volume * p`` exactly.
* A fraction of zero-volume bars (24/7 only by default): ``open = high = low = close`` = previous
  close, ``volume = notional = trades = 0``, ``price`` carried forward.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "SESSION_TZ",
    "SyntheticMarketConfig",
    "synthetic_market",
    "session_days",
]

#: Time zone of the NYSE-like "session" calendar.
SESSION_TZ = "America/New_York"
_OPEN_MIN = 9 * 60 + 30  # 09:30 local, minutes after midnight
_CLOSE_MIN = 16 * 60  # 16:00 local
_EARLY_CLOSE_MIN = 13 * 60  # 13:00 local


@dataclass(frozen=True)
class SyntheticMarketConfig:
    """Parameters of :func:`synthetic_market` (units in brackets).

    Attributes:
        n_assets: Number of symbols, named ``SYN0``, ``SYN1``, ... (zero padded).
        n_days: Calendar days spanned from ``start`` [days]; sessions skip weekends/holidays.
        bar_minutes: Bar length [minutes]; must divide 1440.
        calendar: ``"24/7"`` (bars round the clock, UTC) or ``"session"`` (NYSE-like,
            09:30-16:00 America/New_York, first bar 09:30 possibly shorter, then bars aligned
            on multiples of ``bar_minutes``; 13:00 early closes; holidays skipped).
        seed: Seed of the numpy ``Generator``; same seed -> identical frame.
        start: First calendar day (local date for sessions, UTC date for 24/7).
        initial_price: Median initial price [quote currency]; assets are scaled by
            ``exp(U(-1, 1))``.
        daily_volatility: Unconditional std of the log VWAP return over a 24h day (24/7) or over
            a regular session excluding the overnight move (sessions) [log units].
        garch_alpha: GARCH reaction to the last squared innovation [-].
        garch_beta: GARCH persistence [-]; ``alpha + beta < 1``.
        t_dof: Degrees of freedom of the Student-t innovations (> 2) [-].
        return_correlation: Correlation of return innovations across assets [-], in [0, 1).
        overnight_variance: Variance of the overnight move, in units of one regular bar's
            variance, added to the first bar of each session [-] (sessions only).
        base_volume: Median volume per regular bar of an average asset [shares / coins].
        asset_volume_dispersion: Std of the per-asset log volume level [log units].
        seasonal_amplitude: Amplitude of the intraday volume curve [log units].
        dow_amplitude: Day-of-week effect (weekend dip for 24/7, Monday dip / Friday bump for
            sessions) [log units].
        close_auction: Extra log volume of the last bar of a session [log units].
        ar_phi: AR(1) coefficient of the persistent log volume component, per bar [-].
        ar_sigma: Innovation std of the AR(1) component [log units].
        noise_sigma: Std of the i.i.d. log volume noise [log units].
        abs_return_beta: Extra log volume per unit of ``|z_t| * sqrt(h_t)`` (absolute return in
            units of the unconditional bar volatility) [log units].
        volume_correlation: Correlation of AR(1) volume shocks across assets [-], in [0, 1).
        volume_shock_sigma: Std of the day-level volume shock [log units]; 0 (default) = no shocks.
        volume_shock_decay: Per-bar decay factor of a day-level volume shock [-], in [0, 1).
        zero_volume_fraction: Probability that a bar has zero volume [-]; ``None`` -> 0.002
            for 24/7 and 0 for sessions. The first bar of each asset always trades.
        trade_size: Average trade size [shares / coins per trade] relative to ``base_volume``
            (``trades ~ Poisson(volume / (trade_size * base_volume))``).
        holidays: Session calendar: local dates without a session; ``None`` -> NYSE-like fixed
            rules (New Year, MLK, Presidents, Memorial, Independence, Labor, Thanksgiving,
            Christmas; weekend holidays observed on Friday/Monday).
        early_closes: Session calendar: local dates closing at 13:00; ``None`` -> July 3rd,
            the day after Thanksgiving and December 24th (when they are trading days).
    """

    n_assets: int = 3
    n_days: int = 120
    bar_minutes: int = 60
    calendar: str = "24/7"
    seed: int = 0
    start: str = "2021-01-04"
    initial_price: float = 100.0
    daily_volatility: float = 0.02
    garch_alpha: float = 0.08
    garch_beta: float = 0.9
    t_dof: float = 4.0
    return_correlation: float = 0.4
    overnight_variance: float = 3.0
    base_volume: float = 1e5
    asset_volume_dispersion: float = 1.0
    seasonal_amplitude: float = 0.6
    dow_amplitude: float = 0.25
    close_auction: float = 0.4
    ar_phi: float = 0.9
    ar_sigma: float = 0.15
    noise_sigma: float = 0.2
    abs_return_beta: float = 0.25
    volume_correlation: float = 0.5
    volume_shock_sigma: float = 0.0
    volume_shock_decay: float = 0.8
    zero_volume_fraction: float | None = None
    trade_size: float = 1e-3
    holidays: tuple | None = None
    early_closes: tuple | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        checks = [
            (self.n_assets >= 1, "n_assets must be >= 1"),
            (self.n_days >= 1, "n_days must be >= 1"),
            (self.bar_minutes >= 1 and 1440 % self.bar_minutes == 0, "bar_minutes must divide 1440"),
            (self.calendar in ("24/7", "session"), "calendar must be '24/7' or 'session'"),
            (self.initial_price > 0, "initial_price must be > 0"),
            (self.daily_volatility > 0, "daily_volatility must be > 0"),
            (self.garch_alpha >= 0 and self.garch_beta >= 0, "garch_alpha/beta must be >= 0"),
            (self.garch_alpha + self.garch_beta < 1, "garch_alpha + garch_beta must be < 1"),
            (self.t_dof > 2, "t_dof must be > 2 (finite variance)"),
            (0 <= self.return_correlation < 1, "return_correlation must be in [0, 1)"),
            (0 <= self.volume_correlation < 1, "volume_correlation must be in [0, 1)"),
            (abs(self.ar_phi) < 1, "ar_phi must be in (-1, 1)"),
            (self.base_volume > 0, "base_volume must be > 0"),
            (self.overnight_variance >= 0, "overnight_variance must be >= 0"),
            (min(self.ar_sigma, self.noise_sigma) >= 0, "ar_sigma/noise_sigma must be >= 0"),
            (self.volume_shock_sigma >= 0, "volume_shock_sigma must be >= 0"),
            (0 <= self.volume_shock_decay < 1, "volume_shock_decay must be in [0, 1)"),
            (self.trade_size > 0, "trade_size must be > 0"),
        ]
        zvf = self.zero_volume_fraction
        checks.append((zvf is None or 0 <= zvf < 1, "zero_volume_fraction must be in [0, 1)"))
        if self.calendar == "session":
            checks.append((self.bar_minutes <= 390, "session bars must be <= 390 minutes"))
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"SyntheticMarketConfig: {msg}")


# ----------------------------------------------------------------------------------------------
# Calendars
# ----------------------------------------------------------------------------------------------
def _nth_weekday(year: int, month: int, weekday: int, n: int) -> _dt.date:
    """n-th (1-based; -1 = last) given weekday (0 = Monday) of a month."""
    if n > 0:
        first = _dt.date(year, month, 1)
        return first + _dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = _dt.date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - _dt.timedelta(days=1)
    return last - _dt.timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: _dt.date) -> _dt.date:
    """Weekend holiday observed on Friday (Saturday) or Monday (Sunday)."""
    if day.weekday() == 5:
        return day - _dt.timedelta(days=1)
    if day.weekday() == 6:
        return day + _dt.timedelta(days=1)
    return day


def _default_holidays(years: range) -> set[_dt.date]:
    out: set[_dt.date] = set()
    for y in years:
        out |= {
            _observed(_dt.date(y, 1, 1)),
            _nth_weekday(y, 1, 0, 3),  # MLK day
            _nth_weekday(y, 2, 0, 3),  # Presidents day
            _nth_weekday(y, 5, 0, -1),  # Memorial day
            _observed(_dt.date(y, 7, 4)),
            _nth_weekday(y, 9, 0, 1),  # Labor day
            _nth_weekday(y, 11, 3, 4),  # Thanksgiving
            _observed(_dt.date(y, 12, 25)),
        }
    return out


def _default_early_closes(years: range) -> set[_dt.date]:
    out: set[_dt.date] = set()
    for y in years:
        out |= {
            _dt.date(y, 7, 3),
            _nth_weekday(y, 11, 3, 4) + _dt.timedelta(days=1),
            _dt.date(y, 12, 24),
        }
    return out


def session_days(
    start: str | _dt.date, n_days: int, holidays=None, early_closes=None
) -> tuple[np.ndarray, np.ndarray]:
    """Trading days of the NYSE-like synthetic session calendar.

    Args:
        start: First calendar day (local date).
        n_days: Calendar days spanned [days].
        holidays: Dates without a session; ``None`` -> the default NYSE-like rules.
        early_closes: Dates closing at 13:00; ``None`` -> the default rules.

    Returns:
        ``(days, close_minutes)``: ``datetime64[D]`` trading days and their local close time
        [minutes after midnight] (960 or 780).
    """
    first = pd.Timestamp(start).date()
    days = np.arange(np.datetime64(first, "D"), np.datetime64(first, "D") + n_days)
    years = range(first.year - 1, first.year + n_days // 365 + 2)
    hol = _default_holidays(years) if holidays is None else {pd.Timestamp(d).date() for d in holidays}
    early = (
        _default_early_closes(years)
        if early_closes is None
        else {pd.Timestamp(d).date() for d in early_closes}
    )
    hol_arr = np.array(sorted(hol), dtype="datetime64[D]")
    early_arr = np.array(sorted(early), dtype="datetime64[D]")
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    keep = (weekday < 5) & ~np.isin(days, hol_arr)
    days = days[keep]
    close = np.where(np.isin(days, early_arr), _EARLY_CLOSE_MIN, _CLOSE_MIN)
    return days, close


def _session_grid(cfg: SyntheticMarketConfig) -> pd.DataFrame:
    """Bar grid of the session calendar: timestamp (UTC), duration, position in session."""
    days, close = session_days(cfg.start, cfg.n_days, cfg.holidays, cfg.early_closes)
    if days.size == 0:
        raise ValueError("synthetic_market: the session calendar has no trading day in the span")
    bm = cfg.bar_minutes
    aligned = np.arange((_OPEN_MIN // bm + 1) * bm, _CLOSE_MIN, bm)
    starts = np.r_[_OPEN_MIN, aligned]  # local bar starts [minutes after midnight]
    ok = starts[None, :] < close[:, None]
    day_idx, bar_idx = np.nonzero(ok)
    start_min = starts[bar_idx]
    end_min = np.minimum(np.r_[starts[1:], _CLOSE_MIN][bar_idx], close[day_idx])
    local = days[day_idx].astype("datetime64[m]") + start_min.astype("timedelta64[m]")
    ts = pd.DatetimeIndex(local.astype("datetime64[ns]")).tz_localize(SESSION_TZ).tz_convert("UTC")
    n_in_day = ok.sum(axis=1)
    sess_len = (close - _OPEN_MIN).astype(np.float64)
    mid = (start_min + end_min) / 2.0 - _OPEN_MIN
    return pd.DataFrame(
        {
            "timestamp": ts,
            "duration": (end_min - start_min).astype(np.float64),
            "phase": mid / sess_len[day_idx],  # position in the session, 0..1
            "first": bar_idx == 0,
            "last": bar_idx == n_in_day[day_idx] - 1,
            "dow": ((days[day_idx].astype(np.int64) + 3) % 7).astype(np.int64),
        }
    )


def _continuous_grid(cfg: SyntheticMarketConfig) -> pd.DataFrame:
    """Bar grid of the 24/7 calendar (UTC)."""
    n = cfg.n_days * 1440 // cfg.bar_minutes
    t0 = pd.Timestamp(cfg.start).tz_localize(None).normalize().tz_localize("UTC")
    ts = t0 + pd.to_timedelta(np.arange(n) * cfg.bar_minutes, unit="min")
    tod = (np.arange(n) * cfg.bar_minutes + cfg.bar_minutes / 2.0) % 1440
    return pd.DataFrame(
        {
            "timestamp": ts,
            "duration": np.full(n, float(cfg.bar_minutes)),
            "phase": tod / 1440.0,
            "first": np.zeros(n, dtype=bool),
            "last": np.zeros(n, dtype=bool),
            "dow": ts.day_of_week.to_numpy().astype(np.int64),
        }
    )


# ----------------------------------------------------------------------------------------------
# Seasonality
# ----------------------------------------------------------------------------------------------
def _log_seasonal(grid: pd.DataFrame, cfg: SyntheticMarketConfig) -> np.ndarray:
    """Deterministic log volume curve per bar (time of day, day of week, bar duration)."""
    phase = grid["phase"].to_numpy()
    dow = grid["dow"].to_numpy()
    dur = np.log(grid["duration"].to_numpy() / cfg.bar_minutes)
    if cfg.calendar == "session":
        u_shape = cfg.seasonal_amplitude * 3.0 * ((2.0 * phase - 1.0) ** 2 - 1.0 / 3.0)
        auction = cfg.close_auction * grid["last"].to_numpy()
        day = cfg.dow_amplitude * ((dow == 4).astype(float) - (dow == 0).astype(float)) / 2.0
        return u_shape + auction + day + dur
    # smooth daily cycle peaking at 15:00 UTC, quieter weekends
    cycle = cfg.seasonal_amplitude * np.cos(2.0 * np.pi * (phase - 15.0 / 24.0))
    weekend = -cfg.dow_amplitude * (dow >= 5)
    return cycle + weekend + dur


# ----------------------------------------------------------------------------------------------
# Stochastic paths
# ----------------------------------------------------------------------------------------------
def _student_t(rng: np.random.Generator, dof: float, size) -> np.ndarray:
    """Unit-variance Student-t draws."""
    return rng.standard_t(dof, size=size) * np.sqrt((dof - 2.0) / dof)


def _factor_mix(common: np.ndarray, own: np.ndarray, rho: float) -> np.ndarray:
    """``sqrt(rho) * common[:, None] + sqrt(1 - rho) * own``: unit variance, pairwise corr rho."""
    return np.sqrt(rho) * common[:, None] + np.sqrt(1.0 - rho) * own


def _recursions(z: np.ndarray, u: np.ndarray, alpha: float, beta: float, phi: float):
    """GARCH(1,1) variance state ``h`` and AR(1) volume component ``x``, each (T, A).

    ``h_t = (1 - alpha - beta) + alpha h_{t-1} z_{t-1}^2 + beta h_{t-1}`` (unconditional mean 1,
    ``h_0 = 1``); ``x_t = phi x_{t-1} + u_t`` (``x_0`` drawn from the stationary law). The
    recursions are sequential in time: one vectorised step over assets per bar.
    """
    h, x = np.empty_like(z), np.empty_like(u)
    omega = 1.0 - alpha - beta
    h[0] = 1.0
    x[0] = u[0] / np.sqrt(1.0 - phi**2)
    for t in range(1, z.shape[0]):
        h[t] = omega + alpha * h[t - 1] * z[t - 1] ** 2 + beta * h[t - 1]
        x[t] = phi * x[t - 1] + u[t]
    return h, x


def _day_index(grid: pd.DataFrame, cfg: SyntheticMarketConfig) -> np.ndarray:
    """Day of each bar, 0-based: the trading session (sessions) or the UTC calendar day (24/7)."""
    if cfg.calendar == "session":
        return np.cumsum(grid["first"].to_numpy()) - 1
    ns = pd.DatetimeIndex(grid["timestamp"]).as_unit("ns").asi8
    return (ns - ns[0]) // (86_400 * 10**9)


def _day_shocks(grid: pd.DataFrame, cfg: SyntheticMarketConfig, n_assets: int) -> np.ndarray:
    """Day-level log volume shocks ``(T, A)``: one jump per asset and day at a random bar, decaying per bar.

    Drawn from their own stream (seeded by ``cfg.seed``), so the other paths do not depend on them.
    """
    day = _day_index(grid, cfg)
    n_days = int(day[-1]) + 1
    first = np.searchsorted(day, np.arange(n_days))
    length = np.diff(np.r_[first, day.size])
    rng = np.random.default_rng([cfg.seed, 1])
    onset = first[:, None] + np.floor(rng.random((n_days, n_assets)) * length[:, None]).astype(np.int64)
    jumps = np.zeros((day.size, n_assets))
    jumps[onset, np.arange(n_assets)[None, :]] = cfg.volume_shock_sigma * rng.standard_normal((n_days, n_assets))
    shock = np.empty_like(jumps)
    shock[0] = jumps[0]
    for t in range(1, day.size):
        shock[t] = cfg.volume_shock_decay * shock[t - 1] + jumps[t]
    return shock


def _simulate(grid: pd.DataFrame, cfg: SyntheticMarketConfig, rng: np.random.Generator) -> dict:
    """Latent VWAP, OHLC, volume paths, each (T, A)."""
    n, a = len(grid), cfg.n_assets
    dur = grid["duration"].to_numpy() / cfg.bar_minutes
    first = grid["first"].to_numpy()
    if cfg.calendar == "session":
        bars_per_day = (_CLOSE_MIN - _OPEN_MIN) / cfg.bar_minutes
    else:
        bars_per_day = 1440.0 / cfg.bar_minutes
    sigma_bar = cfg.daily_volatility / np.sqrt(bars_per_day)
    scale = dur + cfg.overnight_variance * first  # variance multiplier m_t
    z = _factor_mix(_student_t(rng, cfg.t_dof, n), _student_t(rng, cfg.t_dof, (n, a)), cfg.return_correlation)
    u = _factor_mix(rng.standard_normal(n), rng.standard_normal((n, a)), cfg.volume_correlation)
    h, x = _recursions(z, cfg.ar_sigma * u, cfg.garch_alpha, cfg.garch_beta, cfg.ar_phi)
    s = sigma_bar * np.sqrt(h * scale[:, None])  # per-bar return std [log units]
    r = s * z
    r[0] = 0.0
    log_p = np.log(cfg.initial_price) + rng.uniform(-1.0, 1.0, size=a)[None, :] + np.cumsum(r, axis=0)

    level = np.log(cfg.base_volume) + cfg.asset_volume_dispersion * rng.standard_normal(a)
    log_v = (
        level[None, :]
        + _log_seasonal(grid, cfg)[:, None]
        + x
        + cfg.abs_return_beta * np.abs(z) * np.sqrt(h)
        + cfg.noise_sigma * rng.standard_normal((n, a))
    )
    if cfg.volume_shock_sigma > 0:
        log_v = log_v + _day_shocks(grid, cfg, a)
    intrabar = 0.5 * s
    b = intrabar * rng.standard_normal((n, a))  # log(close / p)
    a_open = intrabar * rng.standard_normal((n, a))  # log(open / p), first bar of a session
    wick_hi = np.abs(intrabar * rng.standard_normal((n, a)))
    wick_lo = np.abs(intrabar * rng.standard_normal((n, a)))
    zvf = cfg.zero_volume_fraction
    zvf = (0.002 if cfg.calendar == "24/7" else 0.0) if zvf is None else zvf
    zero = rng.random((n, a)) < zvf
    zero[0] = False
    lam = np.exp(log_v) / (cfg.trade_size * cfg.base_volume)
    trades = np.where(zero, 0.0, np.maximum(rng.poisson(lam), 1).astype(np.float64))
    return {
        "log_p": log_p, "log_v": log_v, "b": b, "a_open": a_open, "wick_hi": wick_hi,
        "wick_lo": wick_lo, "zero": zero, "first": first, "trades": trades,
    }  # fmt: skip


def _assemble_asset(sim: dict, k: int, cfg: SyntheticMarketConfig) -> dict[str, np.ndarray]:
    """OHLC / volume / notional / price columns of asset ``k`` (vectorised over bars)."""
    zero = sim["zero"][:, k]
    p_latent = np.exp(sim["log_p"][:, k])
    n = p_latent.shape[0]
    idx = np.arange(n)
    last_traded = np.maximum.accumulate(np.where(~zero, idx, 0))
    price = p_latent[last_traded]  # carried forward over zero-volume bars
    close = np.where(zero, np.nan, p_latent * np.exp(sim["b"][:, k]))
    close = close[last_traded]  # flat bars repeat the last traded close
    prev_close = np.r_[close[0], close[:-1]]
    restart = sim["first"] | (idx == 0)
    open_ = np.where(restart, p_latent * np.exp(sim["a_open"][:, k]), prev_close)
    open_ = np.where(zero, prev_close, open_)
    top = np.maximum(np.maximum(open_, close), price)
    bottom = np.minimum(np.minimum(open_, close), price)
    high = np.where(zero, open_, top * np.exp(sim["wick_hi"][:, k]))
    low = np.where(zero, open_, bottom * np.exp(-sim["wick_lo"][:, k]))
    close = np.where(zero, open_, close)
    volume = np.where(zero, 0.0, np.exp(sim["log_v"][:, k]))
    trades = sim["trades"][:, k]
    notional = volume * price
    # price column recomputed as notional / volume (carried forward), exactly as validate_bars does
    price = np.divide(notional, volume, out=np.zeros(n), where=~zero)[last_traded]
    return {
        "open": open_, "high": high, "low": low, "close": close, "volume": volume,
        "notional": notional, "price": price, "trades": trades,
    }  # fmt: skip


def synthetic_market(
    n_assets: int = 3,
    n_days: int = 120,
    bar_minutes: int = 60,
    calendar: str = "24/7",
    seed: int = 0,
    start: str = "2021-01-04",
    **params,
) -> pd.DataFrame:
    """Generate a synthetic market as a canonical bars frame.

    Args:
        n_assets: Number of symbols.
        n_days: Calendar days spanned [days].
        bar_minutes: Bar length [minutes] (divides 1440).
        calendar: ``"24/7"`` or ``"session"`` (NYSE-like, see :class:`SyntheticMarketConfig`).
        seed: Seed; the same arguments always give the identical frame.
        start: First calendar day.
        **params: Any other :class:`SyntheticMarketConfig` field (or ``config=`` a whole
            config, whose fields the explicit arguments above do NOT override).

    Returns:
        The canonical bars frame, sorted by ``(symbol, timestamp)``, RangeIndex. ``price`` is
        ``notional / volume`` carried forward over zero-volume bars; ``notional_estimated`` is
        False (notional is exact).

    Raises:
        ValueError: an invalid parameter (names it).
    """
    config = params.pop("config", None)
    if config is None:
        fields = {f.name for f in dataclasses.fields(SyntheticMarketConfig)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise ValueError(f"synthetic_market: unknown parameter(s) {unknown}")
        config = SyntheticMarketConfig(
            n_assets=n_assets, n_days=n_days, bar_minutes=bar_minutes, calendar=calendar,
            seed=seed, start=start, **params,
        )  # fmt: skip
    elif params:
        raise ValueError("synthetic_market: pass either config= or keyword parameters, not both")
    config.validate()
    rng = np.random.default_rng(config.seed)
    grid = _session_grid(config) if config.calendar == "session" else _continuous_grid(config)
    sim = _simulate(grid, config, rng)
    width = len(str(config.n_assets - 1))
    frames = []
    for k in range(config.n_assets):
        cols = _assemble_asset(sim, k, config)
        frame = pd.DataFrame({"symbol": f"SYN{k:0{width}d}", "timestamp": grid["timestamp"].to_numpy()})
        for c in ("open", "high", "low", "close", "volume", "notional"):
            frame[c] = cols[c].astype(np.float64)
        frame["notional_estimated"] = False
        frame["price"] = cols["price"].astype(np.float64)
        frame["trades"] = cols["trades"].astype(np.float64)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["symbol"] = out["symbol"].astype("str")
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    return out
