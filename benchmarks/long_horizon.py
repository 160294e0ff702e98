"""Long horizons on minute bars: peak memory and time of the seed-API training run, per horizon.

Each case runs in a fresh subprocess (peak RSS is per process): 1-minute synthetic bars, lookback 60, a
hidden-16 model built and trained through the seed API (``add_config_to_X`` -> ``model.fit`` with ``lem_loss``)
for ``--steps`` steps of batch 32 (time to the first trained batches, compile included, and peak RSS), then
``--more-steps`` compiled steps (training throughput), then the live ``next_allocation()`` latency at the largest
horizon (a session of ``--live`` decisions, the first one compiling).

Usage: ``python -m benchmarks.long_horizon [--horizons 60 240 390] [--steps 2] [--more-steps 6] [--live 40]
[--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.common import provenance_fields_md

CASE = r'''
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
import lems  # noqa: F401  (JAX default)
from lems.data.synthetic import synthetic_market
from lems.execution import OrderSpec
from lems.live import ExecutionSession
from lems.data.windows import make_windows
from lems.data_formater import add_config_to_X
from lems.loss import lem_loss
from lems.models import LargeExecutionModel
H, LOOKBACK, BATCH, STEPS, MORE, LIVE = {horizon}, 60, 32, {steps}, {more_steps}, {live}
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731
bars = synthetic_market(n_assets=1, n_days=3 + (H * 3) // 1440, calendar="24/7", bar_minutes=1, seed=0)
win = make_windows(bars, lookback=LOOKBACK, n_ahead=H, stride=7, n_days_profile=1)
n = BATCH * STEPS
X, y = add_config_to_X(win.X[:n], 0.0, 1.0), win.y[:n]
t_data = time.perf_counter()
model = LargeExecutionModel(lookback=LOOKBACK, n_ahead=H, hidden_size=16, hidden_rnn_layer=1, num_heads=2,
                            num_embedding=4, fused_mlp_hidden_dim=16)
model.compile(optimizer="adam", loss=lem_loss)
hist = model.fit(X, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)  # the issue's run
t_fit = time.perf_counter()
out = dict(horizon=H, windows=int(len(win)), sampled_columns=model.n_sampled_columns, data_s=t_data - t0,
           compile_and_steps_s=t_fit - t_data, loss=float(hist.history["loss"][-1]), peak_rss_mib=rss())
m = BATCH * MORE  # throughput: compiled steps only
Xm, ym = add_config_to_X(win.X[:m], 0.0, 1.0), win.y[:m]
start = time.perf_counter()
model.fit(Xm, ym, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
out["train_windows_per_s"] = m / (time.perf_counter() - start)
out["peak_rss_after_throughput_mib"] = rss()
if LIVE:
    origin = int(win.origin_index[len(win) // 2])
    order = OrderSpec(side="buy", horizon=H, target="quantity", benchmark="vwap", min_duration=H // 2,
                      objective="beat", min_rate=0.0, max_rate=0.05)
    session = ExecutionSession(model, order, 10_000.0, bars.iloc[:origin], n_days_profile=1, calendar="24/7")
    times = []
    for k in range(LIVE):
        begin = time.perf_counter()
        session.next_allocation()
        times.append(time.perf_counter() - begin)
        session.on_bar_close(bars.iloc[origin + k])
    out["live_first_ms"] = times[0] * 1e3
    out["live_median_ms"] = float(np.median(times[1:]) * 1e3)
    out["live_p90_ms"] = float(np.percentile(times[1:], 90) * 1e3)
    out["live_decisions"] = len(times) - 1
print("RESULT " + json.dumps(out))
'''


def run_case(horizon: int, steps: int, more_steps: int, live: int) -> dict:
    code = CASE.format(horizon=horizon, steps=steps, more_steps=more_steps, live=live)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"H={horizon} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=int, nargs="+", default=[60, 240, 390])
    parser.add_argument("--steps", type=int, default=2, help="steps of the timed first fit (compile included)")
    parser.add_argument("--more-steps", type=int, default=6, help="compiled steps timed for the throughput")
    parser.add_argument("--live", type=int, default=40,
                        help="live decisions timed at the largest horizon (first one = compile)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    for h in args.horizons:
        row = run_case(h, args.steps, args.more_steps, args.live if h == max(args.horizons) else 0)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(markdown(rows, argv) if args.out.suffix == ".md" else json.dumps(rows, indent=1))
    return 0


def markdown(rows: list[dict], argv) -> str:
    """The results as a Markdown table (per horizon), and the live latency at the largest one."""
    lines = ["| H | columns scored per step | peak RSS (MiB) | compile + 2 steps of 32 (s) | training throughput "
             "(windows/s) |", "|---:|---:|---:|---:|---:|"]
    for r in rows:
        columns = f"{r['sampled_columns']} + fixed (of {r['horizon'] + 1})" if r["sampled_columns"] else "all"
        lines.append(f"| {r['horizon']} | {columns} | {r['peak_rss_mib']:,.0f} | {r['compile_and_steps_s']:.1f} | "
                     f"{r['train_windows_per_s']:.1f} |")
    live = [r for r in rows if "live_median_ms" in r]
    if live:
        r = live[-1]
        lines += ["", f"Live `next_allocation()` at H = {r['horizon']}: median {r['live_median_ms']:.1f} ms, P90 "
                      f"{r['live_p90_ms']:.1f} ms over {r['live_decisions']} decisions (the first one, which "
                      f"compiles: {r['live_first_ms'] / 1e3:.1f} s)."]
    command = " ".join(["python -m benchmarks.long_horizon", *(argv if argv is not None else sys.argv[1:])])
    return "\n".join([f"Command: `{command}`", "", *provenance_fields_md(), "", *lines, ""])


if __name__ == "__main__":
    sys.exit(main())
