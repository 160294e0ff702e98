"""What the benchmark scripts share: paths, provenance of result files, and small table helpers.

Every script under ``benchmarks/`` imports only :mod:`lems` and this module, and runs from the repository root as
``python -m benchmarks.<script> ...`` (no ``sys.path`` edits). ``benchmarks/reference_runner.py`` is the one
exception: it runs in a separate virtual environment with the reference package installed (see its comment).

Result files live in ``benchmarks/results/<script>/``; :func:`provenance` gives the header lines every new result
file starts with (command, commit, date, process CPU seconds), which ``python -m benchmarks.results_index`` reads
back into ``benchmarks/results/INDEX.md``.
"""

from __future__ import annotations

import datetime as _dt
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lems.data.loaders import read_bars
from lems.data.windows import make_windows

#: The repository root.
ROOT = Path(__file__).resolve().parents[1]
#: Where result files live: one folder per script (``RESULTS / "<script>"``).
RESULTS = ROOT / "benchmarks" / "results"
#: The real market data (never part of the repository): ``../shared/data`` next to the checkout, or the first
#: ``shared/data`` folder above it (worktrees).
DEFAULT_DATA = next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
                    ROOT.parent / "shared" / "data")


def results_dir(script: str) -> Path:
    """``benchmarks/results/<script>/`` (created)."""
    folder = RESULTS / script
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --------------------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------------------
def command_line(script: str, argv: list[str] | None = None) -> str:
    """The command that reproduces this run: ``python -m benchmarks.<script> <args>`` (shell-quoted)."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join([f"python -m benchmarks.{script}", *(shlex.quote(str(a)) for a in args)])


def git_commit() -> str:
    """Short commit of the checkout (``+dirty`` when ``lems/`` or ``benchmarks/`` has uncommitted changes), or
    ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "lems", "benchmarks"], capture_output=True,
                               text=True, cwd=ROOT, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def utc_now() -> str:
    """The current UTC time, ``YYYY-MM-DD HH:MM UTC``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def cpu_seconds() -> float:
    """CPU seconds of this process so far, all threads (:func:`time.process_time`): the budget measure of the
    benchmarks (wall clock on a shared machine depends on the other jobs)."""
    return time.process_time()


def provenance(command: str, cpu_s: float | None = None) -> list[str]:
    """The header lines of a result file: command, commit, date and process CPU seconds (Markdown bullets).

    Args:
        command: what reproduces the file (:func:`command_line`).
        cpu_s: process CPU seconds the run took (default: :func:`cpu_seconds` now, i.e. since the process start).
    """
    return [f"- **command**: `{command}`", *(f"- **{k}**: {v}" for k, v in provenance_fields(cpu_s).items())]


def provenance_fields(cpu_s: float | None = None) -> dict[str, str]:
    """Commit, date and process CPU seconds as ``{label: value}`` (for scripts that write a ``- **label**: value``
    header from a dict; the same labels as :func:`provenance`)."""
    cpu_s = cpu_seconds() if cpu_s is None else cpu_s
    return {"commit": git_commit(), "date": utc_now(), "cpu seconds": f"{cpu_s:.0f} (process CPU time, all threads)"}


def provenance_fields_md(cpu_s: float | None = None) -> list[str]:
    """:func:`provenance_fields` as Markdown bullets (for files whose command line is written separately)."""
    return [f"- **{k}**: {v}" for k, v in provenance_fields(cpu_s).items()]


def write_result(path: Path, title: str, command: str, body: list[str] | str, cpu_s: float | None = None) -> Path:
    """Write a Markdown result file: ``# title``, the :func:`provenance` lines, then ``body``."""
    text = body if isinstance(body, str) else "\n".join(body)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([f"# {title}", "", *provenance(command, cpu_s), "", text.rstrip(), ""]))
    return path


# --------------------------------------------------------------------------------------------------------
# Windows and tables
# --------------------------------------------------------------------------------------------------------
def thin(windows, stride: int):
    """Every ``stride``-th origin of each asset (by bar index), all assets together."""
    if stride <= 1:
        return windows
    return windows.subset(np.asarray(windows.origin_index) % stride == 0)


def span(windows) -> str:
    """``first origin .. last horizon bar`` (UTC) of a WindowSet."""
    if len(windows) == 0:
        return "(empty)"
    return f"{windows.origin.min():%Y-%m-%d %H:%M} .. {windows.horizon_end.max():%Y-%m-%d %H:%M} UTC"


def md_table(df: pd.DataFrame, digits: int = 2) -> str:
    """A DataFrame (index included) as a Markdown table."""
    df = df.reset_index()
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"

    def cell(v: Any) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (float, np.floating)):
            return "" if not np.isfinite(v) else f"{v:.{digits}f}"
        return str(v)

    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


#: Calendar days of bars read before the validation start: the static curve's 20 past days of each slot and the
#: lookback (sessions: 20 trading days are about 28 calendar days).
HISTORY_DAYS = 35


@dataclass(frozen=True)
class BarSet:
    """One real data set as the benchmarks split it: files (or a universe folder), horizon, splits (validation
    start, test start), origin stride."""

    name: str
    folder: str
    symbols: tuple[str, ...] | None  # None: every file of the folder (a universe)
    tz: str
    n_ahead: int
    lookback: int
    val_start: str
    test_start: str
    stride: int = 1
    end: str | None = None
    symbol_step: int = 1  # every symbol_step-th file of a universe folder in sorted order (1: all)


BAR_SETS: dict[str, BarSet] = {
    "crypto_1h": BarSet("crypto_1h", "crypto_1h", ("BTCUSDT", "ETHUSDT"), "UTC", 12, 48,
                              "2020-07-01", "2021-01-01"),
    "equities_1h": BarSet("equities_1h", "equities_1h", ("SPY", "AAPL", "IBM", "AIG", "BAC"),
                                "America/New_York", 7, 35, "2016-01-01", "2018-01-01"),
    "crypto_1m": BarSet("crypto_1m", "crypto_1m", ("ALGOUSDT", "DOTUSDT", "LINKUSDT", "LTCUSDT"), "UTC", 30,
                              60, "2026-02-16", "2026-02-21", stride=5),
    "binance_5m_2024": BarSet("binance_5m_2024", "binance_5m_2024", None, "UTC", 12, 48, "2024-07-01",
                                    "2024-08-01", stride=6),
    "binance_1h_2021_2023": BarSet("binance_1h_2021_2023", "binance_1h_2021_2023", None, "UTC", 12, 48,
                                         "2023-01-01", "2023-07-01", stride=2),
}


def set_files(data: Path, spec: BarSet) -> list[Path]:
    """The data set's files (every ``.zip``/``.csv`` of a universe folder)."""
    folder = data / spec.folder
    if spec.symbols is not None:
        return [folder / f"{s}.csv" for s in spec.symbols]
    files = sorted(p for p in folder.iterdir() if p.suffix in (".zip", ".csv") and p.is_file())
    return files[::spec.symbol_step]


def set_windows(data: Path, spec: BarSet):
    """Validation and test windows of the whole set: ``(val, test)``; bars before ``val_start - HISTORY_DAYS`` are
    dropped after reading (they feed neither split)."""
    bars = read_bars([str(p) for p in set_files(data, spec)])
    first = pd.Timestamp(spec.val_start, tz="UTC") - pd.Timedelta(days=HISTORY_DAYS)
    bars = bars[bars["timestamp"] >= first]
    windows = make_windows(bars, spec.lookback, spec.n_ahead, tz=spec.tz, stride=spec.stride, start=spec.val_start,
                           end=spec.end)
    _, val, test = windows.split(spec.val_start, spec.test_start)
    return val, test
