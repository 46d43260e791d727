"""``robocasa-reach`` / ``robocasa-place``: the stand-in's protocol in a recorded RoboCasa kitchen.

Needs the ``robocasa`` package (not on PyPI: ``git clone https://github.com/robocasa/robocasa && pip install
--no-deps -e robocasa``), its kitchen assets (``python -m robocasa.scripts.download_kitchen_assets``, 5–20 GB) and
robosuite (``make robosuite``); without them construction fails with an ImportError naming what is missing.

Episodes come from a recorded demo file in the ``robocasa_hdf5`` layout (``dataset=`` option): the kitchen is
rebuilt from the demo's ``model_file`` attribute and set to its recorded ``states`` (robosuite's flattened
time/qpos/qvel), as robomimic's ``reset_to``. A goal is the last step of a recorded task segment
(``meta_data_info/current_task_segment`` = the task name) and the start its first step. Actions, state layout,
camera, success rules and step length are those of `jepa_wms.envs.franka_tabletop` (this env subclasses it).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from jepa_wms.envs.base import EnvSpec, register_env
from jepa_wms.envs.franka_sim import CONTROL_HZ, RobotSim, add_camera, import_robosuite
from jepa_wms.envs.franka_tabletop import EVAL_STEPS, TASKS, FrankaTabletopEnv
from jepa_wms.envs.mujoco_render import release_renderer

__all__ = ["ROBOCASA_SPECS", "RobocasaEnv", "robocasa_missing"]

ENV_KWARGS = ("dataset", "img_size", "render_mode", "object_body")
INSTALL = "git clone https://github.com/robocasa/robocasa && pip install --no-deps -e robocasa"


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


class RobocasaEnv(FrankaTabletopEnv):
    """A RoboCasa kitchen reset from recorded demos; see the module docstring.

    Args:
        task: ``"reach"`` or ``"place"`` (also the segment name looked up in ``current_task_segment``).
        dataset: a ``robocasa_hdf5`` file (``data/demo_N`` with ``states`` and the ``model_file`` attribute).
        img_size, render_mode: as `FrankaTabletopEnv`.
        object_body: the manipulated object's body (RoboCasa's pick-and-place tasks: ``obj_main``).
    """

    def __init__(
        self, task: str = "reach", dataset: str | None = None, img_size: int = 256, render_mode: str = "rgb_array",
        object_body: str = "obj_main",
    ):  # fmt: skip
        missing = robocasa_missing()
        if missing:
            raise ImportError(f"robocasa-{task}: {missing}")
        if task not in TASKS:
            raise ValueError(f"RobocasaEnv: task must be one of {TASKS}, got {task!r}")
        if not dataset or not Path(dataset).is_file():
            raise ValueError(f"robocasa-{task}: pass dataset=<a robocasa_hdf5 file of recorded demos>, got {dataset!r}")
        self._dataset = Path(dataset)
        self._demos = self._read_demos(task)
        self._object_body = object_body
        super().__init__(task, img_size=img_size, render_mode=render_mode)

    def _read_demos(self, task: str) -> list[tuple[str, np.ndarray, int, int]]:
        """(model_file XML, states, segment start, segment end) of every demo with a ``task`` segment."""
        import h5py

        out = []
        with h5py.File(self._dataset, "r") as f:
            self._env_args = json.loads(f["data"].attrs.get("env_args", "{}"))
            for key in sorted(f["data"].keys()):
                demo = f["data"][key]
                seg = demo.get("meta_data_info/current_task_segment")
                if seg is None or "model_file" not in demo.attrs:
                    continue
                names = np.array([s.decode() if isinstance(s, bytes) else str(s) for s in seg[()]])
                idx = np.flatnonzero(names == task)
                if idx.size:
                    out.append((str(demo.attrs["model_file"]), np.asarray(demo["states"]), int(idx[0]), int(idx[-1])))
        if not out:
            raise ValueError(f"{self._dataset}: no demo with a {task!r} segment and a model_file attribute")
        return out

    def _make_scene(self) -> Any:
        """The demo's robosuite kitchen env, set to the first demo's first recorded state."""
        env = self._build()
        env.reset()
        self._rs = env
        self._load_demo(0, self._demos[0][2])
        return env

    def _build(self) -> Any:
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

    def _load_demo(self, k: int, step: int) -> np.ndarray:
        """Rebuild demo ``k``'s kitchen and set its recorded state ``step``; returns our state there."""
        import xml.etree.ElementTree as ET

        from robosuite.utils.mjcf_utils import find_elements

        xml, states, _, _ = self._demos[k]
        root = ET.fromstring(xml)
        if find_elements(root, tags="camera", attribs={"name": "robot0_leftview"}, return_first=True) is None:
            add_camera(root.find("worldbody"))
        self._rs.reset_from_xml_string(ET.tostring(root, encoding="unicode"))
        self.sim = RobotSim(self._rs, self._object_body)
        self.state_dim = self.sim.state_dim
        self._camera_id = int(self.sim.model.camera("robot0_leftview").id)
        self._rs.sim.set_state_from_flattened(states[step])
        self._rs.sim.forward()
        if getattr(self, "_renderer", None) is not None:
            release_renderer(self._renderer)
        self._renderer = None  # a new model needs a new renderer
        return self.sim.get_state()

    def sample_start_goal(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = int(rng.integers(len(self._demos)))
        _, _, first, last = self._demos[k]
        goal = self._load_demo(k, last)
        return self._load_demo(k, first), goal


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
    )
    for task in TASKS
}
for _task, _spec in ROBOCASA_SPECS.items():
    register_env(_spec, _Factory(_task))
