"""``import jepa_wms`` behaves like other gymnasium env packages: the ids are registered, and the import stays light."""

import subprocess
import sys

CODE = """
import sys

import gymnasium as gym
import jepa_wms

env = gym.make("jepa_wms/Wall-v0")
obs, _ = env.reset(seed=0)
print(type(env.unwrapped).__name__, obs["pixels"].shape)
print(sorted(m for m in ("torch", "mujoco", "pymunk", "metaworld") if m in sys.modules))
"""


def test_import_registers_the_gym_ids_without_loading_torch_or_the_simulators():
    # A fresh interpreter: in this one the test suite has imported everything already.
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["WallEnv (64, 64, 3)", "[]"]
