"""``robocasa-reach`` / ``robocasa-place``: the stand-in's protocol in a recorded RoboCasa kitchen.

Needs robosuite (``make robosuite``), and for kitchens the ``robocasa`` package (not on PyPI: ``git clone
https://github.com/robocasa/robocasa && pip install --no-deps -e robocasa``) with its kitchen assets (``python -m
robocasa.scripts.download_kitchen_assets``, 5–20 GB); without them construction fails with an ImportError naming
what is missing.

Episodes come from a recorded demo file in the ``robocasa_hdf5`` layout (``dataset=`` option), as robomimic's
``reset_to``: the scene is rebuilt from the demo's ``model_file`` attribute (MJCF XML) and set to its recorded
``states`` (robosuite's flattened time/qpos/qvel). A task segment is a run of consecutive steps whose
``meta_data_info/current_task_segment`` is the task name; an episode starts at its first step and its goal is its
last. What ``states`` lacks is rebuilt (`jepa_wms.envs.franka_sim.RobotSim.set_recorded`): the gripper's latched
command from the recorded gripper commands ``actions[:, 6]`` before the start, the solver's warm start as after a
reset. Actions, state layout, camera, success rules and step length are those of `jepa_wms.envs.franka_tabletop`
(this env subclasses it); a step holds one action for 5 recorded (20 Hz) steps.

Which robosuite env rebuilds the scene comes from the file's ``data`` attribute ``env_args`` (robomimic's JSON,
``env_name``): a RoboCasa kitchen (the default) needs ``robocasa``; ``env_name`` ``"Lift"`` (`STANDIN_ENV_NAME`)
is the ``franka-tabletop`` stand-in's scene, rebuilt with robosuite alone, so a demo recorded from the stand-in runs
here without RoboCasa (the tests reset from one).
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jepa_wms.envs.base import EnvSpec, register_env
from jepa_wms.envs.franka_sim import CAMERA, CONTROL_HZ, RobotSim, add_camera, import_robosuite
from jepa_wms.envs.franka_tabletop import (
    EVAL_STEPS,
    FRANKA_TABLETOP_SPECS,
    OBJECT_BODY,
    TASKS,
    FrankaTabletopEnv,
    _scene,
)
from jepa_wms.envs.mujoco_render import release_renderer

__all__ = ["ROBOCASA_SPECS", "RobocasaEnv", "STANDIN_ENV_NAME", "Segment", "robocasa_missing", "task_segments"]

ENV_KWARGS = ("dataset", "img_size", "render_mode", "object_body")
INSTALL = "git clone https://github.com/robocasa/robocasa && pip install --no-deps -e robocasa"
SEGMENT_KEY = "meta_data_info/current_task_segment"
STANDIN_ENV_NAME = "Lift"  # env_args["env_name"] of a demo recorded from the franka-tabletop stand-in's scene
KITCHEN_OBJECT = "obj_main"  # the manipulated object of RoboCasa's pick-and-place kitchens


def robocasa_missing() -> str | None:
    """What stops the RoboCasa envs from running here (a sentence naming it), or None when nothing does."""
    if importlib.util.find_spec("robosuite") is None:
        return "the robosuite package is not installed (make robosuite)"
    spec = importlib.util.find_spec("robocasa")
    if spec is None or not spec.submodule_search_locations:
        return f"the robocasa package is not installed (it is not on PyPI: {INSTALL})"
    assets = Path(next(iter(spec.submodule_search_locations))) / "models" / "assets" / "objects" / "objaverse"
    if not assets.is_dir():
        return (
            f"the RoboCasa kitchen assets are missing ({assets} does not exist; "
            "run python -m robocasa.scripts.download_kitchen_assets)"
        )
    return None


@dataclass(frozen=True)
class Segment:
    """One recorded task segment: demo ``data/<demo>``, steps ``first`` (the start) to ``last`` (the goal)."""

    demo: str
    first: int
    last: int


def task_segments(labels: Any, task: str) -> list[tuple[int, int]]:
    """(first, last) step of each run of consecutive ``labels`` equal to ``task`` (str or bytes), longer than one
    step."""
    names = np.array([s.decode() if isinstance(s, bytes) else str(s) for s in np.asarray(labels).ravel()])
    hit = np.concatenate([[False], names == task, [False]])
    edges = np.flatnonzero(hit[1:] != hit[:-1])  # run starts and ends (exclusive), alternating
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - 1 > a]


def _demo_order(name: str) -> tuple[int, str]:
    m = re.search(r"(\d+)$", name)
    return (int(m.group(1)) if m else -1, name)


class RobocasaEnv(FrankaTabletopEnv):
    """A scene reset from recorded demos (a RoboCasa kitchen, or the stand-in's); see the module docstring.

    Args:
        task: ``"reach"`` or ``"place"`` (also the segment name looked up in ``current_task_segment``).
        dataset: a ``robocasa_hdf5`` file: ``data/demo_N`` with ``states``, ``actions``,
            ``meta_data_info/current_task_segment`` and the ``model_file`` attribute.
        img_size, render_mode: as `FrankaTabletopEnv`.
        object_body: the manipulated object's body; default ``obj_main`` (RoboCasa's pick-and-place kitchens),
            ``cube_main`` for the stand-in's scene.

    Attributes:
        segments: the file's `Segment` s of ``task``, in demo order; `segment_states` resets to one, and
            ``reset`` without a ``state`` option draws one uniformly.
    """

    def __init__(
        self, task: str = "reach", dataset: str | None = None, img_size: int = 256, render_mode: str = "rgb_array",
        object_body: str | None = None,
    ):  # fmt: skip
        if task not in TASKS:
            raise ValueError(f"RobocasaEnv: task must be one of {TASKS}, got {task!r}")
        if importlib.util.find_spec("robosuite") is None:
            raise ImportError(f"robocasa-{task}: {robocasa_missing()}")
        if not dataset:
            missing = robocasa_missing()  # the usual case is a kitchen: name what it needs first
            if missing:
                raise ImportError(f"robocasa-{task}: {missing}")
        if not dataset or not Path(dataset).is_file():
            raise ValueError(f"robocasa-{task}: pass dataset=<a robocasa_hdf5 file of recorded demos>, got {dataset!r}")
        self._dataset = Path(dataset)
        self.segments = self._read_segments(task)
        name = str(self._env_args.get("env_name", "PnPCounterToCab"))
        self._kitchen = name != STANDIN_ENV_NAME
        if self._kitchen:
            missing = robocasa_missing()
            if missing:
                raise ImportError(
                    f"robocasa-{task}: {self._dataset} was recorded in the RoboCasa kitchen {name!r}; {missing}"
                )
        self._object_body = object_body or (KITCHEN_OBJECT if self._kitchen else OBJECT_BODY)
        self._loaded: str | None = None
        super().__init__(task, img_size=img_size, render_mode=render_mode)
        self._home, self._goal = self.segment_states(0)  # a built env stands at the first segment's start

    # -- the recording ----------------------------------------------------------------------------------------
    def _where(self, demo: str) -> str:
        return f"{self._dataset} data/{demo}"

    def _read_segments(self, task: str) -> list[Segment]:
        """Check every demo's keys (errors name the file, demo and key) and list ``task``'s segments."""
        import h5py

        try:
            f = h5py.File(self._dataset, "r")
        except OSError as exc:
            raise ValueError(f"{self._dataset}: cannot read as HDF5 ({exc})") from None
        out, found = [], set()
        with f:
            if "data" not in f or not len(f["data"]):
                raise ValueError(f"{self._dataset}: no demos (expected groups data/demo_N)")
            try:
                self._env_args = dict(json.loads(f["data"].attrs.get("env_args", "{}")))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{self._dataset}: data attribute env_args is not a JSON object ({exc})") from None
            for key in sorted(f["data"].keys(), key=_demo_order):
                demo, where = f["data"][key], self._where(key)
                for field in ("states", "actions", SEGMENT_KEY):
                    if field not in demo:
                        raise ValueError(f"{where}: missing {field}")
                if "model_file" not in demo.attrs:
                    raise ValueError(f"{where}: missing attribute model_file (the recorded scene's MJCF XML)")
                t = len(demo["states"])
                labels = demo[SEGMENT_KEY][()]
                if len(labels) != t or len(demo["actions"]) != t:
                    raise ValueError(
                        f"{where}: {SEGMENT_KEY} ({len(labels)}), actions ({len(demo['actions'])}) and states ({t}) "
                        "differ in length"
                    )
                if demo["actions"].ndim != 2 or demo["actions"].shape[1] < 7:
                    raise ValueError(
                        f"{where}: actions must be (T, >= 7) (arm 6, gripper), got {demo['actions'].shape}"
                    )
                found.update(s.decode() if isinstance(s, bytes) else str(s) for s in np.unique(labels))
                out += [Segment(key, a, b) for a, b in task_segments(labels, task)]
        if not out:
            raise ValueError(
                f"{self._dataset}: no {task!r} segment of two or more steps in {SEGMENT_KEY} "
                f"(segments found: {', '.join(sorted(found)) or 'none'})"
            )
        return out

    def _make_scene(self) -> Any:
        """The robosuite env with the first segment's demo loaded (``__init__`` then sets its start)."""
        self._rs = self._build()
        self._load_demo(self.segments[0].demo)
        return self._rs

    def _build(self) -> Any:
        """A robosuite env of the recording's kind, whose scene `_load_demo` then replaces with the recorded one."""
        if not self._kitchen:
            return _scene(self.img_size)
        suite = import_robosuite("robocasa")
        import robocasa  # noqa: F401  (registers the kitchen environments with robosuite)
        from robosuite.controllers import load_composite_controller_config

        name = self._env_args.get("env_name", "PnPCounterToCab")
        kwargs = dict(self._env_args.get("env_kwargs", {}))
        kwargs.update(
            robots="PandaOmron", gripper_types="Robotiq85Gripper", control_freq=CONTROL_HZ, has_renderer=False,
            has_offscreen_renderer=False, use_camera_obs=False, ignore_done=True,
            controller_configs=load_composite_controller_config(robot="PandaOmron"),
        )  # fmt: skip
        return suite.make(name, **kwargs)

    def _load_demo(self, demo: str) -> None:
        """Rebuild ``demo``'s recorded scene (unless it is the one loaded) and read its states and gripper commands."""
        if demo == self._loaded:
            return
        import xml.etree.ElementTree as ET

        import h5py
        import mujoco
        from robosuite.utils.mjcf_utils import find_elements

        with h5py.File(self._dataset, "r") as f:
            g = f["data"][demo]
            xml = g.attrs["model_file"]
            xml = xml.decode() if isinstance(xml, bytes) else str(xml)
            ep_meta = g.attrs.get("ep_meta")
            self._states = np.asarray(g["states"], np.float64)
            self._grip_cmds = np.asarray(g["actions"][:, 6], np.float64)
        # As RoboCasa's playback: the demo's episode metadata (kitchen layout, style, objects), a full reset, then
        # the recorded XML (robosuite's reset_from_xml_string alone does not rebuild the model).
        if ep_meta is not None and hasattr(self._rs, "set_ep_meta"):
            self._rs.set_ep_meta(json.loads(ep_meta))
        self._loaded = None
        self._rs.reset()
        try:
            root = ET.fromstring(self._rs.edit_model_xml(xml))  # asset paths to this install, as robomimic
        except ET.ParseError as exc:
            raise ValueError(f"{self._where(demo)}: model_file is not MJCF XML ({exc})") from None
        if find_elements(root, tags="camera", attribs={"name": CAMERA}, return_first=True) is None:
            add_camera(root.find("worldbody"))
        self._rs.reset_from_xml_string(ET.tostring(root, encoding="unicode"))
        model = self._rs.sim.model._model
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, self._object_body) < 0:
            raise ValueError(
                f"{self._where(demo)}: the recorded scene has no body {self._object_body!r} (object_body=)"
            )
        self.sim = RobotSim(self._rs, self._object_body)
        if self._states.shape[1:] != (1 + self.sim.model.nq + self.sim.model.nv,):
            raise ValueError(
                f"{self._where(demo)}: states have {self._states.shape[1:]} values per step; the model_file scene "
                f"needs 1 + nq + nv = {1 + self.sim.model.nq + self.sim.model.nv} (time, qpos, qvel)"
            )
        self.state_dim = self.sim.state_dim
        self._camera_id = int(self.sim.model.camera(CAMERA).id)
        if getattr(self, "_renderer", None) is not None:
            release_renderer(self._renderer)
        self._renderer = None  # a new model needs a new renderer
        self._loaded = demo

    def recorded_state(self, demo: str, step: int) -> np.ndarray:
        """Load ``demo``'s scene, set it to its recorded step ``step`` and return our state there."""
        self._load_demo(demo)
        return self.sim.set_recorded(self._states[step], self._grip_cmds[:step])

    def segment_states(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(start, goal) of ``segments[i]``: its first and last recorded step. The env is left at the start."""
        seg = self.segments[i]
        goal = self.recorded_state(seg.demo, seg.last)
        return self.recorded_state(seg.demo, seg.first), goal

    def sample_start_goal(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A uniformly drawn segment's (start, goal); its scene is loaded (the previous state is not restored)."""
        return self.segment_states(int(rng.integers(len(self.segments))))


class _Factory:
    def __init__(self, task: str):
        self.task = task

    def __call__(self, **kwargs: Any) -> RobocasaEnv:
        unknown = sorted(set(kwargs) - set(ENV_KWARGS))
        if unknown:
            raise ValueError(f"robocasa-{self.task}: unknown option(s) {unknown}; expected {list(ENV_KWARGS)}")
        return RobocasaEnv(self.task, **kwargs)


ROBOCASA_SPECS: dict[str, EnvSpec] = {
    task: EnvSpec(
        name=f"robocasa-{task}",
        gym_id=f"jepa_wms/Robocasa-{task}-v0",
        action_dim=7,
        proprio_dim=7,
        state_dim=0,  # depends on the kitchen: read env.state_dim
        frameskip=1,
        eval_steps=EVAL_STEPS,
        goal_source="dset",
        plan=FRANKA_TABLETOP_SPECS[task].plan,  # the same zero-shot protocol
    )
    for task in TASKS
}
for _task, _spec in ROBOCASA_SPECS.items():
    register_env(_spec, _Factory(_task))
