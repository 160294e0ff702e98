"""``lems evaluate`` on a streamed symbol universe: test windows scored chunk by chunk (never all in memory), the
held-out symbols scored apart as unseen, and the headline per group (seen / unseen symbols, liquidity tercile).

Used by :mod:`lems.cli`; it reads training's split and evaluation's tables (the same stage).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lems.evaluation.backtest import classical_frame
from lems.evaluation.decomposition import tracking_decomposition, tracking_inputs
from lems.evaluation.page import spread_lines
from lems.evaluation.stats import CLASSICAL_SCHEDULES, TUNED_SCHEDULES, headline_record, headline_table
from lems.policies import classical_schedules, validation_parts
from lems.training.config import TrainConfig
from lems.training.feed import UniverseParts, stream_parts, validation_part

__all__ = [
    "EVAL_CHUNK_WINDOWS",
    "LIQUIDITY_TERCILES",
    "UniverseReport",
    "group_headlines",
    "group_symbols",
    "liquidity_terciles",
    "score_in_chunks",
    "slim_frame",
    "universe_frames",
    "universe_report",
    "write_group_headlines",
]

#: Test windows scored per chunk by ``lems evaluate`` on a streamed universe [windows] (bounds its memory).
EVAL_CHUNK_WINDOWS = 4096
#: Test windows of the seen symbols (evenly thinned per symbol) the tracking decomposition is computed on [windows].
DECOMPOSITION_WINDOWS = 8192
#: Labels of the liquidity terciles, least liquid first.
LIQUIDITY_TERCILES = ("liquidity_low", "liquidity_mid", "liquidity_high")


def score_in_chunks(score: Callable[[Any], pd.DataFrame], part, chunk_windows: int = EVAL_CHUNK_WINDOWS
                    ) -> pd.DataFrame:
    """The backtest frame of a streamed part, built chunk by chunk (:meth:`UniverseWindows.chunks`).

    Args:
        score: ``score(window_set) -> backtest frame`` of one chunk (e.g. the model and the baselines).
        part: A :class:`lems.data.universe.UniverseWindows`.
        chunk_windows: Windows per chunk [windows].

    Returns:
        The chunks' frames concatenated; ``window`` numbers run on across chunks (unique in the part).
    """
    frames, offset = [], 0
    for chunk in part.chunks(int(chunk_windows), bars=True):
        frame = score(chunk)
        frame["window"] = frame["window"].to_numpy() + offset
        offset += len(chunk)
        frames.append(frame)
    if not frames:
        raise ValueError(f"no {part.name} window to evaluate")
    out = pd.concat(frames, ignore_index=True)
    out["asset"] = out["asset"].astype(str).astype("category")
    return out


def slim_frame(frame: pd.DataFrame, fixed_schedules: tuple[str, ...] = (*CLASSICAL_SCHEDULES, *TUNED_SCHEDULES)
               ) -> pd.DataFrame:
    """A chunk's backtest frame as the streamed evaluation keeps it: the flexible (``beat``) rows of the classical
    fixed-duration schedules dropped (the headline compares only their fixed-duration rows; the model's and the
    rule's rows are all kept) and the integer columns narrowed (``window`` int32, bar counts int16). About 2.6x
    less memory per window at H = 12 with the four classical schedules.

    Args:
        frame: A backtest frame (:func:`lems.evaluation.backtest.backtest`).
        fixed_schedules: Policy labels whose flexible rows are dropped.
    """
    drop = frame["policy"].astype(str).isin(fixed_schedules).to_numpy() & (frame["objective"] == "beat").to_numpy()
    out = frame.loc[~drop].reset_index(drop=True)
    if "policy" in out and isinstance(out["policy"].dtype, pd.CategoricalDtype):
        out["policy"] = out["policy"].cat.remove_unused_categories()
    narrow = {"window": np.int32, "min_duration": np.int16, "realised_duration": np.int16, "window_bars": np.int16}
    return out.astype({c: t for c, t in narrow.items() if c in out})


def _bounded(part, max_windows: int | None):
    """``part`` evenly thinned per symbol to at most ``max_windows`` windows (``None``: unchanged)."""
    if max_windows is None or len(part) <= int(max_windows):
        return part
    return part.thin_to(max(int(max_windows), len(part.symbols)))


def _validation_windows(config: TrainConfig, parts: UniverseParts):
    """The validation windows of a streamed universe (at most ``training.max_val_windows``, materialised), or None."""
    val = parts.splits.val
    return validation_part(config, val).to_window_set() if val is not None and len(val) else None


def universe_frames(config: TrainConfig, score: Callable[[Any], pd.DataFrame],
                    chunk_windows: int = EVAL_CHUNK_WINDOWS, parts: UniverseParts | None = None
                    ) -> tuple[dict[str, pd.DataFrame], Any, UniverseParts]:
    """``({"seen": frame, "unseen": frame?}, validation windows or None, parts)`` of the config's universe.

    ``seen`` is the test period of the symbols training saw, ``unseen`` that of the held-out symbols
    (``windows.holdout_symbols``: the list ``lems train`` saved). The validation windows (for fitting the tuned
    classical schedules and choosing the best one) are at most ``training.max_val_windows``, materialised. ``parts``:
    the universe's :func:`lems.training.feed.stream_parts`, when already read.
    """
    parts = stream_parts(config) if parts is None else parts
    frames = _score_parts(score, parts, chunk_windows, config.windows.max_test_windows)
    return frames, _validation_windows(config, parts), parts


def _score_parts(score: Callable[[Any], pd.DataFrame], parts: UniverseParts, chunk_windows: int,
                 max_windows: int | None = None) -> dict[str, pd.DataFrame]:
    """``{"seen": frame, "unseen": frame?}``: the test period of the seen and of the held-out symbols, by chunks,
    each at most ``max_windows`` windows (evenly thinned per symbol), every chunk's frame slimmed
    (:func:`slim_frame`)."""
    def slim_score(chunk):
        return slim_frame(score(chunk))

    frames = {"seen": score_in_chunks(slim_score, _bounded(parts.splits.test, max_windows), chunk_windows)}
    if parts.unseen is not None and len(parts.unseen):
        frames["unseen"] = score_in_chunks(slim_score, _bounded(parts.unseen, max_windows), chunk_windows)
    return frames


def liquidity_terciles(liquidity: Mapping[str, float]) -> dict[str, str]:
    """Symbol -> tercile label (:data:`LIQUIDITY_TERCILES`) by median daily notional over the training period
    (ranks over all symbols of the universe, seen and unseen; ties broken by name)."""
    names = sorted(liquidity, key=lambda s: (liquidity[s], s))
    if not names:
        return {}
    groups = np.array_split(np.arange(len(names)), 3)
    return {names[i]: label for label, rows in zip(LIQUIDITY_TERCILES, groups) for i in rows}


def group_headlines(frames: Mapping[str, pd.DataFrame], liquidity: Mapping[str, float], *,
                    validation: pd.DataFrame | None = None, cluster: str = "day", seed: int = 0
                    ) -> dict[str, dict[str, Any]]:
    """:func:`lems.evaluation.stats.headline_table` per group: ``seen``, ``unseen`` (when present) and each
    liquidity tercile of all scored symbols (groups with no order are left out)."""
    tables = {name: headline_table(frame, validation=validation, cluster=cluster, seed=seed)
              for name, frame in frames.items()}
    terciles = liquidity_terciles(liquidity)
    for label in LIQUIDITY_TERCILES:  # one tercile's rows at a time: never a copy of every frame at once
        names = [symbol for symbol, group in terciles.items() if group == label]
        part = pd.concat([f[f["asset"].isin(names).to_numpy()] for f in frames.values()], ignore_index=True)
        if len(part):
            tables[label] = headline_table(part, validation=validation, cluster=cluster, seed=seed)
    return tables


def write_group_headlines(tables: Mapping[str, Mapping[str, Any]], out: Path, symbols: Mapping[str, list[str]],
                          decomposition: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """``universe_headline.md`` and ``universe_headline.json`` in ``out``: each group's headline and its symbols,
    and the tracking decomposition (key ``"decomposition"``) when given."""
    lines = ["# Headline by symbol group", ""]
    record = {}
    for name, table in tables.items():
        names = symbols.get(name, [])
        lines += [f"## {name} ({len(names)} symbols)", "", *spread_lines(table), ""]
        record[name] = {"symbols": names, **headline_record(table)}
    if decomposition is not None:
        n = int(decomposition["n_windows"].iloc[0]) if len(decomposition) else 0
        columns = ["policy", "spread_bps", "bias_bps", "mean_abs_diff_bps", "share_rms", "price_dispersion_bps",
                   "mean_correlation"]
        lines += ["## Tracking decomposition (fixed-duration VWAP buy order)", "",
                  f"On a sample of {n} test windows of the seen symbols (evenly thinned per symbol); bps except "
                  "share_rms [fraction of the order per bar].", "",
                  *_markdown(decomposition[columns]), ""]
        record["decomposition"] = decomposition.to_dict(orient="records")
    md, js = out / "universe_headline.md", out / "universe_headline.json"
    md.write_text("\n".join(lines), encoding="utf-8")
    js.write_text(json.dumps(record, indent=2, default=_plain), encoding="utf-8")
    return md, js


def _markdown(table: pd.DataFrame) -> list[str]:
    """A small Markdown table (numbers with 4 significant digits)."""
    cells = [[f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v) for v in row]
             for row in table.itertuples(index=False)]
    return ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns),
            *("| " + " | ".join(row) + " |" for row in cells)]


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def group_symbols(parts: UniverseParts) -> dict[str, list[str]]:
    """Group name -> its symbols, sorted: ``seen``, ``unseen`` and the liquidity terciles of all of them."""
    seen = sorted(parts.splits.test.symbols)
    groups: dict[str, list[str]] = {"seen": seen, "unseen": sorted(parts.holdout)}
    chosen = {s: parts.liquidity.get(s, 0.0) for s in [*seen, *parts.holdout]}
    for name, label in sorted(liquidity_terciles(chosen).items()):
        groups.setdefault(label, []).append(name)
    return groups


class UniverseReport(NamedTuple):
    """What :func:`universe_report` returns.

    Attributes:
        frame: Backtest frame of every scored order, column ``symbols`` = ``"seen"`` or ``"unseen"``.
        frames: The same per group (``seen``, ``unseen`` when symbols were held out).
        validation: Backtest frame of the classical schedules (the tuned ones fitted there) on the validation
            windows, or None.
        tables: :func:`group_headlines`.
        symbols: :func:`group_symbols`.
        decomposition: :func:`decomposition_table` on a thinned sample of the seen symbols' test windows, or
            None without policies.
    """

    frame: pd.DataFrame
    frames: dict[str, pd.DataFrame]
    validation: pd.DataFrame | None
    tables: dict[str, dict[str, Any]]
    symbols: dict[str, list[str]]
    decomposition: pd.DataFrame | None = None


def universe_report(config: TrainConfig, score: Callable[[Any, Mapping[str, Any]], pd.DataFrame], *,
                    cluster: str = "day", seed: int = 0, chunk_windows: int = EVAL_CHUNK_WINDOWS,
                    policies: Mapping[str, Any] | None = None,
                    decomposition_windows: int = DECOMPOSITION_WINDOWS) -> UniverseReport:
    """Score a streamed universe's test period chunk by chunk and build the headline per symbol group.

    The validation windows come first: the classical fixed-duration schedules are fitted on them
    (:func:`lems.policies.classical_schedules`: TWAP, the static curve, and with validation windows the static tilt
    and the dynamic VWAP schedule) and backtested there (:attr:`UniverseReport.validation`, the frame the best one
    is chosen on); then every test chunk is scored with those fitted schedules.

    Args:
        config: Settings (a streamed universe; ``windows.holdout_symbols`` names the unseen symbols).
        score: ``score(window_set, schedules) -> backtest frame`` of one chunk: the model, the classical
            ``schedules`` (label -> fitted policy) and the flexible rule.
        cluster, seed: As :func:`lems.evaluation.stats.headline_table`.
        chunk_windows: Test windows per chunk [windows].
        policies: Label -> policy for the tracking decomposition besides the classical schedules (e.g. the model);
            ``None``: no decomposition. The decomposition covers these, then the fitted classical schedules.
        decomposition_windows: At most this many seen test windows for the decomposition [windows].
    """
    parts = stream_parts(config)
    val_windows = _validation_windows(config, parts)
    schedules = classical_schedules(val_windows)
    limits = config.limits
    validation = classical_frame(schedules, validation_parts(val_windows)[1], min_rate=limits.min_rate,
                                 max_rate=limits.max_rate)  # the best one is chosen on the part not fitted on
    validation = None if validation is None else slim_frame(validation)  # chosen on fixed-duration orders only
    frames = _score_parts(lambda chunk: score(chunk, schedules), parts, chunk_windows,
                          config.windows.max_test_windows)
    frame = pd.concat([f.assign(symbols=name) for name, f in frames.items()], ignore_index=True)
    frame["asset"] = frame["asset"].astype(str).astype("category")
    tables = group_headlines(frames, parts.liquidity, validation=validation, cluster=cluster, seed=seed)
    decomposition = None
    if policies is not None:
        sample = parts.splits.test.thin_to(max(int(decomposition_windows), len(parts.splits.test.symbols)))
        decomposition = decomposition_table({**policies, **schedules}, sample.to_window_set(), limits.min_rate,
                                            limits.max_rate)
    return UniverseReport(frame, frames, validation, tables, group_symbols(parts), decomposition)


def decomposition_table(policies: Mapping[str, Any], windows, min_rate: float, max_rate: float) -> pd.DataFrame:
    """The tracking decomposition (:func:`lems.evaluation.decomposition.tracking_decomposition`) of each policy's
    fixed-duration VWAP buy order on ``windows``: one row per policy with ``n_windows``, ``spread_bps``,
    ``bias_bps``, ``mean_abs_diff_bps``, ``share_rms`` [fraction of the order], ``price_dispersion_bps`` and
    ``mean_correlation`` (the summary's other numbers too)."""
    rows = []
    for name, policy in policies.items():
        inputs = tracking_inputs(policy, windows, side="buy", min_rate=min_rate, max_rate=max_rate)
        rows.append({"policy": name, **tracking_decomposition(inputs.x, inputs.w, inputs.d).summary()})
    return pd.DataFrame(rows)
