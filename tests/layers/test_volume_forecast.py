"""VolumeForecast: the dynamic volume forecast of the decoder (silent start, causality, the share formula, the loss)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from lems.layers.decoder import FORECAST_RATE, AllocationDecoder, VolumeForecast, relative_volume

pytestmark = pytest.mark.backend

LOOKBACK, H, DC = 6, 5, 3
W = LOOKBACK + H - 1


def forecast(gain=(0.0, 0.0), bias=0.0, context=False, decay_halflife=None) -> VolumeForecast:
    layer = VolumeForecast(H, use_context=context)
    layer.build((None, H, DC))
    layer.filter_gain.assign(np.asarray(gain, np.float32) / FORECAST_RATE)
    layer.level_bias.assign(np.float32(bias / FORECAST_RATE))
    if decay_halflife is not None:
        layer.decay_log_halflife.assign(np.float32(np.log(decay_halflife) / FORECAST_RATE))
    return layer


def inputs(seed=0, batch=4):
    rng = np.random.default_rng(seed)
    seasonal = rng.uniform(0.3, 2.0, size=(batch, H)).astype(np.float32)
    tail = np.cumsum(seasonal[:, ::-1], axis=1)[:, ::-1]
    share = seasonal[:, :-1] / tail[:, :-1]
    prior = (np.log(share) - np.log1p(-share)).astype(np.float32)
    surprise = rng.normal(0, 1, size=(batch, W)).astype(np.float32)
    context = rng.normal(0, 1, size=(batch, H, DC)).astype(np.float32)
    return prior, seasonal, surprise, context


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x), np.float64)


def test_silent_forecast_is_the_static_curve_exactly():
    prior, seasonal, surprise, context = inputs()
    layer = forecast(context=True)  # zero gains, bias and context kernel: the untrained forecast
    level = layer.level(ops.convert_to_tensor(surprise), ops.convert_to_tensor(context))
    assert not numpy(level).any()
    logits = numpy(layer.share_logits(ops.convert_to_tensor(prior), ops.convert_to_tensor(seasonal[:, :-1]), level))
    np.testing.assert_array_equal(logits, prior.astype(np.float64))


def test_level_reads_only_the_bars_closed_before_each_decision():
    prior, seasonal, surprise, context = inputs(1)
    layer = forecast(gain=(0.7, -0.3), bias=0.1, context=True)
    layer.context_level.kernel.assign(np.ones((DC, 1), np.float32))
    base = numpy(layer.level(ops.convert_to_tensor(surprise), ops.convert_to_tensor(context)))
    rng = np.random.default_rng(5)
    for s in range(H - 1):
        later = surprise.copy()
        later[:, LOOKBACK + s:] += rng.normal(0, 5, size=later[:, LOOKBACK + s:].shape)
        ctx = context.copy()
        ctx[:, s + 1:] += rng.normal(0, 5, size=ctx[:, s + 1:].shape)
        out = numpy(layer.level(ops.convert_to_tensor(later), ops.convert_to_tensor(ctx)))
        np.testing.assert_allclose(out[:, :s + 1], base[:, :s + 1], atol=1e-6)
        if s < H - 2:
            assert np.abs(out[:, s + 1:] - base[:, s + 1:]).max() > 1e-4  # later decisions do react


def test_level_is_an_exponential_mean_of_the_closed_surprises():
    _, _, surprise, _ = inputs(2)
    layer = forecast(gain=(1.0, 0.0))
    halflife = np.exp(numpy(layer.filter_log_halflife) * FORECAST_RATE)[0]
    kappa = 0.5 ** (1.0 / halflife)
    level = numpy(layer.level(ops.convert_to_tensor(surprise)))
    for s in range(H - 1):
        closed = surprise[:, :LOOKBACK + s].astype(np.float64)
        weights = (1 - kappa) * kappa ** np.arange(closed.shape[1])[::-1]
        np.testing.assert_allclose(level[:, s], 4.0 * np.tanh(closed @ weights / 4.0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bias", [1.0, -1.0])
def test_a_level_above_normal_front_loads_the_remaining_volume(bias):
    prior, seasonal, surprise, _ = inputs(3)
    layer = forecast(bias=bias)
    level = layer.level(ops.convert_to_tensor(surprise))
    logits = numpy(layer.share_logits(ops.convert_to_tensor(prior), ops.convert_to_tensor(seasonal[:, :-1]), level))
    assert np.all(np.sign(logits - prior) == np.sign(bias))


def test_share_is_the_first_bar_of_the_bar_by_bar_forecast():
    """The closed-form share of what remains equals the bar-by-bar forecast summed over the remaining bars."""
    prior, seasonal, surprise, _ = inputs(4)
    layer = forecast(bias=0.8, decay_halflife=1.5)
    level = layer.level(ops.convert_to_tensor(surprise))
    share = 1.0 / (1.0 + np.exp(-numpy(layer.share_logits(ops.convert_to_tensor(prior),
                                                             ops.convert_to_tensor(seasonal[:, :-1]), level))))
    # the bar-by-bar forecast of bars 0 .. H-2 (S_u (1 + g exp(-lam C_su) phi(lam x_u))), plus the last bar's
    bars = numpy(layer.bar_forecast(ops.convert_to_tensor(seasonal[:, :-1]), level))  # (B, S, U)
    lam = np.log(2) / 1.5
    start = np.cumsum(seasonal, axis=1) - seasonal
    before_last = start[:, -1:] - start[:, :-1]
    g = np.expm1(numpy(level))
    last = seasonal[:, -1:] + g * np.exp(-lam * before_last) * (-np.expm1(-lam * seasonal[:, -1:])) / lam
    expected = bars[:, np.arange(H - 1), np.arange(H - 1)] / (bars.sum(axis=2) + last)
    np.testing.assert_allclose(share, expected, rtol=1e-4)


def test_divergence_is_zero_for_a_perfect_forecast_and_positive_otherwise():
    _, seasonal, surprise, _ = inputs(6)
    layer = forecast()
    level = layer.level(ops.convert_to_tensor(surprise))
    x = ops.convert_to_tensor(seasonal[:, :-1])
    assert float(numpy(layer.divergence(x, level, ops.convert_to_tensor(3.0 * seasonal[:, :-1])))) < 1e-6
    rng = np.random.default_rng(0)
    other = seasonal[:, :-1] * rng.uniform(0.2, 5.0, size=seasonal[:, :-1].shape).astype(np.float32)
    assert float(numpy(layer.divergence(x, level, ops.convert_to_tensor(other)))) > 1e-3


def test_relative_volume_inverts_the_volume_channel():
    from lems.data.features import VOLUME_DELTA

    v = np.array([0.0, 0.01, 1.0, 7.5], np.float64)  # V / m
    channel = np.log((v + VOLUME_DELTA) / (1 + VOLUME_DELTA)).astype(np.float32)
    np.testing.assert_allclose(numpy(relative_volume(ops.convert_to_tensor(channel))), v, atol=1e-6)


def test_decoder_with_forecast_adds_its_loss_in_training_only():
    rng = np.random.default_rng(0)
    decoder = AllocationDecoder(H, hidden_dim=6, head_hidden_dims=(5,), volume_forecast=True,
                                forecast_loss_weight=2.0)
    prior, seasonal, surprise, context = inputs(7, batch=2)
    args = [context, rng.normal(size=(2, H - 1)), rng.normal(size=(2, H - 1)), np.zeros((2, 1)), np.ones((2, 1)),
            prior, surprise, seasonal[:, :-1]]
    args = [ops.convert_to_tensor(np.asarray(a, np.float32)) for a in args]
    out = decoder(args, training=False)
    assert not decoder.losses
    decoder(args, training=True)
    assert len(decoder.losses) == 1 and float(numpy(decoder.losses[0])) > 0
    assert tuple(out.shape) == (2, H, H + 1, 4, 2)
    with pytest.raises(ValueError, match="volume_forecast needs"):
        decoder(args[:6])
    with pytest.raises(ValueError, match="forecast_loss_weight"):
        AllocationDecoder(H, volume_forecast=True, forecast_loss_weight=-1.0)


def test_forecast_config_round_trip():
    layer = VolumeForecast(7, n_filters=3, use_context=False)
    clone = VolumeForecast.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    decoder = AllocationDecoder(4, volume_forecast=True, forecast_loss_weight=0.5, forecast_context=False)
    config = decoder.get_config()
    assert config["volume_forecast"] and config["forecast_loss_weight"] == 0.5 and not config["forecast_context"]
    assert keras.layers.deserialize(keras.layers.serialize(decoder)).get_config() == config
