"""Data parallelism with keras.distribution: 4 simulated CPU devices follow the 1-device loss trajectory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6
RTOL = 1e-4  # float32: the global mean is summed in another order across 4 devices (seen: <= 1e-6 after 6 steps)

# Run in a fresh interpreter: the device count is fixed when JAX starts.
PAYLOAD = textwrap.dedent(f"""
    import json
    import jax, keras, numpy as np
    jax.config.update("jax_disable_most_optimizations", True)  # compiles ~2x faster; same math
    from lems.data.synthetic import synthetic_market
    from lems.data.universe import SymbolUniverse
    from lems.distributed import data_parallel, local_batch_size, process_info
    from lems.loss import lem_loss
    from lems.models import LargeExecutionModel
    from lems.utils import set_random_seed

    part = SymbolUniverse(synthetic_market(n_assets=4, n_days=20, seed=0), 12, 4).windows()
    data = part.batches(local_batch_size(16), shuffle=True, seed=0, drop_remainder=True)
    batches = [data[i] for i in range({STEPS})]

    def model():
        set_random_seed(0)
        m = LargeExecutionModel(lookback=12, n_ahead=4, hidden_size=8, hidden_rnn_layer=1, num_heads=2,
                                num_embedding=4, fused_mlp_hidden_dim=8)
        m.compile(optimizer=keras.optimizers.Adam(1e-2), loss=lem_loss)
        m.build([(None, 15, 14), (None, 1), (None, 1)])
        return m

    def trajectory(m):
        return [float(m.train_on_batch(x, y, sample_weight=w)) for x, y, w in batches]

    single = model()
    initial = single.get_weights()
    one = trajectory(single)
    distribution = data_parallel()
    parallel = model()
    parallel.set_weights(initial)
    replicas = {{len(v.value.sharding.device_set) for v in parallel.trainable_variables}}
    four = trajectory(parallel)
    print(json.dumps({{"info": list(process_info().__dict__.values()), "mesh": list(distribution.device_mesh.shape),
                      "replicas": sorted(replicas), "one": one, "four": four,
                      "weights_close": all(np.allclose(a, b, rtol=1e-3, atol=1e-5)
                                           for a, b in zip(single.get_weights(), parallel.get_weights()))}}))
""")


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution data parallelism is JAX-only here")
def test_four_devices_follow_one_device_trajectory():
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PAYLOAD], env=env, capture_output=True, text=True, timeout=300,
                         cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["info"] == [0, 1, 4, 4] and result["mesh"] == [4] and result["replicas"] == [4]
    one, four = np.array(result["one"]), np.array(result["four"])
    assert one.shape == (STEPS,) and np.all(np.isfinite(one))
    assert not np.allclose(one, one[0])  # the weights move: a trajectory, not one value repeated
    np.testing.assert_allclose(four, one, rtol=RTOL)
    assert result["weights_close"]


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the single-process helpers are JAX-only")
def test_errors_and_single_process_helpers():
    from lems import distributed

    info = distributed.process_info()
    assert info.process_id == 0 and info.num_processes == 1
    assert distributed.agree_num_batches(7) == 7
    assert distributed.local_batch_size(8 * info.global_devices) == 8 * info.global_devices
    with pytest.raises(ValueError, match="multiple of the device count"):
        distributed.local_batch_size(0)
    with pytest.raises(ValueError, match="host:port"):
        distributed.initialize("localhost", 2, 0)
    with pytest.raises(ValueError, match="process_id"):
        distributed.initialize("localhost:1234", 2, 2)


@pytest.mark.backend
@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the error other backends get (run on PyTorch and TF)")
def test_other_backends_get_a_clear_error():
    from lems import distributed

    with pytest.raises(RuntimeError, match="JAX backend"):
        distributed.data_parallel()
    with pytest.warns(UserWarning, match="one device"):
        assert distributed.data_parallel(strict=False) is None
    with pytest.raises(RuntimeError, match="JAX backend"):
        distributed.process_info()
    with pytest.raises(RuntimeError, match="JAX backend"):
        distributed.initialize("localhost:1234", 2, 0)
