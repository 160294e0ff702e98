"""CPU performance of our LargeExecutionModel side by side with the reference package (lems 0.1.1).

Same synthetic market (built-in generator, 1 asset, 24/7 hourly), same window settings (lookback 120,
n_ahead 12, split date), batch 64, JAX on CPU. Each package builds its own windows from the same wide panels
with its own ``full_generate`` (the feature sets differ), so the models see the same origins. Three models,
each measured in its OWN subprocess by the same harness (:func:`benchmarks.reference_runner.bench_model`):

* ``ours-readme``: ours in the seed README configuration (hidden 200, embedding 20, 8 heads, fused MLP 100,
  two TKAN layers);
* ``ours-default``: our recommended default (hidden 32, one TKAN layer, 4 heads, embedding 8, fused MLP 32);
* ``reference``: the reference in the README configuration, run as a black box in ``/work/refvenv``
  (``benchmarks/reference_runner.py``; our package is never imported there; results come back as ``.npz``).

Measured: time to first trained batch (model creation + compile + first step), steady training throughput
(median over timed ``fit`` calls after warm-up), first / second call of a final partial batch (37 samples: a
first call much slower than a step means recompilation), ``predict_on_batch`` latency at batch 1 and 256
(first call = compile, then median), first call at a never-seen batch size (7), parameter count, XLA FLOPs
per training sample (forward + backward, ``jax.jit(...).lower(...).cost_analysis()``; scan bodies counted
once, so a lower bound), peak resident memory (``ru_maxrss`` of the subprocess, includes imports), and the
numpy float32 2048² matmul GFLOP/s (the machine's practical 2-core peak) in every subprocess.

Usage::

    /work/venv/bin/python -m benchmarks.perf [--quick] [--rounds 1] [--out benchmarks/results/perf/perf_cpu.md]
    /work/venv/bin/python -m benchmarks.perf --profile     # per-sub-module timing of the README train step

Rounds interleave the three subprocesses (ours-readme, reference, ours-default, ...); medians over rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import provenance_fields_md

# lems is imported inside the worker functions: each timed model runs in a fresh process that blocks TensorFlow
# (and, for the reference, runs in another venv) before the first lems/Keras import.

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

from benchmarks.reference_runner import (
    README_CONFIG,
    bench_model,
    load_panels,
    matmul_gflops,
    save_result,
)

REF_PYTHON = os.environ.get("LEMS_REF_PYTHON", "/work/refvenv/bin/python")
LOOKBACK, N_AHEAD, BATCH = 120, 12, 64
DEFAULT_CONFIG = {"hidden_size": 32, "hidden_rnn_layer": 1, "num_heads": 4, "num_embedding": 8,
                  "fused_mlp_hidden_dim": 32}
CONFIGS = {"ours-readme": README_CONFIG, "ours-default": DEFAULT_CONFIG}
ORDER = ("ours-readme", "reference", "ours-default")


# ------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------
def write_panels(path: Path, n_days: int = 90, seed: int = 0) -> None:
    """Synthetic 1-asset 24/7 hourly market as wide panels + window settings, in ``.npz``."""
    import pandas as pd

    from lems.data.synthetic import synthetic_market

    bars = synthetic_market(n_assets=1, n_days=n_days, calendar="24/7", seed=seed)
    vol = bars.pivot(index="timestamp", columns="symbol", values="volume")
    notional = bars.pivot(index="timestamp", columns="symbol", values="notional")
    split = vol.index[int(len(vol) * 0.8)]
    np.savez(path, index_ns=vol.index.as_unit("ns").asi8, columns=np.asarray(vol.columns, dtype=str),
             volumes=vol.to_numpy(), notionals=notional.to_numpy(), lookback=LOOKBACK, n_ahead=N_AHEAD,
             split_ns=pd.Timestamp(split).value)


def our_data(panels: Path):
    """Our windows from the panels: ``([X, min_rate, max_rate], compact y)``."""
    from lems.data_formater import add_config_to_X, full_generate

    volumes, notionals, asset, lookback, n_ahead, split = load_panels(str(panels))
    x_train, _, y_train, _, _ = full_generate(volumes, notionals, asset, lookback, n_ahead, split_date=split)
    return add_config_to_X(x_train, 0.0, 1.0), y_train


# ------------------------------------------------------------------------------------------------------
# Worker (one model, its own process)
# ------------------------------------------------------------------------------------------------------
def worker(name: str, panels: Path, out: Path, quick: bool) -> None:
    """Measure one of our configurations and write the result ``.npz``.

    TensorFlow is made unimportable in this process (``sys.modules["tensorflow"] = None``): the reference's
    virtual environment has no TensorFlow, and Keras imports it, when installed, from a few utilities
    (``keras.utils.set_random_seed``, ``.keras`` saving), which would add ~400 MiB and seconds to our rows.
    """
    sys.modules.setdefault("tensorflow", None)  # type: ignore[arg-type]
    from lems.loss import lem_loss
    from lems.models import LargeExecutionModel

    x, y = our_data(panels)
    print(f"{name}: X {x[0].shape}, y {y.shape}", flush=True)

    def build():
        model = LargeExecutionModel(lookback=LOOKBACK, n_ahead=N_AHEAD, **CONFIGS[name])
        model.compile(optimizer="adam", loss=lem_loss)
        return model

    steady = 3 if name == "ours-readme" else 10
    result = bench_model(build, x, y, lem_loss, quick=quick, steady_batches=steady, steady_repeats=3,
                         latency_repeats=20, log=lambda s: print(s, flush=True))
    save_result(str(out), result, n_windows=len(y), n_features=x[0].shape[-1])


def _load(path: Path) -> dict[str, float]:
    with np.load(path) as d:
        return {k: float(d[k]) for k in d.files}


def run_one(name: str, panels: Path, tmp: Path, quick: bool, round_: int) -> dict[str, float]:
    """Run one subprocess; return its result dict (empty on failure)."""
    out = tmp / f"{name}_{time.strftime('%Y%m%d-%H%M%S')}_r{round_}.npz"
    if name == "reference":
        cmd = [REF_PYTHON, str(HERE / "reference_runner.py"), "--panels", str(panels), "--out", str(out)]
        cwd = tmp
    else:
        cmd = [sys.executable, "-m", "benchmarks.perf", "--worker", name, "--panels", str(panels),
               "--out", str(out)]
        cwd = ROOT
    cmd += ["--quick"] if quick else []
    print(f"[round {round_}] {name} ...", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    keep = [ln for ln in (proc.stdout + proc.stderr).splitlines()
            if ln.startswith(("  ", "reference:", "ours", "cost_analysis")) or "Error" in ln]
    print("\n".join(keep), flush=True)
    if proc.returncode != 0 or not out.exists():
        print(f"  FAILED (rc {proc.returncode}):\n{proc.stderr[-3000:]}", flush=True)
        return {}
    print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return _load(out)


# ------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------
ROWS = [  # (key, label, unit, format, better: "high"/"low"/None)
    ("params", "parameters", "", "{:,.0f}", None),
    ("n_features", "input channels F", "", "{:.0f}", None),
    ("flops_per_sample", "train FLOPs / sample (XLA fwd+bwd, RNNs unrolled)", "MFLOP", "{:,.1f}", None),
    ("train_samples_per_s", "training throughput (steady, batch 64)", "samples/s", "{:,.1f}", "high"),
    ("step_s", "time per training step", "s", "{:.3f}", "low"),
    ("mfu", "fraction of matmul peak (FLOPs x throughput / numpy GFLOP/s)", "%", "{:.2f}", "high"),
    ("first_batch_s", "time to first trained batch (create + compile + step)", "s", "{:.1f}", "low"),
    ("create_compile_s", "  of which model creation + compile()", "s", "{:.2f}", "low"),
    ("partial_first_s", "final partial batch (37), first call", "s", "{:.2f}", "low"),
    ("partial_second_s", "final partial batch (37), second call", "s", "{:.2f}", "low"),
    ("predict1_median_s", "inference latency batch 1 (median)", "ms", "{:,.2f}", "low"),
    ("predict1_first_s", "inference batch 1, first call (compile)", "s", "{:.2f}", "low"),
    ("predict256_median_s", "inference latency batch 256 (median)", "ms", "{:,.1f}", "low"),
    ("predict256_first_s", "inference batch 256, first call", "s", "{:.2f}", "low"),
    ("predict_new_size_first_s", "inference, new batch size 7, first call", "s", "{:.2f}", "low"),
    ("predict_new_size_second_s", "inference, batch size 7, second call", "s", "{:.3f}", "low"),
    ("maxrss_mb", "peak resident memory (process, incl. imports)", "MiB", "{:,.0f}", "low"),
    ("matmul_gflops", "numpy 2048² f32 matmul in the same process", "GFLOP/s", "{:.1f}", None),
]
_SCALE = {"flops_per_sample": 1e-6, "predict1_median_s": 1e3, "predict256_median_s": 1e3, "mfu": 100.0}


def _derive(r: dict[str, float]) -> dict[str, float]:
    if not r:
        return r
    r = dict(r)
    r["matmul_gflops"] = float(np.median([r["matmul_gflops_start"], r["matmul_gflops_end"]]))
    r["mfu"] = r["flops_per_sample"] * r["train_samples_per_s"] / (r["matmul_gflops"] * 1e9)
    return r


def _median(results: list[dict[str, float]]) -> dict[str, float]:
    """Per-key median over rounds (non-finite values, e.g. a failed FLOP count, ignored)."""
    results = [_derive(r) for r in results if r]
    if not results:
        return {}
    keys = sorted({k for r in results for k in r})
    med = {}
    for k in keys:
        vals = [r[k] for r in results if k in r and np.isfinite(r[k])]
        med[k] = float(np.median(vals)) if vals else float("nan")
    return med


def _cell(r: dict[str, float], key: str, fmt: str) -> str:
    if key not in r or not np.isfinite(r[key]):
        return "n/a"
    return fmt.format(r[key] * _SCALE.get(key, 1.0))


def _ratio(a: dict[str, float], b: dict[str, float], key: str) -> str:
    if key not in a or key not in b or not (np.isfinite(a[key]) and np.isfinite(b[key])) or b[key] == 0:
        return "n/a"
    return f"{a[key] / b[key]:.3g}"


def table(med: dict[str, dict[str, float]]) -> str:
    """Markdown table: the three models and the ours / reference ratios."""
    ref = med.get("reference", {})
    lines = ["| quantity | unit | ours README | ours default | reference README | README / ref | default / ref |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for key, label, unit, fmt, _ in ROWS:
        cells = [_cell(med.get(n, {}), key, fmt) for n in ("ours-readme", "ours-default", "reference")]
        ratios = [_ratio(med.get(n, {}), ref, key) for n in ("ours-readme", "ours-default")]
        lines.append(f"| {label} | {unit} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def targets(med: dict[str, dict[str, float]], name: str) -> list[str]:
    """Pass / fail of the project's performance targets for one of our models against the reference."""
    ours, ref = med.get(name, {}), med.get("reference", {})
    if not ours or not ref:
        return [f"- {name}: reference or ours missing, no verdict"]
    step = ours["step_s"]
    checks = [
        ("training throughput >= 10x reference", ours["train_samples_per_s"] / ref["train_samples_per_s"], 10, ">="),
        ("time to first batch <= 1/4 of reference", ours["first_batch_s"] / ref["first_batch_s"], 0.25, "<="),
        ("peak memory <= 1/3 of reference", ours["maxrss_mb"] / ref["maxrss_mb"], 1 / 3, "<="),
        ("batch-1 latency >= 10x faster", ref["predict1_median_s"] / ours["predict1_median_s"], 10, ">="),
        ("no recompilation for a partial batch (first call <= 3 steps)", ours["partial_first_s"] / step, 3, "<="),
        ("no recompilation for a new inference batch size (first call <= 3x second)",
         ours["predict_new_size_first_s"] / max(ours["predict_new_size_second_s"], 1e-9), 3, "<="),
    ]
    lines = []
    for label, value, bound, op in checks:
        ok = value >= bound if op == ">=" else value <= bound
        lines.append(f"- {name}: {label}: {'MET' if ok else 'NOT met'} (value {value:.3g}, target {op} {bound:.3g})")
    return lines


def write_report(path: Path, med: dict, rounds: dict, args, wall: float, peak: float) -> str:
    """Write (and return) the Markdown report."""
    n_rounds = {n: len([r for r in rs if r]) for n, rs in rounds.items()}
    cmd = "/work/venv/bin/python -m benchmarks.perf" + (" --quick" if args.quick else "")
    cmd += (f" --rounds {args.rounds}" if args.rounds != 1 else "") + (
        f" --raw-dir {args.raw_dir}" if args.raw_dir else "")
    text = "\n".join([
        "# CPU performance: ours vs the reference package (lems 0.1.1)",
        "",
        f"Command: `{cmd}` (reference run as a black box in `/work/refvenv` by `benchmarks/reference_runner.py`).",
        "",
        *provenance_fields_md(),  # CPU seconds of the parent process (the timed runs are separate processes)
        "",
        (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared, noisy); "
        f"Python {platform.python_version()}, JAX CPU, float32. numpy 2048² f32 matmul peak measured by the "
        f"parent process: {peak:.1f} GFLOP/s. Total wall time {wall / 60:.1f} min. Successful rounds per model: "
        f"{n_rounds} (medians over rounds; within a round, throughput is the median of timed `fit` calls and "
        "latency the median of repeated `predict_on_batch` calls)."),
        "",
        ("Data: built-in synthetic market (1 asset, 24/7 hourly, 90 days, seed 0) written once as wide panels; "
        "each package turns them into windows with its own `full_generate` (lookback 120, n_ahead 12, same "
        "split date), `add_config_to_X(X, 0, 1)`; the reference also gets `add_config_to_y(y)` (tiled), ours "
        "the compact y. Loss `lem_loss` only (no metrics) for all, optimizer Adam, batch 64. Neither process can "
        "import TensorFlow (the reference venv has none; our workers block it)."),
        "",
        table(med),
        "",
        ("Ratios are ours / reference of the row's quantity (throughput: higher is better; times and memory: "
        "lower is better). Latency rows are in ms where marked. FLOPs: XLA cost analysis of the jitted "
        "forward + backward pass at batch 64 divided by 64, with every Keras `RNN` layer unrolled while lowering "
        "(XLA counts a `lax.scan` body once); any other scan (our 12-step decoder) is still counted once, so "
        "FLOPs and the matmul-peak fraction are lower bounds."),
        "",
        "## Targets",
        "",
        *targets(med, "ours-readme"),
        *targets(med, "ours-default"),
        "",
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


# ------------------------------------------------------------------------------------------------------
# Profile: per-sub-module forward + backward time of the README configuration
# ------------------------------------------------------------------------------------------------------
def _time_piece(fn, layers, inputs, repeats: int) -> tuple[float, float]:
    """Compile time [s] and median run time [s] of jitted forward + backward of ``sum(fn(*inputs))``.

    Gradients are taken w.r.t. the layers' trainable variables and the float inputs (as in a training step).
    """
    import jax
    import jax.numpy as jnp
    import keras

    variables = [v for layer in layers for v in layer.trainable_variables]
    others = [v for layer in layers for v in layer.non_trainable_variables]

    def objective(values, xs):
        mapping = list(zip(variables, values)) + [(v, v.value) for v in others]
        with keras.StatelessScope(state_mapping=mapping):
            out = fn(*xs)
        return sum(jnp.sum(o) for o in jax.tree_util.tree_leaves(out))

    grad = jax.jit(jax.value_and_grad(objective, argnums=(0, 1)))
    values = [v.value for v in variables]
    xs = [jnp.asarray(x) for x in inputs]
    start = time.perf_counter()
    jax.block_until_ready(grad(values, xs))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(grad(values, xs))
        times.append(time.perf_counter() - start)
    return compile_s, float(np.median(times))


def profile(quick: bool = False, config: str = "ours-readme", batch: int = BATCH) -> None:
    """Print per-sub-module forward + backward timings of one training step of a configuration."""
    from lems.loss import lem_loss
    from lems.models import LargeExecutionModel

    with tempfile.TemporaryDirectory(prefix="lems_prof_") as tmp:
        panels = Path(tmp) / "panels.npz"
        write_panels(panels)
        x, y = our_data(panels)
    xb, lo, hi = (a[:batch] for a in x)
    yb = y[:batch]
    m = LargeExecutionModel(lookback=LOOKBACK, n_ahead=N_AHEAD, **CONFIGS[config])
    m.build([(None,) + xb.shape[1:], (None, 1), (None, 1)])
    length, horizon = m.window_length, m.n_ahead
    emb = m.embedding(xb)
    sel = m.variable_selection(emb)
    hidden = [sel]
    for layer in m.rnn_layers:
        hidden.append(layer(hidden[-1]))
    g = m.grn(m.rnn_norm([m.rnn_gate(hidden[-1]), sel]))
    context, returns, log_volumes, prior = m.decoder_inputs(xb)
    dec_in = [context, returns, log_volumes, lo, hi] + ([prior] if prior is not None else [])
    pred = m([xb, lo, hi])
    mask = np.tril(np.ones((length, length), dtype=bool))[length - horizon:]
    mask = np.broadcast_to(mask, (batch, horizon, length))

    def attention(h):
        q = h[:, length - horizon:]
        return m.attention_norm([m.attention_gate(m.attention(q, h, h, attention_mask=mask)), q])

    n_orders = (horizon + 1) * 8
    pieces = [
        ("embedding", lambda a: m.embedding(a), [m.embedding], [xb]),
        ("variable selection (VSN)", lambda a: m.variable_selection(a), [m.variable_selection], [emb]),
        *[(f"TKAN layer {i + 1} ({length} steps)", layer, [layer], [hidden[i]]) for i, layer in
          enumerate(m.rnn_layers)],
        ("gate + add&norm + GRN", lambda a, b: m.grn(m.rnn_norm([m.rnn_gate(a), b])),
         [m.rnn_gate, m.rnn_norm, m.grn], [hidden[-1], sel]),
        ("causal attention + gate + norm", attention, [m.attention, m.attention_gate, m.attention_norm], [g]),
        (f"decoder ({horizon}-step scan, {n_orders} orders)", lambda *a: m.decoder(list(a)), [m.decoder], dec_in),
        ("loss (lem_loss)", lambda p: lem_loss(yb, p), [], [pred]),
        ("whole model + loss", lambda a, b, c: lem_loss(yb, m([a, b, c])), [m], [xb, lo, hi]),
    ]
    print(f"profile: {config}, batch {batch}, lookback {LOOKBACK}, n_ahead {N_AHEAD}, F {xb.shape[-1]}", flush=True)
    repeats = 2 if quick else 5
    rows = []
    for name, fn, layers, inputs in pieces:
        params = sum(int(np.prod(v.shape)) for layer in layers for v in layer.trainable_variables)
        compile_s, run_s = _time_piece(fn, layers, inputs, repeats)
        rows.append((name, params, compile_s, run_s))
        print(f"{name:40s} params {params:>10,d}  compile {compile_s:6.2f} s  fwd+bwd {run_s * 1e3:9.1f} ms",
              flush=True)
    total = rows[-1][3]
    lines = ["| sub-module | params | compile (s) | fwd+bwd (ms) | share of whole |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {n} | {p:,} | {c:.2f} | {r * 1e3:,.1f} | {r / total:.0%} |" for n, p, c, r in rows]
    text = "\n".join(lines)
    print(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a few minutes less)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the three subprocesses")
    parser.add_argument("--only", nargs="*", default=list(ORDER), choices=ORDER)
    parser.add_argument("--out", default=str(HERE / "results" / "perf" / "perf_cpu.md"))
    parser.add_argument("--profile", action="store_true", help="per-sub-module timing of one training step")
    parser.add_argument("--profile-config", default="ours-readme", choices=list(CONFIGS))
    parser.add_argument("--profile-batch", type=int, default=BATCH)
    parser.add_argument("--raw-dir", help="keep each subprocess's result .npz here; the table then takes "
                        "medians over ALL results found there (accumulate rounds across invocations)")
    parser.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--panels", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, Path(args.panels), Path(args.out), args.quick)
        return
    if args.profile:
        profile(quick=args.quick, config=args.profile_config, batch=args.profile_batch)
        return
    start = time.perf_counter()
    peak = matmul_gflops()
    print(f"numpy 2048² f32 matmul: {peak:.1f} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="lems_perf_") as tmp_name:
        tmp = Path(args.raw_dir) if args.raw_dir else Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        panels = Path(tmp_name) / "panels.npz"
        write_panels(panels)
        rounds: dict[str, list[dict]] = {n: [] for n in args.only}
        for r in range(args.rounds):
            order = [n for n in ORDER if n in args.only]
            order = order if r % 2 == 0 else order[::-1]
            for name in order:
                rounds[name].append(run_one(name, panels, tmp, args.quick, r))
        if args.raw_dir:  # every result kept there, this invocation's and earlier ones
            rounds = {n: [_load(f) for f in sorted(tmp.glob(f"{n}_*.npz"))] for n in ORDER}
    med = {n: _median(rs) for n, rs in rounds.items() if rs}
    text = write_report(Path(args.out), med, rounds, args, time.perf_counter() - start, peak)
    print(text)


if __name__ == "__main__":
    main()
