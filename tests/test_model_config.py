"""One set of model defaults: [model] is LargeExecutionModel's arguments (generated from its signature), every
argument is reachable from config files and CLI flags, the product preset is the only override, and old configs
still load. Also the ONE builder of execution conditions and the open train()."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from lems.cli import build_parser
from lems.execution import SquareRootImpact
from lems.models import LargeExecutionModel
from lems.training import (
    MODEL_PRESET,
    ModelConfig,
    TrainConfig,
    build_model,
    build_windows,
    conditions_from_settings,
    split_windows,
    train,
)
from lems.training.sections import model_argument_defaults


def _arguments() -> dict:
    signature = inspect.signature(LargeExecutionModel.__init__)
    return {n: p.default for n, p in signature.parameters.items() if n not in ("self", "lookback", "n_ahead",
                                                                                 "kwargs")}


def test_model_section_is_the_model_signature_with_the_preset():
    fields = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    arguments = _arguments()
    assert list(fields) == list(arguments) == list(model_argument_defaults())
    for name, default in arguments.items():
        assert fields[name] == MODEL_PRESET.get(name, default), name
    assert set(MODEL_PRESET) < set(arguments)
    # the product trains the small model of lems 0.2 ...
    assert (fields["hidden_size"], fields["num_heads"], fields["rule_decay"]) == (32, 4, 0.5)
    # ... while the seed's public API keeps lems 0.1.1's sizes
    assert (arguments["hidden_size"], arguments["num_heads"], arguments["hidden_rnn_layer"]) == (200, 8, 2)
    assert all(f.metadata["doc"] and f.metadata["doc"] != f.name for f in dataclasses.fields(ModelConfig))


def test_every_model_argument_reaches_the_model_from_a_file_and_the_cli(tmp_path):
    config = TrainConfig(lookback=8, n_ahead=4, use_prior=False, tracking_loss_weight=0.25,
                         tracking_loss_pooling="window", train_columns=3, max_scale_factor=2.0,
                         forecast_context=False, rule_decay=0.0)
    for suffix in (".toml", ".yaml", ".json"):
        assert TrainConfig.load(config.save(tmp_path / f"c{suffix}")) == config
    model = build_model(config)
    got = model.get_config()
    for name, value in config.model.to_dict().items():
        if name in ("n_known_features", "volume_forecast"):  # resolved by the model (pipeline default, prior off)
            continue
        assert got[name] == value, name
    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    missing = [name for name in _arguments() if f"cfg_{name}" not in flags]
    assert not missing
    args = build_parser().parse_args(["train", "synthetic", "--tracking-loss-pooling", "window", "--no-use-prior",
                                      "--train-columns", "5"])
    from lems.cli import _train_config

    from_cli = _train_config(args, ["synthetic"]).model
    assert (from_cli.tracking_loss_pooling, from_cli.use_prior, from_cli.train_columns) == ("window", False, 5)


def test_old_configs_load_and_bad_model_values_are_named():
    flat = TrainConfig.from_dict({"hidden_size": 16, "num_heads": 2, "lookback": 24, "data": ["synthetic"],
                                  "spread_bps": 1.0})  # lems 0.2 flat names and a legacy key
    assert flat.model.hidden_size == 16 and flat.execution.half_spread_bps == 1.0
    assert flat.model.rule_decay == 0.5 and flat.model.hidden_rnn_layer == MODEL_PRESET["hidden_rnn_layer"]
    with pytest.raises(ValueError, match="tracking_loss_pooling"):
        TrainConfig(tracking_loss_pooling="median")
    with pytest.raises(ValueError, match="train_columns must be >= 1"):
        TrainConfig(train_columns=0)
    with pytest.raises(ValueError, match="unknown setting 'hidden'"):
        TrainConfig(hidden=3)


def test_one_conditions_builder_keeps_require_completion():
    settings = {"sizes": [0.05], "impact_coef": 1.0, "max_participation": 0.1, "require_completion": True,
                "train_size": 0.05}
    (built,) = conditions_from_settings(settings)
    assert built.require_completion and built.max_participation == 0.1
    assert isinstance(built.cost_model, SquareRootImpact)
    config = TrainConfig(execution=settings)
    assert config.execution.training_conditions().require_completion  # training's conditions no longer drop it
    assert [c.size.participation for c in conditions_from_settings(config.execution, sizes=[0.02, 0.08])] == \
        [0.02, 0.08]
    with pytest.raises(ValueError, match="max_participation"):
        conditions_from_settings(config.execution, sizes=[0.5])  # the cap cannot complete it


def test_train_is_open_to_own_targets_loss_and_model_arguments():
    config = TrainConfig(synthetic_assets=1, synthetic_days=6, lookback=8, n_ahead=4, stride=2, hidden_size=4,
                         num_heads=1, num_embedding=2, fused_mlp_hidden_dim=4, batch_size=32, max_steps=2,
                         patience=0, fast_compile=True, tune_rule_prior=False)
    splits = split_windows(config, build_windows(config))
    seen = {}

    def loss(y_true, y_pred):
        seen["channels"] = y_true.shape[-1]
        from lems.loss import lem_loss

        return lem_loss(y_true[..., :2], y_pred)

    three = [np.concatenate([np.asarray(p.y), np.zeros((*np.asarray(p.y).shape[:2], 1))], -1)
             for p in (splits.train, splits.val)]
    result = train(config, windows=splits, verbose=0, loss=loss, targets=tuple(three), model_args={"use_prior": False},
                   conditions=None)
    assert seen["channels"] == 3 and result.model.use_prior is False and result.epochs_run >= 1
    with pytest.raises(ValueError, match="unknown LargeExecutionModel argument"):
        train(config, windows=splits, verbose=0, model_args={"hidden": 3})
    with pytest.raises(ValueError, match="one row per window"):
        train(config, windows=splits, verbose=0, targets=(three[0][:5], three[1]))
