"""Write ``benchmarks/results/INDEX.md``: every committed result file with its command, commit, date, CPU seconds
and status (current | superseded, with the reason).

The provenance is read from each file's header where the run recorded it (``- **command**: ...``, ``commit``,
``date``, ``cpu seconds`` from :func:`benchmarks.common.provenance`, or the older ``Command: `...` `` lines and
``(N s CPU`` notes); a ``.json``/``.csv``/``.png`` takes it from the Markdown file of the same run. What a file does
not record is written "not recorded" (the last commit that changed the file is given beside it, from git).
Superseded files are listed in :data:`SUPERSEDED` with the reason (their recipe differs from the current scripts
or library); they stay committed as a record.

Usage (from the repository root)::

    python -m benchmarks.results_index           # rewrite benchmarks/results/INDEX.md
    python -m benchmarks.results_index --check   # exit 1 when INDEX.md is stale
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.common import RESULTS, ROOT

INDEX = RESULTS / "INDEX.md"
_OLD_STRIDE_LOSO = ("trained at the old training strides (equities every 4th origin, now every origin; crypto_1m "
                    "every 8th, now every 4th: `benchmarks/real_data.py` SETUPS); rerun `python -m "
                    "benchmarks.real_data --dataset <set> --holdout <symbol> --minutes 6 --seed 0`")
#: Result files (relative to ``benchmarks/results/``, prefix match on the run's stem) whose recipe differs from the
#: current scripts or library, and why.
SUPERSEDED: dict[str, str] = {
    "rule_thresholds/rule_thresholds": (
        "answers whether a tuned FlexibleRule threshold closes the gap to the model's flexible columns started at "
        "the fixed RULE_THRESHOLD; train() now tunes the rule prior's thresholds on validation before training "
        "(RulePriorTuning), and the run used the old real_data training strides"),
    "tracking_selection/tracking_selection_crypto": (
        "trained at the old crypto training stride (every 2nd origin; real_data now trains on every origin)"),
    "tracking_selection/tracking_selection_crypto_ema": (
        "trained at the old crypto training stride (every 2nd origin; real_data now trains on every origin)"),
    "tracking_selection/tracking_selection_equities": (
        "trained at the old equities training stride (every 4th origin; real_data now trains on every origin)"),
    "tracking_selection/tracking_selection_crypto_1m": (
        "trained at the old crypto_1m training stride (every 8th origin; real_data now trains on every 4th)"),
    "real_data/real_data_equities_holdout_": _OLD_STRIDE_LOSO,
    "real_data/real_data_crypto_1m_holdout_": _OLD_STRIDE_LOSO,
    "loso_summary/leave_one_symbol_out": (
        "its equities and crypto_1m rows come from holdout runs at the old training strides (see those files); "
        "the crypto rows are current"),
}
_COMPANION_SUFFIXES = ("_duration", "_curve")


def _field(text: str, *patterns: str) -> str | None:
    for pattern in patterns:
        match = re.search(pattern, text, flags=re.M)
        if match:
            return match.group(1).strip()
    return None


def _header_of(path: Path) -> dict[str, str | None]:
    """Command, commit, date and CPU seconds recorded in a Markdown result file (None where absent)."""
    text = path.read_text(encoding="utf-8", errors="replace")[:20000]
    command = _field(text, r"^- \*\*command\*\*: `(.+?)`\s*$", r"^- command: `(.+?)`", r"Command: `(.+?)`",
                     r"Each row: `(.+?)`")
    commit = _field(text, r"^- \*\*commit\*\*: (\S+)", r"^- commit: (\w+)")
    date = _field(text, r"^- \*\*date\*\*: (.+)$", r"date \(UTC\): ([\d-]+ [\d:]+)")
    cpu = _field(text, r"^- \*\*cpu seconds\*\*: (\d+)", r"\((\d+) s CPU, all threads\)")
    return {"command": command, "commit": commit, "date": date, "cpu_s": cpu}


def _markdown_of(path: Path) -> Path | None:
    """The Markdown file of the same run as ``path`` (itself for ``.md``)."""
    if path.suffix == ".md":
        return path
    stem = path.stem
    for suffix in _COMPANION_SUFFIXES:
        stem = stem.removesuffix(suffix)
    candidate = path.with_name(f"{stem}.md")
    return candidate if candidate.is_file() else None


def _json_command(path: Path) -> str | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("command")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _last_change(path: Path) -> str:
    """``<short commit> <date>`` of the last commit that changed the file's content (renames followed)."""
    out = subprocess.run(["git", "log", "--follow", "--diff-filter=AM", "-1", "--format=%h %cs", "--",
                          str(path.relative_to(ROOT))], capture_output=True, text=True, cwd=ROOT, check=False)
    return out.stdout.strip() or "uncommitted"


def status_of(relative: str) -> tuple[str, str]:
    """``("current" | "superseded", reason)`` of a result file (``relative`` to the results folder)."""
    stem = relative.rsplit(".", 1)[0]
    for suffix in _COMPANION_SUFFIXES:
        stem = stem.removesuffix(suffix)
    for prefix, reason in SUPERSEDED.items():
        if stem == prefix or (prefix.endswith("_") and stem.startswith(prefix)):
            return "superseded", reason
    return "current", ""


def rows(results: Path = RESULTS) -> list[dict[str, str]]:
    """One row per result file (INDEX.md and README files excluded), sorted by path."""
    out = []
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        relative = path.relative_to(results).as_posix()
        if relative == INDEX.name or path.name == "README.md":
            continue
        markdown = _markdown_of(path)
        head = _header_of(markdown) if markdown else dict.fromkeys(("command", "commit", "date", "cpu_s"))
        command = head["command"] or (_json_command(path) if path.suffix == ".json" else None)
        status, reason = status_of(relative)
        last = _last_change(path)
        out.append({
            "file": relative, "command": f"`{command}`" if command else "not recorded",
            "commit": head["commit"] or f"not recorded (last changed in {last.split(' ')[0]})",
            "date": head["date"] or f"not recorded (committed {last.split(' ')[-1]})",
            "cpu_s": head["cpu_s"] or "not recorded",
            "status": status + (f": {reason}" if reason else ""),
        })
    return out


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def render(results: Path = RESULTS) -> str:
    lines = ["# Benchmark results index", "",
             "Generated by `python -m benchmarks.results_index` from the files' own headers: do not edit by hand. "
             "One folder per script (`benchmarks/results/<script>/`). CPU seconds: process CPU time of the run, all "
             "threads, where the run recorded it. Superseded files stay as a record; their reason says what differs "
             "from the current recipe.", ""]
    by_folder: dict[str, list[dict[str, str]]] = {}
    for row in rows(results):
        by_folder.setdefault(row["file"].split("/")[0], []).append(row)
    for folder, entries in by_folder.items():
        lines += [f"## {folder}", "", "| file | command | commit | date | CPU s | status |", "|---|---|---|---|---:|---|"]
        lines += [f"| [{r['file'].split('/', 1)[-1]}]({r['file'].split('/', 1)[-1]}) | {_cell(r['command'])} | "
                  f"{r['commit']} | {r['date']} | {r['cpu_s']} | {r['status']} |" for r in entries]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when INDEX.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = INDEX.read_text(encoding="utf-8") if INDEX.is_file() else ""
        if current != text:
            print(f"{INDEX} is stale: run python -m benchmarks.results_index", file=sys.stderr)
            return 1
        return 0
    INDEX.write_text(text, encoding="utf-8")
    print(f"wrote {INDEX}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
