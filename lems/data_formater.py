"""The seed's data API (module name kept, misspelling included): wide panels -> model arrays.

Built on :func:`lems.data.loaders.bars_from_wide`, :func:`lems.data.windows.make_windows` and
:meth:`lems.data.windows.WindowSet.split` (docs/execution.md §3, §5): windows run over actual bars,
are normalised from their lookback only, and the train/test split is purged so that no
training horizon crosses the split date.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lems.data.features import N_KNOWN_AHEAD
from lems.data.windows import WindowSet, make_windows, rate_arrays

__all__ = [
    "add_config_to_X",
    "add_config_to_y",
    "full_generate",
    "full_generate_windows",
    "prepare_data_with_ahead_inputs",
]

_TEST_FRACTION = 0.2  # share of origins in the test set when split_date is None


def full_generate_windows(
    volumes_df: pd.DataFrame,
    notionals_df: pd.DataFrame,
    target_asset: str | list[str],
    lookback: int,
    n_ahead: int,
    *,
    freq_min: float = 60,
    tz: str = "UTC",
    index_tz: str = "UTC",
    prices_df: pd.DataFrame | None = None,
    **window_kwargs,
) -> WindowSet:
    """Windows of the target asset(s) from the seed's wide panels.

    Args:
        volumes_df: Wide volumes (DatetimeIndex of bar opens x assets) [shares / coins].
        notionals_df: Wide notionals, same shape [quote currency].
        target_asset: One asset name, or a list of names (multi-asset windows).
        lookback: Lookback length [bars].
        n_ahead: Horizon ``H`` [bars].
        freq_min: Expected bar length [minutes]; must match the modal spacing of the index.
        tz: Local time zone of the calendar features (``"America/New_York"`` for US equities).
        index_tz: Zone of a naive ``DatetimeIndex`` (ignored when the index is tz-aware).
        prices_df: Optional wide prices used as open = high = low = close.
        **window_kwargs: Passed to :func:`lems.data.windows.make_windows` (``stride``,
            ``n_days_profile``, ``min_history``, ``start``, ``end``).

    Returns:
        The :class:`~lems.data.windows.WindowSet` of the target asset(s).

    Raises:
        ValueError: unknown asset, spacing different from ``freq_min``, invalid panels.
    """
    from lems.data.loaders import bars_from_wide

    assets = [target_asset] if isinstance(target_asset, str) else list(target_asset)
    if not assets:
        raise ValueError("target_asset must name at least one asset")
    missing = [a for a in assets if a not in volumes_df.columns or a not in notionals_df.columns]
    if missing:
        raise ValueError(f"target_asset(s) {missing} not in the columns of volumes_df/notionals_df")
    _check_frequency(volumes_df.index, freq_min)
    naive = getattr(volumes_df.index, "tz", None) is None
    prices = None if prices_df is None else prices_df[assets]
    bars = bars_from_wide(
        volumes_df[assets], notionals_df[assets], prices, tz=index_tz if naive else None
    )
    return make_windows(bars, lookback, n_ahead, tz=tz, bar_minutes=float(freq_min), **window_kwargs)


def _check_frequency(index: pd.Index, freq_min: float) -> None:
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"volumes_df must have a DatetimeIndex, got {type(index).__name__}")
    ns = index.as_unit("ns").asi8
    gaps = np.diff(np.sort(ns))
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        raise ValueError("volumes_df needs at least two distinct timestamps")
    values, counts = np.unique(gaps, return_counts=True)
    spacing = values[np.argmax(counts)] / 6e10
    if not np.isclose(spacing, float(freq_min)):
        raise ValueError(
            f"freq_min={freq_min} does not match the data: bars are spaced {spacing:g} minutes apart"
        )


def full_generate(
    volumes_df: pd.DataFrame,
    notionals_df: pd.DataFrame,
    target_asset: str | list[str],
    lookback: int,
    n_ahead: int,
    split_date=None,
    freq_min: float = 60,
    tz: str = "UTC",
    val_split_date=None,
    *,
    split_dates: bool = False,
    **kwargs,
):
    """Seed API: train/test arrays from wide volume and notional panels.

    Args:
        volumes_df: Wide volumes (DatetimeIndex of bar opens x assets) [shares / coins].
        notionals_df: Wide notionals, same shape [quote currency].
        target_asset: Asset name, or list of names (multi-asset samples, ordered by origin).
        lookback: Lookback length [bars].
        n_ahead: Horizon ``H`` [bars].
        split_date: Start of the test set. Train keeps windows whose last horizon bar starts
            before it (purged); test keeps origins at or after it. ``None`` -> the last 20% of
            origins (by time) are the test set, with the same purging.
        freq_min: Expected bar length [minutes] (checked against the data).
        tz: Local time zone of the calendar features.
        val_split_date: Optional end of validation: then train ends at ``split_date``,
            validation covers ``[split_date, val_split_date)`` and test starts at
            ``val_split_date`` (``split_date`` is required).
        split_dates: ``False`` (the seed's form): ``dates`` is ONE index of sample origins,
            train then (val then) test, so ``dates[len(X_train):]`` are the test origins.
            ``True``: a tuple ``(dates_train, dates_test)`` (or three with ``val_split_date``).
        **kwargs: Passed to :func:`full_generate_windows` (``index_tz``, ``prices_df``,
            ``stride``, ``n_days_profile``, ``min_history``).

    Returns:
        ``X_train, X_test, y_train, y_test, dates`` with ``X`` float32
        ``(N, lookback + n_ahead - 1, F)``, compact ``y`` float32 ``(N, n_ahead, 2)`` and
        ``dates`` the origin time ``t0`` (open of the first horizon bar) of every sample, a
        ``DatetimeIndex`` aligned with the rows: ``dates[i]`` is the origin of
        ``np.concatenate([X_train, X_test])[i]``. Times are expressed like
        ``volumes_df.index`` (same zone; naive when it is naive), so ``volumes_df.loc[dates[i]]``
        is the origin bar. With ``val_split_date``: ``X_train, X_val, X_test, y_train, y_val,
        y_test, dates``.

    Raises:
        ValueError: see :func:`full_generate_windows`; no window at all.
    """
    ws = full_generate_windows(
        volumes_df, notionals_df, target_asset, lookback, n_ahead, freq_min=freq_min, tz=tz, **kwargs
    )
    if len(ws) == 0:
        raise ValueError("full_generate: no valid window (data shorter than lookback + n_ahead?)")
    if val_split_date is not None:
        if split_date is None:
            raise ValueError("val_split_date needs split_date (the end of training)")
        parts = ws.split(split_date, val_split_date)
    else:
        if split_date is None:
            origins = np.unique(ws.origin.as_unit("ns").asi8)
            cut = origins[int(np.floor(origins.size * (1.0 - _TEST_FRACTION)))]
            split_date = pd.Timestamp(cut, tz="UTC")
        parts = ws.split(split_date)
    index_tz = kwargs.get("index_tz", "UTC")
    dates = [_dates_like(p.origin, volumes_df.index, index_tz) for p in parts]
    xs, ys = [p.X for p in parts], [p.y for p in parts]
    return (*xs, *ys, tuple(dates) if split_dates else dates[0].append(dates[1:]))


def _dates_like(origin: pd.DatetimeIndex, index: pd.DatetimeIndex, index_tz: str) -> pd.DatetimeIndex:
    """UTC origins expressed like the user's panel index (its zone, or naive in ``index_tz``)."""
    zone = getattr(index, "tz", None)
    out = origin.tz_convert(index_tz).tz_localize(None) if zone is None else origin.tz_convert(zone)
    return out.rename("origin")


def add_config_to_X(
    X: np.ndarray,
    minimum_traded_per_period: float | np.ndarray | list[float] = 0.0,
    maximum_traded_per_period: float | np.ndarray | list[float] = 1.0,
    n_ahead: int | None = None,
) -> list[np.ndarray]:
    """Seed API: model inputs ``[X, min_rate, max_rate]``.

    Limits come in three forms: a scalar (every sample), an ``(N,)`` numpy array (one limit
    per sample), or a list / tuple of scalars, one per (min, max) *configuration*: ``X`` is
    then replicated once per configuration, configuration-major (all ``N`` samples with
    configuration 0, then all with configuration 1, ...), ``K x N`` rows for ``K``
    configurations. Replicate the targets the same way with
    ``add_config_to_y(y, minimum_traded_per_period, maximum_traded_per_period)``.

    Args:
        X: Features ``(N, L, F)``.
        minimum_traded_per_period: Minimum fraction of the order per bar: scalar, ``(N,)``
            array, or list / tuple with one scalar per configuration.
        maximum_traded_per_period: Maximum fraction of the order per bar, same forms. With a
            list on one side, the other side is a scalar (shared by every configuration) or a
            list of the same length.
        n_ahead: Horizon ``H`` [bars]; when given, ``H * max_rate >= 1`` is enforced (``H``
            cannot be derived from ``X`` alone).

    Returns:
        ``[X, min_rate, max_rate]`` with float32 ``(N, 1)`` rate arrays, or, for ``K``
        configurations, ``[X`` stacked ``K`` times ``(K*N, L, F), min_rate, max_rate]`` with
        ``(K*N, 1)`` rate arrays.

    Raises:
        ValueError: infeasible rates (negative, ``min > max``, ``max`` outside ``(0, 1]``,
            ``H * max < 1``; for lists, the message names the configuration), lists of
            different lengths, or ``X`` not 3-D.
    """
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"X must be 3-D (N, L, F), got shape {X.shape}")
    configs = _configurations(minimum_traded_per_period, maximum_traded_per_period)
    if configs is None:
        lo, hi = rate_arrays(X.shape[0], minimum_traded_per_period, maximum_traded_per_period, n_ahead)
        return [X, lo, hi]
    los, his = [], []
    for k, (lo_k, hi_k) in enumerate(configs):
        try:
            lo, hi = rate_arrays(X.shape[0], lo_k, hi_k, n_ahead)
        except ValueError as exc:
            raise ValueError(f"configuration {k} (min_rate {lo_k:g}, max_rate {hi_k:g}): {exc}") from exc
        los.append(lo)
        his.append(hi)
    return [np.concatenate([X] * len(configs)), np.concatenate(los), np.concatenate(his)]


def _configurations(min_rate, max_rate) -> list[tuple[float, float]] | None:
    """``[(min, max), ...]`` when either limit is a list / tuple (one per configuration), else ``None``."""
    lists = [isinstance(v, (list, tuple)) for v in (min_rate, max_rate)]
    if not any(lists):
        return None
    sizes = {len(v) for v, is_list in zip((min_rate, max_rate), lists) if is_list}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            "lists of limits give one (min, max) configuration per entry: both lists must be "
            f"non-empty and of the same length, got {min_rate!r} and {max_rate!r}"
        )
    k = sizes.pop()
    columns = []
    for name, value, is_list in (
        ("minimum_traded_per_period", min_rate, lists[0]),
        ("maximum_traded_per_period", max_rate, lists[1]),
    ):
        items = list(value) if is_list else [value] * k
        if not all(np.ndim(v) == 0 for v in items):
            raise ValueError(
                f"{name}: a list holds one scalar per configuration and the "
                "other limit must then be a scalar or a list; pass numpy arrays of shape (N,) "
                "for per-sample limits"
            )
        columns.append([float(v) for v in items])
    return list(zip(*columns))


def add_config_to_y(
    y: np.ndarray,
    minimum_traded_per_period=None,
    maximum_traded_per_period=None,
    *,
    n_configs: int | None = None,
    tile: bool = True,
) -> np.ndarray:
    """Seed API: tile compact targets to the seed's ``(N, H, H+1, 4, 2)`` layout.

    The compact form ``(N, H, 2)`` is preferred (the loss broadcasts it); this tiled copy is
    ``H + 1`` x 4 times larger and exists for seed compatibility. Last axis: ``[volume share,
    price relative]``; axis 3 = order type (buy-VWAP, buy-TWAP, sell-VWAP, sell-TWAP). For the
    TWAP order types (1 and 3) the volume channel is set to 1 (the seed's convention: TWAP is
    a VWAP whose volumes are all equal).

    To line up with ``add_config_to_X(X, mins, maxs)`` for lists of ``K`` configurations, pass
    the same limits (or ``n_configs=K``): the targets are then replicated ``K`` times in the
    same configuration-major order, ``K x N`` rows.

    Args:
        y: Compact targets ``(N, H, 2)``.
        minimum_traded_per_period: Optional, the limits given to :func:`add_config_to_X`;
            only their number of configurations is used (lists / tuples: their length;
            scalars and per-sample arrays: 1).
        maximum_traded_per_period: Same, for the maximum.
        n_configs: Number of configurations ``K`` (instead of, or checked against, the limits).
        tile: ``False`` keeps the compact ``(K*N, H, 2)`` form (replicated only), which
            :func:`lems.loss.lem_loss` broadcasts at ``4 (H + 1)`` times less memory.

    Returns:
        float32 array ``(K*N, H, H + 1, 4, 2)`` (``K = 1`` by default), or ``(K*N, H, 2)``
        when ``tile=False``.

    Raises:
        ValueError: ``y`` not shaped ``(N, H, 2)``; ``n_configs`` < 1 or different from the
            number of configurations in the limits.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 3 or y.shape[-1] != 2:
        raise ValueError(f"y must be compact (N, H, 2), got shape {y.shape}")
    k = _n_configs(minimum_traded_per_period, maximum_traded_per_period, n_configs)
    if not tile:
        return np.concatenate([y] * k)
    n, h, _ = y.shape
    out = np.broadcast_to(y[:, :, None, None, :], (n, h, h + 1, 4, 2)).copy()
    out[:, :, :, [1, 3], 0] = 1.0
    return out if k == 1 else np.concatenate([out] * k)


def _n_configs(min_rate, max_rate, n_configs: int | None) -> int:
    configs = _configurations(min_rate, max_rate)
    from_limits = None if configs is None else len(configs)
    if n_configs is None:
        return from_limits or 1
    if isinstance(n_configs, bool) or not isinstance(n_configs, (int, np.integer)) or n_configs < 1:
        raise ValueError(f"n_configs must be a positive integer, got {n_configs!r}")
    if from_limits is not None and from_limits != n_configs:
        raise ValueError(f"n_configs={n_configs} but the limits hold {from_limits} configurations")
    return int(n_configs)


def prepare_data_with_ahead_inputs(
    X: np.ndarray, n_ahead: int | None = None, n_known: int = N_KNOWN_AHEAD
) -> tuple[np.ndarray, np.ndarray]:
    """Seed API name: split ``X`` into its observed and known-ahead channel groups.

    Args:
        X: Features ``(N, L, F)`` (observed channels first, the last ``n_known`` known ahead).
        n_ahead: Optional horizon ``H``; when given, ``L >= H`` is checked.
        n_known: Number of known-ahead channels (the last ones).

    Returns:
        ``(X_observed, X_known_ahead)``: views ``X[..., :F - n_known]`` and
        ``X[..., F - n_known:]``.

    Raises:
        ValueError: ``X`` not 3-D, too few channels or positions.
    """
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"X must be 3-D (N, L, F), got shape {X.shape}")
    if not 0 <= n_known < X.shape[-1]:
        raise ValueError(f"n_known={n_known} must be in [0, F) with F={X.shape[-1]}")
    if n_ahead is not None and X.shape[1] < int(n_ahead):
        raise ValueError(f"X has {X.shape[1]} positions, fewer than n_ahead={n_ahead}")
    f = X.shape[-1] - n_known
    return X[..., :f], X[..., f:]
