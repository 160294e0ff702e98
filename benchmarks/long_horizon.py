"""Long horizons on minute bars: peak memory and time of the seed-API training run, per horizon.

Each case runs in a fresh subprocess (peak RSS is per process): 1-minute synthetic bars, lookback 60, a
hidden-16 model built and trained through the seed API (``add_config_to_X`` -> ``model.fit`` with ``lem_loss``)
for ``--steps`` steps of batch 32; then the live ``next_allocation()`` latency at the largest horizon.

Usage: ``python benchmarks/long_horizon.py [--horizons 60 240 390] [--steps 2] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

CASE = r'''
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
import lems  # noqa: F401  (JAX default)
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.data_formater import add_config_to_X
from lems.loss import lem_loss
from lems.models import LargeExecutionModel
H, LOOKBACK, BATCH, STEPS = {horizon}, 60, 32, {steps}
bars = synthetic_market(n_assets=1, n_days=3 + (H * 3) // 1440, calendar="24/7", bar_minutes=1, seed=0)
win = make_windows(bars, lookback=LOOKBACK, n_ahead=H, stride=7, n_days_profile=1)
n = BATCH * STEPS
X, y = add_config_to_X(win.X[:n], 0.0, 1.0), win.y[:n]
t_data = time.perf_counter()
model = LargeExecutionModel(lookback=LOOKBACK, n_ahead=H, hidden_size=16, hidden_rnn_layer=1, num_heads=2,
                            num_embedding=4, fused_mlp_hidden_dim=16)
model.compile(optimizer="adam", loss=lem_loss)
hist = model.fit(X, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
t_fit = time.perf_counter()
loss = float(hist.history["loss"][-1])
out = dict(horizon=H, windows=int(len(win)), data_s=t_data - t0, compile_and_steps_s=t_fit - t_data,
           loss=loss, peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print("RESULT " + json.dumps(out))
'''


def run_case(horizon: int, steps: int) -> dict:
    code = CASE.format(horizon=horizon, steps=steps)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"H={horizon} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=int, nargs="+", default=[60, 240, 390])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    for h in args.horizons:
        row = run_case(h, args.steps)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
