"""Keras 3 layers of lems (backend-agnostic: JAX, PyTorch, TensorFlow).

Every class is registered under the `"lems"` package (`lems.layers.registry.register`),
so saved `.keras` models reload without `custom_objects`.
"""

from __future__ import annotations

from lems.layers.constraints import (
    ClipConstraint,
    EqualInitializer,
    FusedGlorotUniform,
    PositiveSumToOneConstraint,
)
from lems.layers.decoder import AllocationDecoder, DecoderState
from lems.layers.embedding import EmbeddingLayer
from lems.layers.fused import FusedMLP
from lems.layers.grn import GRN, AddAndNorm, Gate
from lems.layers.kan import KANLinear
from lems.layers.registry import register
from lems.layers.tkan import TKAN, TKANCell
from lems.layers.vsn import VariableSelectionNetwork

__all__ = [
    "AddAndNorm",
    "AllocationDecoder",
    "DecoderState",
    "ClipConstraint",
    "EmbeddingLayer",
    "EqualInitializer",
    "FusedGlorotUniform",
    "FusedMLP",
    "GRN",
    "Gate",
    "KANLinear",
    "PositiveSumToOneConstraint",
    "TKAN",
    "TKANCell",
    "VariableSelectionNetwork",
    "register",
]
