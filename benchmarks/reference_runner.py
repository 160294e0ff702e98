"""Generic Keras/JAX training and inference benchmark harness, and the reference package's runner.

This file must stay importable WITHOUT our ``lems`` package: it runs inside the reference package's own
virtual environment (``/work/refvenv``, ``pip install lems==0.1.1``), where ``lems`` is the reference. The
reference is used as a black box through its public API only (``lems.models.LargeExecutionModel``,
``lems.loss.lem_loss``, ``lems.data_formater.full_generate/add_config_to_X/add_config_to_y``). Our
``benchmarks/perf.py`` imports :func:`bench_model` from here (nothing else) so that both packages are measured
by exactly the same code. Inputs and outputs travel as ``.npz`` files.

Usage (inside the reference venv)::

    /work/refvenv/bin/python benchmarks/reference_runner.py --panels PANELS.npz --out RESULT.npz [--quick]

``PANELS.npz`` holds the wide synthetic market (``index_ns``, ``columns``, ``volumes``, ``notionals``) and the
window settings (``lookback``, ``n_ahead``, ``split_ns``); ``RESULT.npz`` gets one scalar per measurement.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

#: README configuration of the seed page (model hyper-parameters).
README_CONFIG = {"hidden_size": 200, "num_embedding": 20, "num_heads": 8, "fused_mlp_hidden_dim": 100}


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Median numpy float32 ``n x n`` matmul throughput [GFLOP/s] (the machine's practical matmul peak)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2.0 * n**3 / float(np.median(times)) / 1e9


def _rows(inputs, rows):
    """Slice a model input (array or list of arrays) along the batch axis."""
    if isinstance(inputs, (list, tuple)):
        return [a[rows] for a in inputs]
    return inputs[rows]


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    out = fn()
    np.asarray(out[0] if isinstance(out, (list, tuple)) else out)  # block on the result
    return time.perf_counter() - start


def _fit(model, x, y, n: int, batch: int):
    hist = model.fit(_rows(x, slice(0, n)), y[:n], batch_size=batch, epochs=1, verbose=0, shuffle=False)
    return np.asarray(hist.history["loss"])


def training_flops(model, loss_fn, x, y, batch: int) -> float:
    """XLA's FLOP estimate of one training step's forward + backward (``jax.jit(...).lower().cost_analysis()``).

    Optimizer update excluded. XLA counts the body of a ``while`` loop (``lax.scan``) ONCE, not once per
    iteration; so every Keras ``RNN`` layer (public ``unroll`` attribute) is unrolled while lowering (only
    lowered, never compiled), and scans that are not Keras RNNs remain counted once (a lower bound).

    Returns:
        FLOPs per training sample, or NaN when the backend or JAX version does not provide it.
    """
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    xb, yb = _rows(x, slice(0, batch)), jnp.asarray(y[:batch])
    xb = [jnp.asarray(a) for a in xb] if isinstance(xb, list) else jnp.asarray(xb)

    def loss(tv, ntv, xs, ys):
        try:
            pred, _ = model.stateless_call(tv, ntv, xs, training=True)
        except TypeError:  # a call() without a `training` argument
            pred, _ = model.stateless_call(tv, ntv, xs)
        return jnp.mean(loss_fn(ys, pred))

    rnns = [layer for layer in model._flatten_layers() if hasattr(layer, "unroll") and hasattr(layer, "cell")]
    saved = [layer.unroll for layer in rnns]
    try:
        for layer in rnns:
            layer.unroll = True
        cost = jax.jit(jax.value_and_grad(loss)).lower(trainable, non_trainable, xb, yb).cost_analysis()
    except Exception as exc:  # noqa: BLE001 - an estimate only
        print(f"cost_analysis failed: {exc!r}", file=sys.stderr)
        return float("nan")
    finally:
        for layer, value in zip(rnns, saved):
            layer.unroll = value
    print(f"  FLOPs: {len(rnns)} Keras RNN layer(s) unrolled for the count", flush=True)
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float(cost.get("flops", float("nan"))) / batch


def bench_model(build: Callable[[], Any], x, y, loss_fn, *, quick: bool = False, batch: int = 64,
                steady_batches: int = 3, steady_repeats: int = 3, latency_repeats: int = 20,
                partial: int = 37, new_size: int = 7, flops: bool = True, log=print) -> dict[str, float]:
    """Measure one Keras model end to end (JAX backend, CPU).

    Args:
        build: Creates and compiles the model (timed as part of "time to first batch").
        x: Model inputs (array or list of arrays), at least ``steady_batches * batch`` rows.
        y: Targets.
        loss_fn: The loss (for the FLOP count).
        quick: Fewer repeats.
        batch: Training batch size [samples].
        steady_batches: Batches per timed ``fit`` call.
        steady_repeats: Timed ``fit`` calls (median reported).
        latency_repeats: ``predict_on_batch`` calls per batch size (batch 256 uses a third of them, >= 2).
        partial: Size of the final partial batch [samples].
        new_size: A never-seen inference batch size.
        flops: Whether to compute the XLA FLOP estimate.

    Returns:
        Flat dict of scalars: times [s], throughput [samples/s], ``params``, ``flops_per_sample``,
        ``maxrss_mb`` (peak resident memory of this process [MiB]), ``matmul_gflops``.
    """
    out: dict[str, float] = {"matmul_gflops_start": matmul_gflops()}
    if quick:
        steady_repeats, latency_repeats = max(1, steady_repeats - 1), max(3, latency_repeats // 4)
    start = time.perf_counter()
    model = build()
    out["create_compile_s"] = time.perf_counter() - start
    loss0 = _fit(model, x, y, batch, batch)
    out["first_batch_s"] = time.perf_counter() - start
    out["params"] = float(model.count_params())
    out["first_loss"] = float(loss0[-1])
    log(f"  first batch {out['first_batch_s']:.1f} s, params {out['params']:.0f}")

    n = steady_batches * batch
    _fit(model, x, y, batch, batch)  # one more warm step (state layout settles)
    times = [_timed(lambda: _fit(model, x, y, n, batch)) for _ in range(steady_repeats)]
    out["step_s"] = float(np.median(times)) / steady_batches
    out["train_samples_per_s"] = n / float(np.median(times))
    out["train_samples_per_s_min"] = n / float(np.max(times))
    out["train_samples_per_s_max"] = n / float(np.min(times))
    log(f"  steady {out['train_samples_per_s']:.1f} samples/s ({out['step_s']:.3f} s/step)")

    out["partial_first_s"] = _timed(lambda: _fit(model, x, y, partial, batch))
    out["partial_second_s"] = _timed(lambda: _fit(model, x, y, partial, batch))
    log(f"  partial batch {partial}: first {out['partial_first_s']:.2f} s, again {out['partial_second_s']:.2f} s")

    for size, reps in ((1, latency_repeats), (256, max(2, latency_repeats // 3))):
        xs = _rows(x, slice(0, size)) if size <= len(y) else _rows(x, np.arange(size) % len(y))
        out[f"predict{size}_first_s"] = _timed(lambda xs=xs: model.predict_on_batch(xs))
        samples = [_timed(lambda xs=xs: model.predict_on_batch(xs)) for _ in range(reps)]
        out[f"predict{size}_median_s"] = float(np.median(samples))
        log(f"  predict batch {size}: first {out[f'predict{size}_first_s']:.2f} s, "
            f"median {out[f'predict{size}_median_s'] * 1e3:.1f} ms")
    xs = _rows(x, slice(0, new_size))
    out["predict_new_size_first_s"] = _timed(lambda: model.predict_on_batch(xs))
    out["predict_new_size_second_s"] = _timed(lambda: model.predict_on_batch(xs))
    out["flops_per_sample"] = training_flops(model, loss_fn, x, y, batch) if flops else float("nan")
    out["matmul_gflops_end"] = matmul_gflops()
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def load_panels(path: str):
    """Wide volume / notional panels (naive UTC DatetimeIndex) and window settings from a ``.npz``."""
    import pandas as pd

    d = np.load(path, allow_pickle=False)
    index = pd.to_datetime(d["index_ns"], utc=True).tz_localize(None)
    cols = [str(c) for c in d["columns"]]
    volumes = pd.DataFrame(d["volumes"], index=index, columns=cols)
    notionals = pd.DataFrame(d["notionals"], index=index, columns=cols)
    split = pd.Timestamp(int(d["split_ns"]), tz="UTC").tz_localize(None)
    return volumes, notionals, cols[0], int(d["lookback"]), int(d["n_ahead"]), split


def save_result(path: str, result: dict[str, float], **extra) -> None:
    """Write a flat dict of scalars (and extra arrays) to ``.npz``."""
    np.savez(path, **{k: np.asarray(v) for k, v in {**result, **extra}.items()})


#: Small configuration used by the leak check (the README one trains ~5 samples/s on 2 CPU cores).
SMALL_CONFIG = {"hidden_size": 32, "hidden_rnn_layer": 1, "num_heads": 4, "num_embedding": 8,
                "fused_mlp_hidden_dim": 32}


def shift_one_bar(x: np.ndarray) -> np.ndarray:
    """``X`` moved one bar later along positions: position ``j`` holds bar ``j - 1`` (position 0 repeated).

    A model that reads position ``lookback + s`` for decision ``s`` then sees bars ``<= t0 + s - 1`` only.
    """
    return np.concatenate([x[:, :1], x[:, :-1]], axis=1)


def leak_run(args, full_generate, add_config_to_X, add_config_to_y, lem_loss, model_cls) -> None:
    """Train the reference twice for ``args.leak_budget / 2`` seconds each (X as published; X shifted one bar)
    and save both test allocations, the test origins and the reference's own test targets."""
    import keras

    volumes, notionals, asset, lookback, n_ahead, split = load_panels(args.panels)
    x_train, x_test, y_train, y_test, dates = full_generate(volumes, notionals, target_asset=asset,
                                                            lookback=lookback, n_ahead=n_ahead, split_date=split)
    dates = np.asarray(dates)
    print(f"reference: X train {x_train.shape}, test {x_test.shape}, dates {dates.shape}", flush=True)
    config = README_CONFIG if args.config == "readme" else SMALL_CONFIG
    out: dict[str, np.ndarray] = {}
    for name, transform in (("published", lambda a: a), ("shifted", shift_one_bar)):
        keras.utils.set_random_seed(args.seed)
        model = model_cls(lookback=lookback, n_ahead=n_ahead, **config)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=lem_loss)
        xt = add_config_to_X(transform(x_train), 0.0, 1.0)
        start = time.perf_counter()
        hist = model.fit(xt, add_config_to_y(y_train), batch_size=64, epochs=10_000, verbose=0, shuffle=True,
                         callbacks=[_checkpoint_callback(args.leak_budget / 2, float("inf"), lambda _: None)])
        losses = np.asarray(hist.history["loss"])
        print(f"  {name}: {len(losses)} epochs in {time.perf_counter() - start:.0f} s, loss {losses[0]:.4f} -> "
              f"{losses[-1]:.4f}", flush=True)
        out[f"alloc_{name}"] = np.asarray(model.predict(add_config_to_X(transform(x_test), 0.0, 1.0),
                                                        batch_size=256, verbose=0), dtype=np.float32)
        out[f"epochs_{name}"] = np.asarray(len(losses))
        out[f"loss_{name}"] = losses
    np.savez(args.out, dates_ns=np.asarray(pd_ns(dates)), n_train=len(x_train), y_test=np.asarray(y_test), **out)


def _per_asset_windows(full_generate, volumes, notionals, lookback: int, n_ahead: int, split):
    """The reference's own windows of every asset of the panels (one single-column panel per asset), stacked.

    Returns:
        ``(x_train, y_train, x_eval, y_eval, asset_eval, dates_eval_ns)``: eval = every window after ``split``.
    """
    xs_tr, ys_tr, xs_ev, ys_ev, assets, dates_ev = [], [], [], [], [], []
    for asset in volumes.columns:
        x_tr, x_ev, y_tr, y_ev, dates = full_generate(volumes[[asset]], notionals[[asset]], target_asset=asset,
                                                      lookback=lookback, n_ahead=n_ahead, split_date=split)
        dates = pd_ns(dates)
        dates = dates[len(x_tr):] if len(dates) > len(x_ev) else dates
        xs_tr.append(np.asarray(x_tr, np.float32))
        ys_tr.append(np.asarray(y_tr, np.float32))
        xs_ev.append(np.asarray(x_ev, np.float32))
        ys_ev.append(np.asarray(y_ev, np.float32))
        assets += [asset] * len(x_ev)
        dates_ev.append(dates)
        print(f"reference windows {asset}: train {x_tr.shape}, eval {x_ev.shape}", flush=True)
    return (np.concatenate(xs_tr), np.concatenate(ys_tr), np.concatenate(xs_ev), np.concatenate(ys_ev),
            np.asarray(assets), np.concatenate(dates_ev))


def _checkpoint_callback(budget_s: float, every_s: float, evaluate: Callable[[float], None]):
    """Stops training after ``budget_s`` seconds of training time and calls ``evaluate(training_seconds)`` at
    the first epoch end after every ``every_s`` seconds of it (Keras on JAX syncs the weights only at epoch
    ends, so the "epochs" of :func:`_chunked_batches` are short); evaluation time is off the training clock."""
    import keras

    class Checkpoints(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.paused, self.next_eval = time.perf_counter(), 0.0, every_s

        def _trained(self) -> float:
            return time.perf_counter() - self.start - self.paused

        def on_train_batch_end(self, batch, logs=None):
            if self._trained() >= budget_s:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            trained = self._trained()
            if trained >= self.next_eval or trained >= budget_s:
                pause = time.perf_counter()
                evaluate(trained)
                self.paused += time.perf_counter() - pause
                self.next_eval = trained + every_s

    return Checkpoints()


def _chunked_batches(x, y, batch_size: int, steps: int, seed: int):
    """A ``keras.utils.PyDataset`` of shuffled ``(x, y)`` batches, ``steps`` batches per "epoch"; the
    permutation runs on across epochs (a new one each time the data is exhausted)."""
    import keras

    class Chunks(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order, self.pos = self.rng.permutation(len(x)), 0
            self.rows = [self._draw() for _ in range(steps)]

        def _draw(self):
            if self.pos + batch_size > len(self.order):
                self.order, self.pos = self.rng.permutation(len(x)), 0
            rows = self.order[self.pos:self.pos + batch_size]
            self.pos += batch_size
            return rows

        def __len__(self):
            return steps

        def __getitem__(self, index):
            rows = self.rows[index]
            return _rows(x, rows), y[rows]

        def on_epoch_end(self):
            self.rows = [self._draw() for _ in range(steps)]

    return Chunks()


def curve_run(args, full_generate, add_config_to_X, add_config_to_y, lem_loss, model_cls) -> None:
    """Train the reference once per variant (``published``; ``shifted`` one bar) for ``args.curve_budget``
    seconds of training time each (compilation included), predicting every window after the split date at
    checkpoints: the fixed-duration column (``[:, :, H]``) of every ``args.eval_stride``-th window at each
    checkpoint, and every window's full allocations at the end."""
    import keras

    volumes, notionals, _, lookback, n_ahead, split = load_panels(args.panels)
    x_train, y_train, x_eval, y_eval, assets, dates = _per_asset_windows(full_generate, volumes, notionals, lookback,
                                                                 n_ahead, split)
    config = README_CONFIG if args.config == "readme" else SMALL_CONFIG
    sub = np.arange(0, len(x_eval), args.eval_stride)
    out: dict[str, np.ndarray] = {"assets": assets, "dates_ns": dates, "ckpt_rows": sub, "y_eval": y_eval,
                                  "budget_s": np.asarray(args.curve_budget)}
    for name in args.variants.split(","):
        transform = shift_one_bar if name == "shifted" else (lambda a: a)
        keras.utils.set_random_seed(args.seed)
        model = model_cls(lookback=lookback, n_ahead=n_ahead, **config)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=lem_loss)
        xt, xe = add_config_to_X(transform(x_train), 0.0, 1.0), add_config_to_X(transform(x_eval), 0.0, 1.0)
        times, fixed = [], []

        def evaluate(trained_s: float) -> None:
            pred = np.asarray(model.predict(_rows(xe, sub), batch_size=512, verbose=0))
            times.append(trained_s)
            fixed.append(pred[:, :, n_ahead].astype(np.float32))
            print(f"  {name}: checkpoint at {trained_s:.0f} s of training", flush=True)

        start = time.perf_counter()
        data = _chunked_batches(xt, add_config_to_y(y_train), 64, args.chunk_steps, args.seed)
        hist = model.fit(data, epochs=1_000_000, verbose=0,
                         callbacks=[_checkpoint_callback(args.curve_budget, args.eval_every, evaluate)])
        losses = np.asarray(hist.history["loss"])
        print(f"  {name}: {len(losses)} chunks in {time.perf_counter() - start:.0f} s, loss {losses[0]:.4f} -> "
              f"{losses[-1]:.4f}", flush=True)
        out[f"alloc_{name}"] = np.asarray(model.predict(xe, batch_size=512, verbose=0), dtype=np.float32)
        out[f"ckpt_times_{name}"] = np.asarray(times)
        out[f"ckpt_fixed_{name}"] = np.stack(fixed)
        out[f"loss_{name}"] = losses
        out[f"params_{name}"] = np.asarray(model.count_params())
    np.savez(args.out, **out)


def pd_ns(dates) -> np.ndarray:
    """Datetimes (any numpy / pandas form, naive = UTC) as int64 nanoseconds."""
    import pandas as pd

    return pd.DatetimeIndex(pd.to_datetime(np.asarray(dates))).as_unit("ns").asi8


def main(argv: list[str] | None = None) -> None:
    """Reference runner: the reference package, README configuration, measured by :func:`bench_model`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--panels", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--leak-budget", type=float, default=0.0,
                        help="leak check: total training budget [s] (two models); 0 = performance benchmark")
    parser.add_argument("--config", choices=("small", "readme"), default="small", help="leak check model size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--curve-budget", type=float, default=0.0,
                        help="learning curve: training time per variant [s]; panels may hold several assets")
    parser.add_argument("--eval-every", type=float, default=120.0, help="learning curve: checkpoint period [s]")
    parser.add_argument("--eval-stride", type=int, default=3, help="learning curve: every k-th eval window")
    parser.add_argument("--chunk-steps", type=int, default=10, help="learning curve: batches per Keras epoch")
    parser.add_argument("--variants", default="shifted,published", help="learning curve: variants to train")
    args = parser.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    repo_root = os.path.dirname(here)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) not in (here, repo_root)]
    import lems  # the REFERENCE package (black box)

    if os.path.abspath(lems.__file__).startswith(repo_root):
        raise SystemExit("reference_runner.py must run in the reference venv, not on our package")
    from lems.data_formater import add_config_to_X, add_config_to_y, full_generate
    from lems.loss import lem_loss
    from lems.models import LargeExecutionModel

    if args.curve_budget > 0:
        curve_run(args, full_generate, add_config_to_X, add_config_to_y, lem_loss, LargeExecutionModel)
        return
    if args.leak_budget > 0:
        leak_run(args, full_generate, add_config_to_X, add_config_to_y, lem_loss, LargeExecutionModel)
        return
    volumes, notionals, asset, lookback, n_ahead, split = load_panels(args.panels)
    x_train, _, y_train, _, _ = full_generate(volumes, notionals, target_asset=asset, lookback=lookback,
                                              n_ahead=n_ahead, split_date=split)
    x = add_config_to_X(x_train, 0.0, 1.0)
    y = add_config_to_y(y_train)
    print(f"reference: X {x_train.shape}, y {y.shape}", flush=True)

    def build():
        model = LargeExecutionModel(lookback=lookback, n_ahead=n_ahead, **README_CONFIG)
        model.compile(optimizer="adam", loss=lem_loss)
        return model

    result = bench_model(build, x, y, lem_loss, quick=args.quick, steady_batches=2, steady_repeats=2,
                         latency_repeats=3 if args.quick else 5, log=lambda s: print(s, flush=True))
    save_result(args.out, result, n_windows=len(y), n_features=x_train.shape[-1])


if __name__ == "__main__":
    main()
