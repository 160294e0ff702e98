"""The README's results block is generated from the committed results files (benchmarks/render_readme.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def render_readme():
    spec = importlib.util.spec_from_file_location("render_readme", ROOT / "benchmarks" / "render_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_block_equals_rendering_of_committed_results(render_readme):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = render_readme.render(RESULTS)
    assert block in text, "README results block is stale: run python benchmarks/render_readme.py"
    assert render_readme.replace_block(text, block) == text


def _row(block: str, start: str) -> str:
    rows = [line for line in block.splitlines() if line.startswith(start)]
    assert len(rows) == 1, f"expected one row starting with {start!r}"
    return rows[0]


def test_significance_follows_the_interval_in_the_files(render_readme, tmp_path):
    for path in [*RESULTS.rglob("*.json"), *RESULTS.rglob("costs_*.csv")]:  # every input of the README block
        shutil.copy(path, tmp_path)
    path = tmp_path / "real_data_equities.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    for low, high, stored_flag, expect_ns in ((-0.08, 0.23, True, True), (0.01, 0.23, False, False)):
        # the stored "significant" flag contradicts the interval: only the interval may decide
        summary["flexible_vs_rule"]["vwap"].update(ci_low=low, ci_high=high, significant=stored_flag)
        path.write_text(json.dumps(summary), encoding="utf-8")
        cells = _row(render_readme.render(tmp_path), "| SPY").split(" | ")
        flex_vwap = next(c for c in cells if "flexible rule" in c)  # the first flexible cell: vs VWAP
        flex_vwap = flex_vwap.split("; minus rule")[0]  # pooled over sides (the per-side intervals follow)
        assert f"[{low:+.2f}, {high:+.2f}]" in flex_vwap
        assert ("n.s." in flex_vwap) == expect_ns
        assert f"{summary['flexible']['vwap']['model']:+.2f}" in flex_vwap


def test_spread_cell_states_the_target_from_the_files(render_readme, tmp_path):
    for path in [*RESULTS.rglob("*.json"), *RESULTS.rglob("costs_*.csv")]:
        shutil.copy(path, tmp_path)
    path = tmp_path / "real_data_crypto.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    summary["spread"] = {"best_classical": "static_vwap", "best_classical_bps": 50.0,
                         "model": {"spread_bps": 34.0, "ratio": 0.68, "ci_low": 0.62, "ci_high": 0.74}}
    path.write_text(json.dumps(summary), encoding="utf-8")
    row = _row(render_readme.render(tmp_path), "| BTCUSDT + ETHUSDT 1h, H = 12 (")
    assert "model 0.68 [0.62, 0.74] (vs static_vwap; target <= 0.70: met)" in row
    summary["spread"]["model"]["ratio"] = 0.71
    path.write_text(json.dumps(summary), encoding="utf-8")
    assert "target <= 0.70: not met" in _row(render_readme.render(tmp_path), "| BTCUSDT + ETHUSDT 1h, H = 12 (")


def test_replace_block_needs_exactly_one_block(render_readme):
    with pytest.raises(ValueError, match="exactly one"):
        render_readme.replace_block("no markers here", "x")
    doubled = f"{render_readme.BEGIN}a{render_readme.END}{render_readme.BEGIN}b{render_readme.END}"
    with pytest.raises(ValueError, match="exactly one"):
        render_readme.replace_block(doubled, "x")
    assert render_readme.replace_block(f"head {render_readme.BEGIN}old{render_readme.END} tail", "NEW") == \
        "head NEW tail"
