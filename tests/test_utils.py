"""lems.utils: seeding without TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import lems.utils
from lems.utils import gpu_available, set_random_seed


def test_set_random_seed_is_reproducible_and_validates():
    set_random_seed(3)
    first = (np.asarray(keras.random.normal((4,))), np.random.rand())
    set_random_seed(3)
    second = (np.asarray(keras.random.normal((4,))), np.random.rand())
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]
    with pytest.raises(ValueError, match="integer"):
        set_random_seed(1.5)


@pytest.mark.slow
def test_training_on_jax_does_not_import_tensorflow():
    code = ("import sys, lems; from lems.training import TrainConfig, train; "
            "train(TrainConfig(synthetic_assets=1, synthetic_days=6, lookback=8, n_ahead=3, hidden_size=4, "
            "num_heads=1, num_embedding=2, fused_mlp_hidden_dim=4, batch_size=32, epochs=1, fast_compile=True), "
            "verbose=0); print('tensorflow' in sys.modules)")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_gpu_available_says_why_when_the_backend_cannot_answer(monkeypatch):
    assert isinstance(gpu_available(), bool)

    def broken(name):
        raise RuntimeError("Unable to initialize backend 'cuda'")

    monkeypatch.setattr(lems.utils, "_backend_sees_gpu", broken)
    with pytest.warns(RuntimeWarning, match="Unable to initialize backend 'cuda'.*assuming no GPU"):
        assert gpu_available() is False

    def bug(name):
        raise KeyError("not a device problem")

    monkeypatch.setattr(lems.utils, "_backend_sees_gpu", bug)
    with pytest.raises(KeyError):  # anything else is not turned into "no GPU"
        gpu_available()
