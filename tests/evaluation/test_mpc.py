"""`run_mpc`, the receding-horizon loop, against a stub model and a planner that records what it was asked: how many
plans of which length, the warm start, the observations planned from, and the env actions that were executed."""

import numpy as np
import torch

from jepa_wms.evaluation.mpc import run_mpc
from jepa_wms.planning import PlanResult

B, FRAMESKIP, ENV_A = 2, 2, 2  # episodes, env steps per model action, env action width
MODEL_A = FRAMESKIP * ENV_A


class StubEnv:
    """A point that moves by the action; records every action it is stepped with."""

    def __init__(self, start: float) -> None:
        self.state = np.array([start, -start])
        self.actions: list[np.ndarray] = []

    @property
    def unwrapped(self) -> "StubEnv":
        return self

    def get_state(self) -> np.ndarray:
        return self.state.copy()

    def step(self, action):
        self.actions.append(np.array(action))
        self.state = self.state + action
        obs = {"pixels": np.zeros((2, 2, 3), np.uint8), "proprio": self.state.astype(np.float32)}
        return obs, 0.0, False, False, {"state": self.get_state()}


class StubDynamics:
    """Denormalises by ×10 (so a missing denormalisation shows) and records the states it is asked to observe."""

    frameskip, action_dim = FRAMESKIP, MODEL_A

    def __init__(self) -> None:
        self.observed: list[np.ndarray] = []

    def denormalize_actions(self, actions):
        return 10.0 * actions.unflatten(-1, (FRAMESKIP, ENV_A))

    def observe(self, obs):
        self.observed.append(np.stack([o["state"] for o in obs]))
        return self.observed[-1]

    def cost_fn(self, current, goal, alpha, kind):
        return lambda candidates: torch.zeros(candidates.shape[:2])


class RecordingPlanner:
    """Returns plan p as distinct numbers (1000·p + position) and records every call's arguments."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.plans: list[torch.Tensor] = []

    def plan(self, cost_fn, batch_size, horizon, action_dim, generators, init_mean=None, device=None):
        p = len(self.calls)
        warm = None if init_mean is None else init_mean.clone()
        self.calls.append(
            {"batch": batch_size, "horizon": horizon, "dim": action_dim, "init": warm, "gens": generators}
        )
        actions = 1000.0 * p + torch.arange(batch_size * horizon * action_dim, dtype=torch.float32)
        self.plans.append(actions.reshape(batch_size, horizon, action_dim))
        history = torch.full((batch_size, 3), float(p))
        return PlanResult(self.plans[-1], torch.zeros(batch_size), history, elapsed_s=1.0)


def test_plans_execute_and_warm_start_as_the_loop_says():
    envs = [StubEnv(1.0), StubEnv(2.0)]
    first = [{"pixels": np.zeros((2, 2, 3), np.uint8), "proprio": env.state.astype(np.float32)} for env in envs]
    goals = [{"pixels": np.zeros((2, 2, 3), np.uint8), "proprio": np.zeros(2, np.float32), "state": np.full(2, 9.0)}]
    goals = goals * B
    gens = [torch.Generator().manual_seed(k) for k in range(B)]
    model, planner = StubDynamics(), RecordingPlanner()
    # H = 4, k = 3, frameskip 2, 15 env steps: plans of 4, 4 and 2 model actions (the last one cut to the 3 steps
    # that are left), executing 6, 6 and 3 env steps.
    traces = run_mpc(model, envs, first, goals, planner, gens, horizon=4, execute=3, total_steps=15, alpha=0.0)

    assert [c["horizon"] for c in planner.calls] == [4, 4, 2]
    assert all(c["batch"] == B and c["dim"] == MODEL_A and c["gens"] is gens for c in planner.calls)
    # Warm start: the unexecuted tail of the previous plan, then zeros, cut to the next plan's length.
    p0, p1, _ = planner.plans
    assert planner.calls[0]["init"] is None
    torch.testing.assert_close(planner.calls[1]["init"], torch.cat([p0[:, 3:], torch.zeros(B, 3, MODEL_A)], 1))
    torch.testing.assert_close(planner.calls[2]["init"], torch.cat([p1[:, 3:], torch.zeros(B, 1, MODEL_A)], 1))

    # Executed: the first k model actions of each plan, denormalised and split into env steps, 15 in all.
    for b, env in enumerate(envs):
        executed = [10.0 * p[b, :k].reshape(-1, ENV_A) for p, k in zip(planner.plans, (3, 3, 2), strict=True)]
        expected = torch.cat(executed)[:15]
        np.testing.assert_array_equal(np.stack(env.actions), expected.numpy())
    # Each plan starts from the state the previous one left: the goal first, then after 0, 6 and 12 env steps.
    np.testing.assert_array_equal(model.observed[0], np.full((B, 2), 9.0))
    starts = np.array([[1.0, -1.0], [2.0, -2.0]])
    steps = [np.stack([np.sum(env.actions[:n], axis=0) for env in envs]) for n in (0, 6, 12)]
    for observed, moved in zip(model.observed[1:], steps, strict=True):
        np.testing.assert_allclose(observed, starts + moved)

    for b, trace in enumerate(traces):
        assert len(trace.frames) == len(trace.states) == 16  # the start and 15 steps
        np.testing.assert_array_equal(trace.states[-1], envs[b].state)
        assert [h.tolist() for h in trace.cost_histories] == [[0.0] * 3, [1.0] * 3, [2.0] * 3]
        assert trace.plan_seconds == 3 * 1.0 / B
