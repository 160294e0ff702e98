"""Helpers on nested batch structures (tuples, lists, dicts of arrays)."""

from __future__ import annotations

from typing import Any

__all__ = ["as_tuples"]


def as_tuples(data: Any) -> Any:
    """``data`` with every list turned into a tuple (``tf.data``, behind Keras' PyDataset adapter on the
    TensorFlow backend, accepts tuples but not lists in a batch's structure)."""
    if isinstance(data, (list, tuple)):
        return tuple(as_tuples(a) for a in data)
    if isinstance(data, dict):
        return {k: as_tuples(v) for k, v in data.items()}
    return data
