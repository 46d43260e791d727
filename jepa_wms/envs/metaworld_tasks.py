"""The Metaworld v3 task tables: names, the reference's 42-task set, and what each task's exact state holds.

Kept apart from `jepa_wms.envs.metaworld` so that registering the 50 envs (names and state sizes) needs neither
mujoco nor metaworld: `import jepa_wms.envs` reads these tables only.

Why a per-task table: a Metaworld task is more than its MuJoCo ``qpos``/``qvel``. ``reset_model`` moves model
bodies and sites (the button box, the goal marker) and stores Python attributes that the reward and the success
flag read later (``_target_pos``, ``obj_init_pos``, ``maxPushDist``, ...). The lists below are what varies from
one reset to the next in metaworld 3.1.1 (found by resetting every task with several seeds and diffing the model
arrays and the env's attributes, then checked by exact replay from a fresh env, see the tests). Attributes that
never vary (hand start, bounds) and attributes that are views into ``MjData`` (``init_left_pad``) are left out:
the former are the same in every env, the latter follow the physics state.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "METAWORLD_TASKS",
    "MW42_TASKS",
    "OBS_DIM",
    "ATTR_SIZES",
    "TaskLayout",
    "TASK_LAYOUTS",
    "canonical_task",
]

OBS_DIM = 39
"""Metaworld's observation: hand xyz, gripper distance, 14 object values, the same 18 one step earlier, goal xyz."""


@dataclass(frozen=True)
class TaskLayout:
    """What the exact state of one task holds beyond the observation and the MuJoCo physics.

    Attributes:
        state_dim: total length of ``MetaworldEnv.get_state()`` (checked against the simulator at construction).
        bodies: bodies whose ``model.body_pos`` the task's reset moves.
        sites: sites whose ``model.site_pos`` the task's reset moves.
        attrs: env attributes read by reward/success, sizes in `ATTR_SIZES`; ``init_tcp`` always comes first.
    """

    state_dim: int
    bodies: tuple[str, ...]
    sites: tuple[str, ...]
    attrs: tuple[str, ...]


ATTR_SIZES: dict[str, int] = {
    "init_tcp": 3,
    "_target_pos": 3,
    "obj_init_pos": 3,
    "dial_push_position": 3,
    "hammer_init_pos": 3,
    "_handle_init_pos": 3,
    "_lever_pos_init": 3,
    "stick_init_pos": 3,
    "window_handle_pos_init": 3,
    "maxPlacingDist": 1,
    "_target_to_obj_init": 1,  # None until the first reward is computed; stored as NaN then
    "heightTarget": 1,
    "objHeight": 1,
    "maxPullDist": 1,
    "maxPushDist": 1,
    "maxReachDist": 1,
    "maxHammerDist": 1,
    "maxDist": 1,
    "maxPlaceDist": 1,
}


def _t(state_dim: int, bodies: tuple[str, ...], sites: tuple[str, ...], attrs: tuple[str, ...]) -> TaskLayout:
    return TaskLayout(state_dim, bodies, sites, ("init_tcp", *attrs))


_PUSH = ("_target_pos", "maxPlacingDist", "maxPushDist", "obj_init_pos")
_PUSH_R = ("_target_pos", "maxPlacingDist", "maxPushDist", "maxReachDist", "obj_init_pos")
_TARGET_OBJ = ("_target_pos", "obj_init_pos")
_LIFT = ("_target_pos", "heightTarget", "maxPlacingDist", "objHeight", "obj_init_pos")

# Generated from metaworld 3.1.1 on mujoco 3.3.0; MetaworldEnv refuses to run if a size does not match.
TASK_LAYOUTS: dict[str, TaskLayout] = {
    "assembly": _t(107, ("peg",), ("pegTop",), ("_target_pos",)),
    "basketball": _t(111, ("basket_goal",), ("goal",), ("_target_pos", "maxPlacingDist", "obj_init_pos")),
    "bin-picking": _t(103, (), (), ("maxPlacingDist", "obj_init_pos", "_target_to_obj_init")),
    "box-close": _t(113, ("boxbody",), ("goal",), _LIFT),
    "button-press": _t(91, ("box",), (), _TARGET_OBJ),
    "button-press-topdown": _t(91, ("box",), (), _TARGET_OBJ),
    "button-press-topdown-wall": _t(91, ("box",), (), _TARGET_OBJ),
    "button-press-wall": _t(91, ("box",), (), _TARGET_OBJ),
    "coffee-button": _t(110, ("coffee_machine",), (), _TARGET_OBJ),
    "coffee-pull": _t(114, ("coffee_machine",), ("mug_goal",), ("_target_pos", "maxPullDist", "obj_init_pos")),
    "coffee-push": _t(114, ("coffee_machine",), ("mug_goal",), ("_target_pos", "maxPushDist", "obj_init_pos")),
    "dial-turn": _t(97, ("dial",), ("goal",), ("_target_pos", "dial_push_position", "obj_init_pos")),
    "disassemble": _t(113, ("peg",), ("pegTop",), _LIFT),
    "door-close": _t(94, ("door",), ("goal",), _TARGET_OBJ),
    "door-lock": _t(91, ("door",), (), _TARGET_OBJ),
    "door-open": _t(94, ("door",), ("goal",), _TARGET_OBJ),
    "door-unlock": _t(91, ("door",), (), _TARGET_OBJ),
    "drawer-close": _t(94, ("drawer",), ("goal",), _TARGET_OBJ),
    "drawer-open": _t(94, ("drawer",), ("goal",), _TARGET_OBJ),
    "faucet-close": _t(94, ("faucetBase",), ("goal_close",), _TARGET_OBJ),
    "faucet-open": _t(94, ("faucetBase",), ("goal_open",), _TARGET_OBJ),
    "hammer": _t(108, (), (), ("hammer_init_pos", "maxHammerDist", "obj_init_pos")),
    "hand-insert": _t(108, (), ("goal",), ("_target_pos", "maxReachDist", "obj_init_pos")),
    "handle-press": _t(95, ("box",), (), ("_handle_init_pos", "_target_pos", "maxDist", "obj_init_pos")),
    "handle-press-side": _t(95, ("box",), (), ("_handle_init_pos", "_target_pos", "maxDist", "obj_init_pos")),
    "handle-pull": _t(92, ("box",), (), ("_target_pos", "maxDist", "obj_init_pos")),
    "handle-pull-side": _t(91, ("box",), (), _TARGET_OBJ),
    "lever-pull": _t(97, ("lever",), ("goal",), ("_lever_pos_init", "_target_pos", "obj_init_pos")),
    "peg-insert-side": _t(111, ("box",), ("goal",), ("_target_pos", "maxPlacingDist", "obj_init_pos")),
    "peg-unplug-side": _t(111, ("box",), ("goal",), ("_target_pos", "maxPlacingDist", "obj_init_pos")),
    "pick-out-of-hole": _t(105, (), ("goal",), ("_target_pos", "maxPlacingDist")),
    "pick-place": _t(109, (), ("goal",), _PUSH),
    "pick-place-wall": _t(110, (), ("goal",), _PUSH_R),
    "plate-slide": _t(95, ("puck_goal",), ("goal",), ("_target_pos", "maxDist")),
    "plate-slide-back": _t(92, (), ("goal",), ("_target_pos", "maxDist")),
    "plate-slide-back-side": _t(92, (), ("goal",), ("_target_pos", "maxDist")),
    "plate-slide-side": _t(92, (), ("goal",), ("_target_pos", "maxDist")),
    "push": _t(109, (), ("goal",), _PUSH),
    "push-back": _t(110, (), ("goal",), _PUSH_R),
    "push-wall": _t(110, (), ("goal",), _PUSH_R),
    "reach": _t(108, (), ("goal",), ("_target_pos", "maxReachDist", "obj_init_pos")),
    "reach-wall": _t(110, (), ("goal",), _PUSH_R),
    "shelf-place": _t(108, ("shelf",), (), ("_target_pos", "maxPlacingDist", "obj_init_pos")),
    "soccer": _t(111, ("goal_whole",), ("goal",), ("_target_pos", "maxPushDist", "obj_init_pos")),
    "stick-pull": _t(115, (), ("goal",), ("_target_pos", "maxPlaceDist", "maxPullDist", "stick_init_pos")),
    "stick-push": _t(115, (), ("goal",), ("_target_pos", "maxPlaceDist", "maxPushDist", "stick_init_pos")),
    "sweep": _t(110, (), ("goal",), _PUSH_R),
    "sweep-into": _t(102, (), (), ("maxPushDist", "obj_init_pos")),
    "window-close": _t(97, ("window",), ("goal",), ("_target_pos", "obj_init_pos", "window_handle_pos_init")),
    "window-open": _t(97, ("window",), ("goal",), ("_target_pos", "obj_init_pos", "window_handle_pos_init")),
}

METAWORLD_TASKS: tuple[str, ...] = tuple(sorted(TASK_LAYOUTS))
"""All 50 Metaworld v3 tasks, named without the ``-v3`` suffix."""

# The reference's "mw42" multi-task set (TASK_SET in jepa-wms evals/simu_env_planning/planning/common/__init__.py,
# after TD-MPC2): the 50 tasks minus basketball, coffee-pull, coffee-push, dial-turn, door-unlock, hand-insert,
# sweep and window-open. Its published parquet data covers these 42 tasks.
MW42_TASKS: tuple[str, ...] = (
    "assembly", "bin-picking", "box-close", "button-press-topdown", "button-press-topdown-wall", "button-press",
    "button-press-wall", "coffee-button", "disassemble", "door-close", "door-lock", "door-open", "drawer-close",
    "drawer-open", "faucet-open", "faucet-close", "hammer", "handle-press-side", "handle-press", "handle-pull-side",
    "handle-pull", "lever-pull", "peg-insert-side", "pick-place-wall", "pick-out-of-hole", "reach", "push-back",
    "push", "pick-place", "plate-slide", "plate-slide-side", "plate-slide-back", "plate-slide-back-side",
    "peg-unplug-side", "soccer", "stick-push", "stick-pull", "push-wall", "reach-wall", "shelf-place", "sweep-into",
    "window-close",
)  # fmt: skip


def canonical_task(name: str) -> str:
    """The bare v3 task name: ``"reach"`` from ``"reach"``, ``"reach-v3"``, ``"mw-reach"`` or ``"metaworld-reach"``.

    Raises:
        ValueError: the name is not one of the 50 v3 tasks; the message lists them.
    """
    task = str(name).strip()
    for prefix in ("metaworld-", "mw-"):
        if task.startswith(prefix):
            task = task[len(prefix) :]
    for suffix in ("-goal-observable", "-goal-hidden"):
        if task.endswith(suffix):
            task = task[: -len(suffix)]
    if task.endswith("-v3"):
        task = task[: -len("-v3")]
    if task not in TASK_LAYOUTS:
        raise ValueError(f"unknown Metaworld task {name!r}; expected one of: {', '.join(METAWORLD_TASKS)}")
    return task
