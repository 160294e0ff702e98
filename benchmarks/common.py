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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
