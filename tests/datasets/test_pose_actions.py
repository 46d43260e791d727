"""7-D pose actions: Euler conversions against an independent construction, deltas, composition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_wms.datasets.pose_actions import (
    compose_pose,
    euler_to_matrix,
    matrix_to_euler,
    pose_deltas,
    quat_xyzw_to_matrix,
)


def _axis_rotation(axis: int, angle: float) -> np.ndarray:
    """Rotation about a base axis via the matrix exponential of its skew matrix (independent of the module)."""
    k = np.zeros((3, 3))
    i, j = [a for a in range(3) if a != axis]
    k[j, i], k[i, j] = angle, -angle
    if axis == 1:  # so(3) generator of y has the opposite sign pattern
        k = -k
    return torch.linalg.matrix_exp(torch.from_numpy(k)).numpy()


def _extrinsic_xyz(e: np.ndarray) -> np.ndarray:
    # Extrinsic x, then y, then z (fixed axes) = Rz @ Ry @ Rx.
    return _axis_rotation(2, e[2]) @ _axis_rotation(1, e[1]) @ _axis_rotation(0, e[0])


def test_axis_rotation_is_right_handed():
    np.testing.assert_allclose(_axis_rotation(2, np.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(_axis_rotation(0, np.pi / 2) @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(_axis_rotation(1, np.pi / 2) @ [0, 0, 1], [1, 0, 0], atol=1e-12)


def test_euler_to_matrix_matches_independent_construction():
    rng = np.random.default_rng(0)
    e = rng.uniform(-np.pi, np.pi, (50, 3))
    m = euler_to_matrix(e)
    for k in range(len(e)):
        np.testing.assert_allclose(m[k], _extrinsic_xyz(e[k]), atol=1e-12)


def test_matrix_to_euler_round_trip_and_wrap():
    rng = np.random.default_rng(1)
    e = rng.uniform([-np.pi, -np.pi / 2, -np.pi], [np.pi, np.pi / 2, np.pi], (200, 3))
    np.testing.assert_allclose(matrix_to_euler(euler_to_matrix(e)), e, atol=1e-9)
    # Angles outside the principal range come back wrapped but describe the same rotation.
    big = e + rng.integers(-2, 3, e.shape) * 2 * np.pi
    back = matrix_to_euler(euler_to_matrix(big))
    assert np.all(np.abs(back) <= np.pi + 1e-12)
    np.testing.assert_allclose(euler_to_matrix(back), euler_to_matrix(big), atol=1e-9)


def test_gimbal_lock_gives_a_valid_decomposition():
    e = np.array([[0.3, np.pi / 2, -0.2], [0.1, -np.pi / 2, 0.5]])
    back = matrix_to_euler(euler_to_matrix(e))
    np.testing.assert_allclose(euler_to_matrix(back), euler_to_matrix(e), atol=1e-9)


def test_matches_scipy_when_available():
    rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    rng = np.random.default_rng(2)
    m = rotation.random(64, random_state=3).as_matrix()
    np.testing.assert_allclose(matrix_to_euler(m), rotation.from_matrix(m).as_euler("xyz"), atol=1e-9)
    q = rng.normal(size=(64, 4))
    np.testing.assert_allclose(quat_xyzw_to_matrix(q), rotation.from_quat(q).as_matrix(), atol=1e-9)


def test_quaternion_known_values():
    half = np.sqrt(0.5)
    np.testing.assert_allclose(quat_xyzw_to_matrix(np.array([0, 0, 0, 1.0])), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(
        quat_xyzw_to_matrix(np.array([0, 0, half, half])), _axis_rotation(2, np.pi / 2), atol=1e-12
    )


def test_pose_deltas_known_sequence():
    poses = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.1, -0.2, 0.05, 0.0, 0.0, 0.3, 0.5],
            [0.1, -0.2, 0.05, 0.2, 0.0, 0.3, 1.0],
        ]
    )
    d = pose_deltas(poses)
    np.testing.assert_allclose(d[0], [0.1, -0.2, 0.05, 0, 0, 0.3, 0.5], atol=1e-12)
    # Second step: Rx(0.2) applied in the base frame after Rz(0.3) is R' Rᵀ = Rz Rx Rzᵀ, not Rx.
    expected_rot = _extrinsic_xyz(np.array([0.2, 0, 0.3])) @ _extrinsic_xyz(np.array([0, 0, 0.3])).T
    np.testing.assert_allclose(euler_to_matrix(d[1, 3:6]), expected_rot, atol=1e-12)
    np.testing.assert_allclose(d[1, [0, 1, 2, 6]], [0, 0, 0, 0.5], atol=1e-12)


def test_compose_inverts_deltas_batched_torch():
    rng = np.random.default_rng(4)
    a = np.concatenate([rng.normal(size=(32, 3)), rng.uniform(-3, 3, (32, 3)), rng.uniform(0, 1, (32, 1))], 1)
    b = np.concatenate([rng.normal(size=(32, 3)), rng.uniform(-3, 3, (32, 3)), rng.uniform(0, 1, (32, 1))], 1)
    delta = np.stack([pose_deltas(np.stack([x, y]))[0] for x, y in zip(a, b, strict=True)])
    out = compose_pose(torch.from_numpy(a).float(), torch.from_numpy(delta).float())
    assert out.dtype == torch.float32 and out.shape == (32, 7)
    np.testing.assert_allclose(out[:, :3].numpy(), b[:, :3], atol=1e-5)
    np.testing.assert_allclose(out[:, 6].numpy(), b[:, 6], atol=1e-5)
    np.testing.assert_allclose(euler_to_matrix(out[:, 3:6].double().numpy()), euler_to_matrix(b[:, 3:6]), atol=1e-5)


def test_compose_clips_gripper_and_broadcasts():
    pose = torch.tensor([[0.0, 0, 0, 0, 0, 0, 0.9]])
    deltas = torch.tensor([[0.0, 0, 0, 0, 0, 0, 0.5], [0.0, 0, 0, 0, 0, 0, -2.0]])
    out = compose_pose(pose, deltas)
    assert out[:, 6].tolist() == [1.0, 0.0]
