"""Backtest frames as the evaluation reads them: validated, with canonical categoricals (one place for every
table, figure and page of :mod:`lems.evaluation`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lems.evaluation.backtest import _COSTED_ONLY
from lems.execution import BENCHMARKS, OBJECTIVES, SIDES, TARGETS

__all__ = ["read_frames"]

_ORDER_KEYS = ["window", "asset", "origin", "side", "target", "benchmark", "min_duration", "objective"]
_CATEGORIES = {"side": SIDES, "benchmark": BENCHMARKS, "target": TARGETS, "objective": OBJECTIVES}
_NEEDED = ("policy", "window", "asset", "origin", "side", "target", "benchmark", "min_duration", "objective",
           "improvement_bps", "tracking_error_bps")


def _categorical(values: pd.Series, name: str, allowed: Sequence[str] | None = None,
                 lower: bool = False) -> pd.Categorical:
    """``values`` as a categorical of string labels, working on codes (fast on millions of rows).

    With ``allowed``: exactly those categories, in that order (unknown labels are an error). Without: the used
    labels, in category order for a categorical input, else in order of first appearance.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = values.cat.codes.to_numpy(), values.cat.categories
    else:
        codes, uniques = pd.factorize(values, sort=False)
    if codes.size and codes.min() < 0:
        raise ValueError(f"column {name!r} has missing values")
    labels = [str(u).lower() if lower else str(u) for u in uniques]
    used = np.bincount(codes, minlength=len(labels)) > 0
    used_labels = [label for label, u in zip(labels, used) if u]
    if allowed is None:
        categories = list(dict.fromkeys(used_labels))
    else:
        unknown = sorted(set(used_labels) - set(allowed))
        if unknown:
            raise ValueError(f"column {name!r} has unknown value(s) {unknown}; expected {list(allowed)}")
        categories = list(allowed)
    position = {c: i for i, c in enumerate(categories)}
    mapping = np.array([position.get(label, -1) for label in labels] or [-1], dtype=np.int64)
    return pd.Categorical.from_codes(mapping[codes], categories=categories)


def _prepare(frame: pd.DataFrame | Sequence[pd.DataFrame]) -> pd.DataFrame:
    """A validated backtest frame with canonical categoricals (policy order = category order, or order of
    appearance), UTC origins and float64 metrics. The input is not modified.

    Raises:
        ValueError: no rows, missing columns, unknown categories, non-finite numbers.
    """
    if not isinstance(frame, pd.DataFrame):
        frames = list(frame)
        if not frames:
            raise ValueError("no backtest frame given")
        frame = pd.concat(frames, ignore_index=True)
    missing = [c for c in _NEEDED if c not in frame.columns]
    if missing:
        raise ValueError(f"not a backtest frame: missing column(s) {missing}")
    if len(frame) == 0:
        raise ValueError("the backtest frame has no rows")
    out = frame.copy(deep=False)
    out["policy"] = _categorical(out["policy"], "policy")
    out["asset"] = _categorical(out["asset"], "asset")
    for col, cats in _CATEGORIES.items():
        out[col] = _categorical(out[col], col, allowed=cats, lower=True)
    origin = out["origin"]
    if isinstance(origin.dtype, pd.DatetimeTZDtype):
        out["origin"] = origin.dt.tz_convert("UTC")
    else:
        try:
            out["origin"] = pd.to_datetime(origin, utc=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"column 'origin' holds values that are not times ({exc})") from None
    for col in ("window", "min_duration"):
        values = pd.to_numeric(out[col], errors="coerce").to_numpy(np.float64)
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise ValueError(f"column {col!r} must hold whole numbers")
        out[col] = values.astype(np.int64)
    for col in ("improvement_bps", "tracking_error_bps"):
        values = pd.to_numeric(out[col], errors="coerce").to_numpy(np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"column {col!r} contains NaN or inf")
        out[col] = values
    return out


def read_frames(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Read backtest frames written as Parquet (``.parquet``/``.pq``) or CSV and concatenate them.

    Raises:
        ValueError: a missing or unreadable file, or a file that is not a backtest frame.
    """
    frames = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ValueError(f"frame file not found: {path}")
        try:
            if path.suffix.lower() in (".parquet", ".pq"):
                frames.append(pd.read_parquet(path))
            else:
                frames.append(pd.read_csv(path))
        except Exception as exc:  # pyarrow / parser errors of many kinds
            raise ValueError(f"unreadable frame file {path}: {str(exc).splitlines()[0]}") from None
        try:
            frames[-1] = _prepare(frames[-1])
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return _prepare(frames)


def _prepare_costed(costed: pd.DataFrame | Sequence[pd.DataFrame]) -> pd.DataFrame:
    """A validated costed frame (see :func:`_prepare`), with its TCA columns as float64."""
    out = _prepare(costed)
    if "fee_bps" not in out.columns and "impact_bps" in out.columns:
        out["fee_bps"] = 0.0  # a frame written before fees were a part of the shortfall: it charged none
    missing = [c for c in _COSTED_ONLY if c not in out.columns]
    if missing:
        raise ValueError(f"not a costed backtest frame (lems.evaluation.backtest.costed_backtest): missing column(s) {missing}")
    for col in _COSTED_ONLY:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(np.float64)
    if out["order_size"].isna().any():
        raise ValueError("a costed frame has rows without order_size")
    return out
