import re

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


def test_every_embedded_config_loads_for_a_registered_env():
    from jepa_wms.config import embedded_configs
    from jepa_wms.datasets.formats.base import layouts
    from jepa_wms.envs import env_names, env_spec

    # Robot data (DROID, Franka, LeRobot) is converted under an env name that has no simulator: offline only.
    offline = {layout.env for layout in layouts().values() if "{" not in layout.env} - set(env_names())
    assert offline == {"droid", "robocasa"}
    names = embedded_configs()
    assert {"wall", "pointmaze", "pusht", "metaworld", "droid"} <= set(names)
    for name in names:
        cfg = load_config(name)
        if cfg.env in offline:
            continue
        spec = env_spec(cfg.env)  # raises for an unregistered env
        assert cfg.data.frameskip == spec.frameskip, name
        assert cfg.plan.horizon * cfg.data.frameskip >= cfg.plan.execute * cfg.data.frameskip > 0


def test_every_embedded_config_builds_its_model():
    """Widths, grids and predictor options of every preset fit together (built on the meta device: no memory)."""
    import torch

    from jepa_wms.config import embedded_configs
    from jepa_wms.predictors import AdaLNPredictor, DinoWMPredictor, VJepa2ACPredictor
    from jepa_wms.world_model import build_world_model

    classes = {"adaln": AdaLNPredictor, "dino_wm": DinoWMPredictor, "vjepa2_ac": VJepa2ACPredictor}
    sizes = {}
    for name in embedded_configs():
        cfg = load_config(name)
        if cfg.model.encoder.type == "checkpoint":
            continue  # its encoder comes from a run's file (pusht_pretrained: tests/training/test_pretrain.py)
        with torch.device("meta"):
            model = build_world_model(
                cfg.model, raw_action_dim=2, proprio_dim=4, frameskip=cfg.data.frameskip, load_weights=False
            )
        sizes[name] = sum(p.numel() for p in model.predictor.parameters())
        assert isinstance(model.predictor, classes[cfg.model.predictor.type]), name
    # The paper's sim JEPA-WM predictor has 17.6 M parameters (depth 6, width 384 + 16 proprio channels).
    assert round(sizes["pointmaze"] / 1e5) == 176


def test_base_configs_merge_section_by_section(tmp_path):
    (tmp_path / "parent.yaml").write_text("env: wall\ntrain: {epochs: 3, batch_size: 8}\nplan: {alpha: 0.5}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ntrain: {epochs: 7}\n")
    cfg = load_config(tmp_path / "child.yaml", ["plan.horizon=4"])
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.plan.alpha, cfg.plan.horizon) == (7, 8, 0.5, 4)
    pusht = load_config("pusht")
    assert pusht.env == "pusht" and pusht.model.encoder.name == "dinov2_vits14"  # inherited from pointmaze
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "typo.yaml").write_text("base: parent.yaml\ntrain: {epochz: 7}\n")
    with pytest.raises(ConfigError, match="epochz"):
        load_config(tmp_path / "typo.yaml")


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=0", "'train.epochs' is 0; expected >= 1"),
        ("train.log_every=0", "'train.log_every' is 0; expected >= 1"),
        ("train.batch_size=-4", "'train.batch_size' is -4; expected >= 1"),
        ("optim.lr=0", "'optim.lr' is 0.0; expected > 0"),
        ("optim.lr=.nan", "'optim.lr' is nan; expected > 0"),
        ("optim.min_lr=0.1", "'optim.min_lr' is 0.1; expected <= optim.lr (0.0015)"),
        ("optim.betas=[0.9, 1.5]", "'optim.betas[1]' is 1.5; expected in [0, 1)"),
        ("data.val_fraction=1", "'data.val_fraction' is 1.0; expected in [0, 1)"),
        ("model.encoder.channels=[8, 0]", "'model.encoder.channels[1]' is 0; expected >= 1"),
        ("plan.num_elites=301", "'plan.num_elites' is 301; expected <= plan.num_samples (300)"),
        ("plan.horizon=0", "'plan.horizon' is 0; expected >= 1"),
        ("eval.episodes=0", "'eval.episodes' is 0; expected in [1, 100000]"),
        ("eval.seed=-1", "'eval.seed' is -1; expected in [0, 4294967295]"),
    ],
)
def test_numbers_out_of_range_name_key_value_and_range(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("wall", [override])


def test_every_numeric_field_has_a_range():
    import dataclasses
    import typing

    from jepa_wms.config import RANGES

    def numeric_keys(cls, prefix=""):
        for f in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(tp):
                yield from numeric_keys(tp, f"{prefix}{f.name}.")
            # plain numbers, lists of them, and a number-or-list (plan.action_clip)
            elif tp in (int, float) or typing.get_args(tp) in ((int,), (float,), (float, list[float])):
                yield prefix + f.name

    assert set(numeric_keys(ExperimentConfig)) == set(RANGES)


def test_documented_preload_values_are_accepted(tmp_path):
    assert load_config("wall", ["data.preload=false"]).data.preload == "false"
    (tmp_path / "c.yaml").write_text("data: {preload: true}\n")
    assert load_config(tmp_path / "c.yaml").data.preload == "true"
    with pytest.raises(ConfigError, match="data.preload"):
        load_config("wall", ["data.preload=3"])


@pytest.mark.parametrize("value", ["[1, 2", "!!python/object/apply:os.system ['echo pwned']"])
def test_override_that_is_not_plain_yaml_is_a_config_error(value, capfd):
    with pytest.raises(ConfigError, match="not plain YAML") as err:
        parse_override(f"train.epochs={value}")
    assert "\n" not in str(err.value) and "pwned" not in capfd.readouterr().out


def test_choice_tuples_of_the_modules_are_the_config_literals():
    """Each choice key's values are written once, as a Literal in config/schema.py; the modules acting on them agree."""
    import typing

    from jepa_wms import config
    from jepa_wms.planning import VALID_KINDS
    from jepa_wms.planning.registry import PLANNERS
    from jepa_wms.planning.simulator import SIM_COSTS
    from jepa_wms.predictors import PREDICTOR_TYPES, ROPE_MODES
    from jepa_wms.world_model import PROPRIO_SPACES

    pairs = [
        (PREDICTOR_TYPES, config.PredictorType),
        (ROPE_MODES, config.RopeMode),
        (PROPRIO_SPACES, config.ProprioSpace),
        (SIM_COSTS, config.SimCost),
        (VALID_KINDS, config.PlanCost),
        (PLANNERS, config.PlannerName),
    ]
    for values, literal in pairs:
        assert set(values) == set(typing.get_args(literal)), literal


@pytest.mark.parametrize(
    "override, message",
    [
        ("plan.cost=L3", "config key 'plan.cost' is 'L3'; expected one of ('L1', 'L2')"),
        ("model.predictor.type=rnn", "config key 'model.predictor.type' is 'rnn'; expected one of ('adaln', "),
        ("data.preload=3", "config key 'data.preload' is 3; expected one of ('auto', 'true', 'false')"),
        ("model.predictor.rope=42", "config key 'model.predictor.rope' is 42; expected one of ('standard', 'legacy')"),
    ],
)
def test_a_bad_choice_is_one_line_naming_key_value_and_choices(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_config("wall", [override])
    assert "\n" not in str(err.value)


def test_overrides_can_be_limited_to_sections():
    base = load_config("wall").to_dict()
    assert config_from_dict(base, ["plan.alpha=0.5", "eval.seed=3"], only=("plan", "eval")).plan.alpha == 0.5
    with pytest.raises(ConfigError, match=re.escape("only plan.* and eval.* keys may be overridden here, got 'train")):
        config_from_dict(base, ["train.epochs=2"], only=("plan", "eval"))
