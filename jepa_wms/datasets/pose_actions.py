"""7-D end-effector pose actions (DROID convention) and pose composition.

A pose is ``(x, y, z, rx, ry, rz, g)``: position in metres, orientation as *extrinsic* Euler angles about x, y, z
in radians (``R = Rz(rz) @ Ry(ry) @ Rx(rx)``, scipy's ``"xyz"``), gripper closure in [0, 1]. The action between
two kept frames with poses ``(p, R, g)`` and ``(p', R', g')`` is ``(p' - p, euler(R' Rᵀ), g' - g)``, not
normalised, as the released DROID models were trained. `compose_pose` inverts it, so that a planner can advance
the proprio of a model that has one: ``compose_pose(a, pose_deltas([a, b])[0]) == b``.

Written in plain torch (float64 where precision matters) so neither scipy nor a GPU round trip is needed; numpy
arrays in give numpy arrays out.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "euler_to_matrix",
    "matrix_to_euler",
    "quat_xyzw_to_matrix",
    "pose_deltas",
    "compose_pose",
]

Array = TypeVar("Array", np.ndarray, torch.Tensor)

# Below this |cos(ry)| the x and z rotations are about the same axis (gimbal lock): only their sum is defined,
# so rx is set to 0, which keeps the returned angles a valid decomposition of the matrix.
_GIMBAL_EPS = 1e-9


def _as_tensor(x: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, False
    return torch.from_numpy(np.asarray(x, dtype=np.float64)), True


def _back(x: torch.Tensor, to_numpy: bool) -> np.ndarray | torch.Tensor:
    return x.numpy() if to_numpy else x


def _euler_to_matrix(e: torch.Tensor) -> torch.Tensor:
    cx, cy, cz = torch.cos(e).unbind(-1)
    sx, sy, sz = torch.sin(e).unbind(-1)
    # Rz @ Ry @ Rx written out: one stack instead of three batched matmuls.
    rows = [
        cz * cy,
        cz * sy * sx - sz * cx,
        cz * sy * cx + sz * sx,
        sz * cy,
        sz * sy * sx + cz * cx,
        sz * sy * cx - cz * sx,
        -sy,
        cy * sx,
        cy * cx,
    ]
    return torch.stack(rows, dim=-1).reshape(*e.shape[:-1], 3, 3)


def _matrix_to_euler(m: torch.Tensor) -> torch.Tensor:
    ry = torch.asin((-m[..., 2, 0]).clamp(-1.0, 1.0))
    locked = torch.sqrt(m[..., 2, 1] ** 2 + m[..., 2, 2] ** 2) < _GIMBAL_EPS
    rx = torch.where(locked, torch.zeros_like(ry), torch.atan2(m[..., 2, 1], m[..., 2, 2]))
    rz = torch.where(locked, torch.atan2(-m[..., 0, 1], m[..., 1, 1]), torch.atan2(m[..., 1, 0], m[..., 0, 0]))
    return torch.stack([rx, ry, rz], dim=-1)


def euler_to_matrix(euler: Array) -> Array:
    """Rotation matrices (..., 3, 3) of extrinsic xyz Euler angles (..., 3) in radians."""
    e, np_out = _as_tensor(euler)
    return _back(_euler_to_matrix(e), np_out)


def matrix_to_euler(matrix: Array) -> Array:
    """Extrinsic xyz Euler angles (..., 3), each in [-π, π] (ry in [-π/2, π/2]), of rotation matrices (..., 3, 3)."""
    m, np_out = _as_tensor(matrix)
    return _back(_matrix_to_euler(m), np_out)


def quat_xyzw_to_matrix(quat: Array) -> Array:
    """Rotation matrices (..., 3, 3) of quaternions (..., 4) in (x, y, z, w) order (robosuite's), normalised first."""
    q, np_out = _as_tensor(quat)
    q = q / q.norm(dim=-1, keepdim=True)
    x, y, z, w = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - z * w),
        2 * (x * z + y * w),
        2 * (x * y + z * w),
        1 - 2 * (x * x + z * z),
        2 * (y * z - x * w),
        2 * (x * z - y * w),
        2 * (y * z + x * w),
        1 - 2 * (x * x + y * y),
    ]
    return _back(torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3), np_out)


def pose_deltas(poses: Array) -> Array:
    """Actions (T-1, 7) between consecutive poses (T, 7): ``(p' - p, euler(R' Rᵀ), g' - g)``.

    The rotation delta is the one applied on the left (in the base frame), as in DROID's and V-JEPA 2-AC's code;
    it is computed in float64 and returned in the input's dtype.
    """
    x, np_out = _as_tensor(poses)
    dtype = x.dtype
    x = x.to(torch.float64)
    rot = _euler_to_matrix(x[..., 3:6])
    d_rot = rot[..., 1:, :, :] @ rot[..., :-1, :, :].transpose(-1, -2)
    out = torch.cat(
        [x[..., 1:, :3] - x[..., :-1, :3], _matrix_to_euler(d_rot), x[..., 1:, 6:7] - x[..., :-1, 6:7]], dim=-1
    )
    return _back(out.to(dtype), np_out)


def compose_pose(pose: Array, delta: Array) -> Array:
    """Poses (..., 7) advanced by actions (..., 7): ``(p + Δp, euler(R(Δθ) R), clip(g + Δg, 0, 1))``.

    Batched over any leading dims (a planner passes (N, 7) candidates); broadcasting between ``pose`` and
    ``delta`` follows torch rules. Computed in float64 and returned in ``pose``'s dtype.
    """
    p, np_out = _as_tensor(pose)
    d, _ = _as_tensor(delta)
    dtype = p.dtype
    p, d = p.to(torch.float64), d.to(device=p.device, dtype=torch.float64)
    rot = _euler_to_matrix(d[..., 3:6]) @ _euler_to_matrix(p[..., 3:6])
    out = torch.cat(
        [p[..., :3] + d[..., :3], _matrix_to_euler(rot), (p[..., 6:7] + d[..., 6:7]).clamp(0.0, 1.0)], dim=-1
    )
    return _back(out.to(dtype), np_out)
