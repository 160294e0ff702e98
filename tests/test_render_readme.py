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
    for path in [*RESULTS.glob("*.json"), *RESULTS.glob("costs_*.csv")]:  # every input of the README block
        shutil.copy(path, tmp_path)
    equities = _row(render_readme.render(tmp_path), "| SPY")
    flex_vwap = equities.split(" | ")[2]
    assert "+5.48" in flex_vwap and "+5.41" in flex_vwap and "n.s." in flex_vwap  # interval [-0.08, +0.23]

    summary = json.loads((tmp_path / "real_data_equities.json").read_text(encoding="utf-8"))
    summary["flexible_vs_rule"]["vwap"]["ci_low"] = 0.01  # the stored flag is left as it was: not read
    (tmp_path / "real_data_equities.json").write_text(json.dumps(summary), encoding="utf-8")
    changed = _row(render_readme.render(tmp_path), "| SPY").split(" | ")[2]
    assert "n.s." not in changed and "[+0.01, +0.23]" in changed


def test_replace_block_needs_exactly_one_block(render_readme):
    with pytest.raises(ValueError, match="exactly one"):
        render_readme.replace_block("no markers here", "x")
    doubled = f"{render_readme.BEGIN}a{render_readme.END}{render_readme.BEGIN}b{render_readme.END}"
    with pytest.raises(ValueError, match="exactly one"):
        render_readme.replace_block(doubled, "x")
    assert render_readme.replace_block(f"head {render_readme.BEGIN}old{render_readme.END} tail", "NEW") == \
        "head NEW tail"
