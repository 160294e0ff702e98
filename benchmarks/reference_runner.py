"""Generic Keras/JAX training and inference benchmark harness, and the reference package's runner.

This file must stay importable WITHOUT our ``lems`` package: it runs inside the reference package's own
virtual environment (``/work/refvenv``: ``python3.11 -m venv /work/refvenv && /work/refvenv/bin/pip install
lems==0.1.1 jax pandas``), where ``lems`` is the reference. The reference is used as a black box through its
public API only (``lems.models.LargeExecutionModel``, ``lems.loss.lem_loss``,
``lems.data_formater.full_generate/add_config_to_X/add_config_to_y``); what it does is measured from outside
(:func:`observed_channels` perturbs the bars and watches ``X``). Our ``benchmarks/perf.py`` imports
:func:`bench_model` from here and ``benchmarks/reference_crypto.py`` imports :func:`budget_callback`, so that
both packages are measured by exactly the same code. Inputs and outputs travel as ``.npz`` files.

Modes (inside the reference venv, ``KERAS_BACKEND=jax`` is the default here)::

    /work/refvenv/bin/python benchmarks/reference_runner.py --panels PANELS.npz --out RESULT.npz [--quick]
    ... --fit-budget CPU_S --config fair [--variants shifted,published]   # reference_crypto.py
    ... --leak-budget CPU_S [--config small]                              # reference_leak.py

``PANELS.npz`` holds wide volume / notional panels (``index_ns``, ``columns``, ``volumes``, ``notionals``; NaN
where an asset has no bar) and the window settings (``lookback``, ``n_ahead``, ``split_ns``; for ``--fit-budget``
also ``val_end_ns`` and the validation keys ``val_assets``, ``val_origin_ns``).
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
import pandas as pd

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


def leak_run(args, full_generate, add_config_to_X, add_config_to_y, lem_loss, model_cls) -> None:
    """Train the reference twice for ``args.leak_budget / 2`` CPU seconds each (X as published; its observed
    channels shifted one bar, see :func:`shift_observed`) and save both test allocations, the test origins and
    the reference's own test targets."""
    import keras

    volumes, notionals, asset, lookback, n_ahead, split = load_panels(args.panels)
    x_train, x_test, y_train, y_test, dates = full_generate(volumes, notionals, target_asset=asset,
                                                            lookback=lookback, n_ahead=n_ahead, split_date=split)
    dates = np.asarray(dates)
    print(f"reference: X train {x_train.shape}, test {x_test.shape}, dates {dates.shape}", flush=True)
    config = CONFIGS[args.config]
    observed = observed_channels(full_generate, volumes, notionals, lookback, n_ahead)
    out: dict[str, np.ndarray] = {}
    for name, transform in (("published", lambda a: a), ("shifted", lambda a: shift_observed(a, observed))):
        keras.utils.set_random_seed(args.seed)
        model = model_cls(lookback=lookback, n_ahead=n_ahead, **config)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=lem_loss)
        xt = add_config_to_X(transform(x_train), 0.0, 1.0)
        start = time.perf_counter()
        hist = model.fit(xt, add_config_to_y(y_train), batch_size=64, epochs=10_000, verbose=0, shuffle=True,
                         callbacks=[budget_callback(args.leak_budget / 2)])
        losses = np.asarray(hist.history["loss"])
        print(f"  {name}: {len(losses)} epochs in {time.perf_counter() - start:.0f} s, loss {losses[0]:.4f} -> "
              f"{losses[-1]:.4f}", flush=True)
        out[f"alloc_{name}"] = np.asarray(model.predict(add_config_to_X(transform(x_test), 0.0, 1.0),
                                                        batch_size=256, verbose=0), dtype=np.float32)
        out[f"epochs_{name}"] = np.asarray(len(losses))
        out[f"loss_{name}"] = losses
    np.savez(args.out, dates_ns=np.asarray(pd_ns(dates)), n_train=len(x_train), y_test=np.asarray(y_test), **out)


#: Configuration of the fair comparison (issue 14 §4): lookback and horizon are ours (48, 12), hidden 50 as in
#: the independent measurement; layers, heads, embeddings and head width as in our model (1, 4, 8, 32: it
#: trains ~1.3x faster on this CPU than the constructor's defaults 2, 8, 20, None, so more steps fit the budget).
FAIR_CONFIG = {"hidden_size": 50, "hidden_rnn_layer": 1, "num_heads": 4, "num_embedding": 8,
               "fused_mlp_hidden_dim": 32}
CONFIGS = {"small": SMALL_CONFIG, "readme": README_CONFIG, "fair": FAIR_CONFIG}


def budget_callback(budget_s: float, evaluate: Callable[[float], None] | None = None,
                    clock: Callable[[], float] = time.process_time):
    """Keras callback: stops training once ``budget_s`` seconds of ``clock`` have been spent on it.

    The default clock is this process's CPU time (all threads), which stays fair when other jobs share the
    cores; compilation and the validation passes of early stopping are on the clock. ``evaluate(trained_s)`` is
    called before the first step (the untrained model) and at every epoch end; its own time is off the clock
    (Keras on JAX syncs the weights into the model only at epoch ends, hence short "epochs" for a fine curve).
    Shared by the reference runner and ``reference_crypto.py`` (our model), so both use the same clock.

    Args:
        budget_s: Training budget [s of ``clock``], > 0.
        evaluate: Optional checkpoint function of the training time spent so far [s].
        clock: Seconds (default :func:`time.process_time`).
    """
    import keras

    if not budget_s > 0:
        raise ValueError(f"budget_s must be > 0, got {budget_s}")

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.paused, self.exhausted = clock(), 0.0, False
            self._evaluate()

        def trained(self) -> float:
            return clock() - self.start - self.paused

        def _evaluate(self):
            if evaluate is not None:
                pause = clock()
                evaluate(self.trained())
                self.paused += clock() - pause

        def on_train_batch_end(self, batch, logs=None):
            if self.trained() >= budget_s:
                self.exhausted = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            self._evaluate()

    return Budget()


def observed_channels(full_generate, volumes, notionals, lookback: int, n_ahead: int, rows: int = 1500) -> np.ndarray:
    """Which channels of the reference's ``X`` carry observed bar data (black-box perturbation test).

    On ``rows`` bars of the first asset, the volumes and notionals (hence the bar VWAPs) of the last 40 bars are
    changed; a channel that changes anywhere is observed, the others (calendar fields, constants) are known in
    advance. Also checks that a horizon bar ``t0 + k`` enters ``X`` no earlier than at its own position
    ``lookback + k`` (so that shifting the observed channels one bar later removes exactly the look-ahead of
    docs/execution.md §3; lookback bars may affect every position: normalisation by the lookback).

    Returns:
        Boolean mask over the channels of ``X``.
    """
    asset = volumes.columns[0]
    vol = volumes[[asset]].dropna().iloc[:rows].copy()
    notional = notionals[[asset]].dropna().iloc[:rows].copy()
    split = vol.index[rows // 2]

    def windows(v, n):
        x_tr, x_te, _, _, dates = full_generate(v, n, target_asset=asset, lookback=lookback, n_ahead=n_ahead,
                                                split_date=split)
        return np.concatenate([x_tr, x_te]), pd_ns(dates)

    x0, d0 = windows(vol, notional)
    first = vol.index[-40]
    vol.loc[vol.index >= first, asset] *= 2.0
    notional.loc[notional.index >= first, asset] *= 2.2
    x1, d1 = windows(vol, notional)
    if not np.array_equal(d0, d1):
        raise SystemExit("observed_channels: the perturbation changed the reference's windows")
    changed = ~np.isclose(x1, x0, rtol=1e-6, atol=0.0, equal_nan=True)
    position = np.asarray(pd_ns(vol.index))
    bar = np.searchsorted(position, d0) - lookback  # bar index of position 0 of each window
    first_bar = int(np.searchsorted(position, pd_ns([first])[0]))
    pos_first = first_bar - bar  # position of the first perturbed bar in each window
    # A bar of the horizon (position >= lookback) must not reach earlier positions; a lookback bar may (the
    # reference scales volumes by lookback statistics, all known at the origin).
    early = changed & (np.arange(x0.shape[1])[None, :, None] < pos_first[:, None, None])
    if early[pos_first >= lookback].any():
        raise SystemExit("observed_channels: a horizon bar entered X before its own position (look-ahead that "
                         "a one-bar shift cannot remove)")
    return changed.any(axis=(0, 1))


def shift_observed(x: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``X`` with its observed channels moved one bar later (position ``j`` holds bar ``j - 1``'s observed
    values, position 0 repeated); known-in-advance channels stay at their own bar.

    Decision ``s`` reads positions ``<= lookback + s``: it then sees observed bars ``<= t0 + s - 1`` and the
    calendar of bar ``t0 + s``, what docs/execution.md §3 allows.
    """
    out = np.array(x, copy=True)
    out[:, 1:, observed] = x[:, :-1, observed]
    return out


def reference_windows(full_generate, volumes, notionals, lookback: int, n_ahead: int, split) -> dict[str, np.ndarray]:
    """The reference's own windows of every asset (one single-column panel of the asset's actual bars, NaN
    rows of the wide panels dropped), train and test parts concatenated: ``x``, ``y``, ``asset``, ``origin_ns`` and ``last_ns`` (open of the last horizon bar)."""
    parts: dict[str, list] = {k: [] for k in ("x", "y", "asset", "origin_ns", "last_ns")}
    for asset in volumes.columns:
        vol, notional = volumes[[asset]].dropna(), notionals[[asset]].dropna()  # the asset's actual bars
        x_tr, x_te, y_tr, y_te, dates = full_generate(vol, notional, target_asset=asset, lookback=lookback,
                                                      n_ahead=n_ahead, split_date=split)
        origin = pd_ns(dates)
        if len(origin) != len(x_tr) + len(x_te):
            raise SystemExit(f"reference dates ({len(origin)}) != windows ({len(x_tr) + len(x_te)})")
        bars = pd_ns(vol.index)
        step = int(np.median(np.diff(bars)))  # the reference's windows run on the regular clock grid
        off_grid = int((~np.isin(origin, bars)).sum())
        parts["x"].append(np.concatenate([x_tr, x_te]).astype(np.float32))
        parts["y"].append(np.concatenate([y_tr, y_te]).astype(np.float32))
        parts["asset"].append(np.full(len(origin), asset))
        parts["origin_ns"].append(origin)
        parts["last_ns"].append(origin + (n_ahead - 1) * step)
        print(f"reference windows {asset}: {len(origin)} ({x_tr.shape[1:]} each); {off_grid} origins are hours "
              "without a bar in the data (the reference fills the clock grid)", flush=True)
    return {k: np.concatenate(v) for k, v in parts.items()}


def _chunked_batches(x, y, batch_size: int, steps: int, seed: int):
    """A ``keras.utils.PyDataset`` of shuffled ``(x, y)`` batches, ``steps`` batches per "epoch"; the
    permutation runs on across epochs (a new one each time the data is exhausted). ``x`` may be a list of arrays
    (``[X, min_rate, max_rate]``): rows are counted on ``y``."""
    import keras

    n_rows = len(y)
    if any(len(a) != n_rows for a in (x if isinstance(x, (list, tuple)) else [x])):
        raise ValueError("x and y must have the same number of rows")

    class Chunks(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order, self.pos = self.rng.permutation(n_rows), 0
            self.rows = [self._draw() for _ in range(steps)]

        def _draw(self):
            if self.pos + batch_size > len(self.order):
                self.order, self.pos = self.rng.permutation(n_rows), 0
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


def _select(win: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in win.items()}


def split_reference(win: dict[str, np.ndarray], train_end_ns: int, val_end_ns: int, val_keys) -> tuple[dict, ...]:
    """Train / validation / test rows, purged as ours (``WindowSet.split``): train = last horizon bar before
    ``train_end``; validation = origin at or after it, last bar before ``val_end``, and (asset, origin) in
    ``val_keys`` (the validation windows of ours used for early stopping); test = origin at or after
    ``val_end``."""
    train = win["last_ns"] < train_end_ns
    val = (win["origin_ns"] >= train_end_ns) & (win["last_ns"] < val_end_ns)
    keys = pd.MultiIndex.from_arrays([np.asarray(val_keys[0]).astype(str), np.asarray(val_keys[1], np.int64)])
    val &= keys.get_indexer(pd.MultiIndex.from_arrays([win["asset"].astype(str), win["origin_ns"]])) >= 0
    test = win["origin_ns"] >= val_end_ns
    return tuple(_select(win, np.flatnonzero(m)) for m in (train, val, test))


def fit_variant(name, args, data, observed, api) -> dict[str, np.ndarray]:
    """Train one variant with early stopping on validation (best weights restored) and a CPU budget."""
    import keras

    _, add_config_to_X, add_config_to_y, lem_loss, model_cls = api
    train, val, test = data
    shift = (lambda a: shift_observed(a, observed)) if name == "shifted" else (lambda a: a)
    keras.utils.set_random_seed(args.seed)
    model = model_cls(lookback=args.lookback, n_ahead=args.n_ahead, **CONFIGS[args.config])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=lem_loss)
    xv = add_config_to_X(shift(val["x"]), 0.0, 1.0)
    times, fixed = [], []

    def evaluate(trained_s: float) -> None:
        pred = np.asarray(model.predict(xv, batch_size=512, verbose=0))
        times.append(trained_s)
        fixed.append(pred[:, :, args.n_ahead].astype(np.float32))
        print(f"  {name}: validation checkpoint at {trained_s:.0f} CPU s of training", flush=True)

    budget = budget_callback(args.fit_budget, evaluate)
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)
    data_train = _chunked_batches(add_config_to_X(shift(train["x"]), 0.0, 1.0), add_config_to_y(train["y"]),
                                  args.batch_size, args.val_steps, args.seed)
    wall, cpu = time.perf_counter(), time.process_time()
    hist = model.fit(data_train, validation_data=(xv, add_config_to_y(val["y"])), validation_batch_size=512,
                     epochs=1_000_000, verbose=0, callbacks=[early, budget])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    val_loss = np.asarray(hist.history["val_loss"])
    stopped = "early_stopping" if early.stopped_epoch > 0 else "budget" if budget.exhausted else "epochs"
    print(f"  {name}: {len(val_loss)} chunks of {args.val_steps} batches, best {int(np.argmin(val_loss)) + 1}, "
          f"stopped by {stopped}, {cpu:.0f} CPU s / {wall:.0f} s wall", flush=True)
    alloc = np.asarray(model.predict(add_config_to_X(shift(test["x"]), 0.0, 1.0), batch_size=512, verbose=0))
    return {f"alloc_test_{name}": alloc.astype(np.float32), f"ckpt_cpu_s_{name}": np.asarray(times),
            f"ckpt_val_fixed_{name}": np.stack(fixed), f"val_loss_{name}": val_loss,
            f"loss_{name}": np.asarray(hist.history["loss"]), f"best_chunk_{name}": np.asarray(np.argmin(val_loss)),
            f"params_{name}": np.asarray(model.count_params()), f"stopped_by_{name}": np.asarray(stopped),
            f"fit_cpu_s_{name}": np.asarray(cpu), f"fit_wall_s_{name}": np.asarray(wall)}


def fit_run(args, *api) -> None:
    """The fair comparison (issue 14 §4): the reference's own windows, split like ours, each variant trained
    with validation, early stopping and a CPU budget; test allocations and validation checkpoints saved to
    ``args.out`` after each variant (partial results survive)."""
    full_generate = api[0]
    d = np.load(args.panels, allow_pickle=False)
    volumes, notionals, _, lookback, n_ahead, split = load_panels(args.panels)
    args.lookback, args.n_ahead = lookback, n_ahead
    observed = observed_channels(full_generate, volumes, notionals, lookback, n_ahead)
    print(f"reference X channels observed (shifted one bar in the leak-free variant): {observed.tolist()}",
          flush=True)
    win = reference_windows(full_generate, volumes, notionals, lookback, n_ahead, split)
    data = split_reference(win, int(d["split_ns"]), int(d["val_end_ns"]), (d["val_assets"], d["val_origin_ns"]))
    print("reference rows train / validation / test: " + " / ".join(str(len(p["x"])) for p in data), flush=True)
    out: dict[str, np.ndarray] = {"observed_channels": observed, "config": np.asarray(repr(CONFIGS[args.config])),
                                  "budget_s": np.asarray(args.fit_budget), "n_train": np.asarray(len(data[0]["x"]))}
    for part, rows in zip(("val", "test"), data[1:]):
        out.update({f"{part}_assets": rows["asset"].astype(str), f"{part}_origin_ns": rows["origin_ns"],
                    f"y_{part}": rows["y"]})
    for name in args.variants.split(","):
        out.update(fit_variant(name, args, data, observed, api))
        np.savez(args.out, **out)
        print(f"  saved {args.out}", flush=True)


def pd_ns(dates) -> np.ndarray:
    """Datetimes (any numpy / pandas form, naive = UTC) as int64 nanoseconds."""
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(dates))).as_unit("ns").asi8


def main(argv: list[str] | None = None) -> None:
    """Reference runner: the reference package, README configuration, measured by :func:`bench_model`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--panels", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--leak-budget", type=float, default=0.0,
                        help="leak check: total training budget [s] (two models); 0 = performance benchmark")
    parser.add_argument("--config", choices=tuple(CONFIGS), default="small", help="model size (leak check, fit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit-budget", type=float, default=0.0,
                        help="fair comparison: CPU seconds of training per variant; panels may hold several assets")
    parser.add_argument("--val-steps", type=int, default=200, help="fit: batches between validation checks")
    parser.add_argument("--patience", type=int, default=5, help="fit: early-stopping patience [validation checks]")
    parser.add_argument("--batch-size", type=int, default=64, help="fit: batch size")
    parser.add_argument("--variants", default="shifted,published", help="fit: variants to train, in order")
    args = parser.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    repo_root = os.path.dirname(here)
    # The one sys.path edit under benchmarks/ (documented isolation): this script runs in a SEPARATE virtual
    # environment with the reference package (lems 0.1.1) installed, as `<refvenv>/bin/python reference_runner.py`
    # from a temporary folder. Dropping this folder and our repository root from the path makes `import lems` below
    # resolve to the reference package, never to ours; the check after the import enforces it.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) not in (here, repo_root)]
    import lems  # the REFERENCE package (black box)

    if os.path.abspath(lems.__file__).startswith(repo_root):
        raise SystemExit("reference_runner.py must run in the reference venv, not on our package")
    from lems.data_formater import add_config_to_X, add_config_to_y, full_generate
    from lems.loss import lem_loss
    from lems.models import LargeExecutionModel

    if args.fit_budget > 0:
        fit_run(args, full_generate, add_config_to_X, add_config_to_y, lem_loss, LargeExecutionModel)
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
