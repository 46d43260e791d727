"""Reading configs: YAML files (with ``base:`` chains) plus ``a.b=value`` overrides, checked against the schema.

Unknown keys, wrong types and bad values are errors that name the key, so a typo never silently falls back to a
default (the original read untyped YAML with ``.get``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from .ranges import RANGES, check_range
from .schema import ConfigError, ExperimentConfig

PACKAGE_CONFIGS = Path(__file__).parents[1] / "configs"


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {type(value).__name__}")
        return _from_dict(tp, value, key + ".")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        (item_tp,) = typing.get_args(tp)[:1]
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if origin in (typing.Union, types.UnionType, Literal):
        return value  # a choice is checked against its Literal once the section is built (_choices)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads '2e-4' (no dot) as a string.
        try:
            return float(value)
        except ValueError:
            pass
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
    if tp in (float, str) and not isinstance(value, tp):
        raise ConfigError(f"config key '{key}' must be a {tp.__name__}, got {value!r}")
    return value


def _choices(tp: Any) -> tuple[Any, ...]:
    """The values a ``Literal`` annotation allows, alone or in a union (``Preload | bool``); () for other types."""
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    return tuple(v for arg in typing.get_args(tp) if typing.get_origin(arg) is Literal for v in typing.get_args(arg))


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}' (valid keys under '{prefix or '<top>'}': {', '.join(names)})"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    obj = cls(**kwargs)
    for name in names:
        key, value = prefix + name, getattr(obj, name)
        allowed = _choices(hints[name])
        if allowed and value not in allowed:
            raise ConfigError(f"config key '{key}' is {value!r}; expected one of {allowed}")
        if key in RANGES:
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
            for i, item in items:
                check_range(f"config key '{key}{'' if i is None else f'[{i}]'}'", item, RANGES[key])
    return obj


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over``'s keys over ``base``'s, mappings merged key by key (a base config and its file, overrides)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``'model.predictor.depth=4'`` → ``{'model': {'predictor': {'depth': 4}}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value (e.g. train.epochs=10)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:  # also tags such as !!python/object, which safe_load refuses to construct
        raise ConfigError(f"override '{text}': the value is not plain YAML ({_yaml_problem(exc)})") from None
    node: dict[str, Any] = {}
    cur = node
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cur[part] = {}
        cur = cur[part]
    cur[parts[-1]] = value
    return node


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line (its message spans several, with the offending text underlined)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return (getattr(exc, "problem", None) or str(exc).splitlines()[0]) + where


def _check_relations(cfg: ExperimentConfig) -> None:
    """Bounds that depend on another key (a key's own range is in RANGES)."""
    plan, optim = cfg.plan, cfg.optim
    if plan.planner in ("cem", "icem") and plan.num_elites > plan.num_samples:
        raise ConfigError(
            f"config key 'plan.num_elites' is {plan.num_elites}; expected <= plan.num_samples ({plan.num_samples})"
        )
    if optim.min_lr > optim.lr:
        raise ConfigError(f"config key 'optim.min_lr' is {optim.min_lr!r}; expected <= optim.lr ({optim.lr!r})")
    if len(optim.betas) != 2:
        raise ConfigError(f"config key 'optim.betas' is {optim.betas!r}; expected two values (Adam's beta1, beta2)")


def config_from_dict(
    data: dict[str, Any], overrides: Sequence[str] = (), *, only: Sequence[str] | None = None
) -> ExperimentConfig:
    """The config ``data`` describes, with ``key=value`` overrides; ``only`` names the sections they may change (a
    checkpoint's evaluation: ``plan`` and ``eval``, as the checkpoint holds the rest)."""
    merged = dict(data)
    for text in overrides:
        change = parse_override(text)
        if only is not None and not set(change) <= set(only):
            sections = " and ".join(f"{s}.*" for s in only)
            raise ConfigError(f"only {sections} keys may be overridden here, got {text!r}")
        merged = _merge(merged, change)
    cfg = _from_dict(ExperimentConfig, merged)
    _check_relations(cfg)
    if cfg.model.predictor.num_frames == 0:
        # Resolved here so a checkpoint's config keeps the table size its weights have.
        cfg.model.predictor.num_frames = cfg.data.num_frames
    if cfg.model.encoder.type == "state":
        _resolve_state_encoder(cfg)
    return cfg


def _resolve_state_encoder(cfg: ExperimentConfig) -> None:
    """``model.encoder.type: state``: features default to the env's; width and grid follow from them."""
    from ..encoders.state import state_features  # the encoders import this package

    enc = cfg.model.encoder
    enc.state_features = enc.state_features or cfg.env
    try:
        spec = state_features(enc.state_features)
    except ValueError as exc:
        raise ConfigError(f"config key 'model.encoder.state_features' is {enc.state_features!r}: {exc}") from exc
    enc.embed_dim, enc.grid_size = spec.dim, 1


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load ``path`` (a YAML file, or the name of an embedded config such as ``wall``) and apply overrides.

    A file may start from another with ``base: <name or path>``: its keys are merged over the base's, section
    by section, so a CPU-sized variant only lists what it changes.
    """
    data = _read_yaml(path) if path is not None else {}
    return config_from_dict(data, overrides)


def embedded_configs() -> list[str]:
    """Names of the configs shipped with the package (``load_config(name)`` accepts them)."""
    return sorted(q.stem for q in PACKAGE_CONFIGS.glob("*.yaml"))


def _read_yaml(path: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    p = Path(path)
    if not p.exists() and (PACKAGE_CONFIGS / f"{path}.yaml").exists():
        p = PACKAGE_CONFIGS / f"{path}.yaml"
    if not p.exists():
        raise FileNotFoundError(f"config file {p} not found (embedded configs: {', '.join(embedded_configs())})")
    if p.resolve() in seen:
        raise ConfigError(f"config file {p}: 'base' chain loops back to itself")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {_yaml_problem(exc)}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    data = dict(loaded or {})
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"config file {p}: 'base' must be a config name or path, got {base!r}")
    local = p.parent / base
    return _merge(_read_yaml(local if local.suffix and local.exists() else base, (*seen, p.resolve())), data)
