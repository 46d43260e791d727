import pytest

from jepa_wms.config import ConfigError, ExperimentConfig, config_from_dict, load_config, parse_override


def test_embedded_wall_config_loads():
    cfg = load_config("wall")
    assert cfg.env == "wall"
    assert cfg.plan.num_samples == 300 and cfg.plan.iterations == 30 and cfg.plan.num_elites == 10
    assert cfg.plan.horizon == 6 and cfg.data.frameskip == 5


def test_overrides_are_typed_and_nested():
    cfg = load_config("wall", ["train.epochs=3", "optim.lr=2e-4", "model.encoder.channels=[8, 16]"])
    assert cfg.train.epochs == 3
    assert cfg.optim.lr == pytest.approx(2e-4)
    assert cfg.model.encoder.channels == [8, 16]


def test_int_accepted_for_float():
    assert config_from_dict({"optim": {"lr": 1}}).optim.lr == 1.0


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"model": {"predictor": {"deph": 3}}}, "model.predictor.deph"),
        ({"trian": {}}, "trian"),
        ({"train": {"epochs": "ten"}}, "train.epochs"),
        ({"train": {"epochs": 2.5}}, "train.epochs"),
        ({"loss": {"rollout_stop_grad": "yes"}}, "loss.rollout_stop_grad"),
        ({"plan": {"cost": "L3"}}, "plan.cost"),
        ({"model": 3}, "model"),
    ],
)
def test_bad_config_names_the_key(data, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        config_from_dict(data)


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.epochs")


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_round_trip_through_dict():
    cfg = load_config("wall", ["plan.alpha=0.5"])
    assert config_from_dict(cfg.to_dict()) == cfg
    assert isinstance(config_from_dict({}), ExperimentConfig)
