"""Fixed batch shapes, so that a compiled model never recompiles for a partial batch or a new batch size.

Keras compiles one program per input shape on JAX (and on TensorFlow with XLA): the final partial batch of
an epoch and every new inference batch size used to cost a fresh compilation (13-25 s for a training step
of the README configuration, ~3.5 s for a forward pass; ``benchmarks/results/perf/perf_cpu.md``). Here every
batch has one of a few fixed shapes:

* training and evaluation: every batch has exactly ``batch_size`` rows; the final partial batch is filled
  with copies of one of its own rows carrying sample weight 0, and its real rows are weighted
  ``batch_size / n_real`` so that the batch's mean loss (Keras' ``sum_over_batch_size``) is the mean over its
  real rows, exactly as without padding;
* inference: inputs are padded to a multiple of the batch size, or, below it, to the next power of two
  (1, 2, 4, ...), and the padded rows are cut from the output. Padded rows are copies of real rows, so they
  can never produce NaN.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from lems.data.nested import as_tuples


def bucket_size(n: int, batch_size: int | None = None) -> int:
    """Rows an input of ``n`` rows is padded to for inference.

    Args:
        n: Number of real rows (>= 1).
        batch_size: Inference batch size; ``None`` for one batch of any size.

    Returns:
        The next power of two >= ``n`` when it is below ``batch_size`` (or no batch size is given),
        otherwise the next multiple of ``batch_size``.
    """
    if n < 1:
        raise ValueError(f"need at least one row, got {n}")
    bucket = 1 << (int(n) - 1).bit_length()
    if batch_size is None or bucket < batch_size:
        return bucket
    return -(-int(n) // int(batch_size)) * int(batch_size)


def is_array_data(data: Any) -> bool:
    """True for a numpy array or a (nested) list / tuple / dict of numpy arrays with one common length."""
    if data is None:
        return False
    leaves = keras.tree.flatten(data)
    if not leaves or not all(isinstance(a, np.ndarray) and a.ndim >= 1 for a in leaves):
        return False
    return len({a.shape[0] for a in leaves}) == 1


def num_rows(data: Any) -> int:
    """Length of the batch axis of array data."""
    return int(keras.tree.flatten(data)[0].shape[0])


def take_rows(data: Any, rows: np.ndarray) -> Any:
    """Rows ``rows`` of every array of ``data`` (structure kept)."""
    return keras.tree.map_structure(lambda a: a[rows], data)


def pad_to(data: Any, n_rows: int) -> Any:
    """``data`` with its first row repeated at the end up to ``n_rows`` rows (structure kept)."""
    n = num_rows(data)
    if n_rows < n:
        raise ValueError(f"cannot pad {n} rows to {n_rows}")
    if n_rows == n:
        return data
    return take_rows(data, np.concatenate([np.arange(n), np.zeros(n_rows - n, dtype=np.int64)]))


class PaddedBatches(keras.utils.PyDataset):
    """``(x, y, sample_weight)`` batches of exactly ``batch_size`` rows (see the module docstring).

    Args:
        x: Model inputs: a numpy array or a nested structure of them.
        y: Targets (numpy array or structure), same number of rows.
        batch_size: Rows per batch.
        sample_weight: Optional ``(N,)`` per-row weights (multiplied into the padding weights).
        shuffle: Draw a new row order at every epoch.
        seed: Seed of the row order (default: numpy's global generator).
        drop_remainder: Serve only full batches (the rows left over change from epoch to epoch when
            shuffling) instead of padding the last one; the batch size is then at most the number of rows.
    """

    def __init__(self, x: Any, y: Any, batch_size: int, sample_weight: Any = None, shuffle: bool = False,
                 seed: int | None = None, drop_remainder: bool = False) -> None:
        super().__init__()
        self.x, self.y = x, y
        self.n = num_rows(x)
        if self.n < 1 or num_rows(y) != self.n:
            raise ValueError(f"x and y must have the same number (>= 1) of rows, got {self.n} and {num_rows(y)}")
        self.batch_size = max(1, int(batch_size))  # also when n < batch_size: one compiled shape
        self.drop_remainder = bool(drop_remainder)
        if self.drop_remainder:
            self.batch_size = min(self.batch_size, self.n)
        weights = np.ones(self.n, np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32)
        if weights.shape != (self.n,):
            raise ValueError(f"sample_weight must have shape ({self.n},), got {weights.shape}")
        self.weights = weights
        self.shuffle = bool(shuffle)
        self.rng = np.random.default_rng(seed) if seed is not None else None
        self.order = self._permutation()

    def _permutation(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return self.rng.permutation(self.n) if self.rng is not None else np.random.permutation(self.n)

    def __len__(self) -> int:
        if self.drop_remainder:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range [0, {len(self)})")
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        real = len(rows)
        weights = self.weights[rows] * np.float32(self.batch_size / real)
        if real < self.batch_size:
            rows = np.concatenate([rows, np.full(self.batch_size - real, rows[0])])
            weights = np.concatenate([weights, np.zeros(self.batch_size - real, np.float32)])
        return as_tuples(take_rows(self.x, rows)), as_tuples(take_rows(self.y, rows)), weights

    def on_epoch_end(self) -> None:
        self.order = self._permutation()


class FixedBatchShapes:
    """Mixin for a ``keras.Model``: ``fit``, ``evaluate``, ``predict`` and ``predict_on_batch`` on numpy data
    use the fixed batch shapes of this module. Anything else (datasets, generators, ``validation_split``,
    ``class_weight``, ``steps_per_epoch``) goes to Keras unchanged.
    """

    def fit(self, x=None, y=None, batch_size=None, *, validation_data=None, shuffle=True, sample_weight=None,
            validation_batch_size=None, **kwargs):
        """``keras.Model.fit``; numpy ``x``/``y`` are served as :class:`PaddedBatches` (same results, one
        compiled step)."""
        plain = any(kwargs.get(k) for k in ("validation_split", "class_weight", "steps_per_epoch"))
        if plain or not (is_array_data(x) and is_array_data(y)):
            return super().fit(x, y, batch_size=batch_size, validation_data=validation_data, shuffle=shuffle,
                               sample_weight=sample_weight, validation_batch_size=validation_batch_size, **kwargs)
        batch_size = batch_size or 32
        data = PaddedBatches(x, y, batch_size, sample_weight, shuffle=shuffle)
        if isinstance(validation_data, (tuple, list)) and 2 <= len(validation_data) <= 3 and all(
                is_array_data(part) for part in validation_data[:2]):
            validation_data = PaddedBatches(*validation_data[:2], validation_batch_size or batch_size,
                                            validation_data[2] if len(validation_data) == 3 else None)
        return super().fit(data, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, *, sample_weight=None, **kwargs):
        """``keras.Model.evaluate``; numpy data in fixed-shape batches."""
        if kwargs.get("steps") or not (is_array_data(x) and is_array_data(y)):
            return super().evaluate(x, y, batch_size=batch_size, sample_weight=sample_weight, **kwargs)
        return super().evaluate(PaddedBatches(x, y, batch_size or 32, sample_weight), **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        """``keras.Model.predict``; numpy inputs padded to a multiple of the batch size (or, below it, to a
        power of two), the padding cut from the output."""
        if kwargs.get("steps") or not is_array_data(x):
            return super().predict(x, batch_size=batch_size, **kwargs)
        n, batch_size = num_rows(x), batch_size or 32
        padded = pad_to(x, bucket_size(n, batch_size))
        out = super().predict(padded, batch_size=min(batch_size, num_rows(padded)), **kwargs)
        return take_rows(out, np.arange(n))

    def predict_on_batch(self, x):
        """``keras.Model.predict_on_batch``; numpy inputs padded to the next power of two rows."""
        if not is_array_data(x):
            return super().predict_on_batch(x)
        n = num_rows(x)
        return take_rows(super().predict_on_batch(pad_to(x, bucket_size(n))), np.arange(n))


__all__ = ["FixedBatchShapes", "PaddedBatches", "as_tuples", "bucket_size", "is_array_data", "num_rows", "pad_to", "take_rows"]
