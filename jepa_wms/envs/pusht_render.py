"""Push-T geometry and a numpy rasteriser for it (no pygame, no OpenCV).

World coordinates are the reference's 512-px canvas: x grows to the right (image columns), y grows downwards
(image rows), angles are pymunk's (positive = clockwise on screen). The T block is the reference's: a 120×30
bar whose top edge's centre is the body origin, and a 30×90 stem below it, both in body-local coordinates.

The picture is the reference's: its colours (block and agent filled with 1.2 × their outline colour), outlines
and pixel centres; no goal T and no contact marks are drawn. Frames are drawn straight at ``img_size`` by testing
sub-pixel sample points against the shapes (``supersample``² samples per pixel, averaged), a box-filter
antialiasing that the reference's draw-at-512-then-resize only approximates: flat regions match the reference's
frames exactly, edges differ, and the mean difference is under one level (``tests/envs/test_pusht_reference.py``).
Only the bounding boxes of the block and the agent are rasterised per frame; the background and walls are drawn
once.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "WORLD_SIZE",
    "AGENT_RADIUS",
    "TEE_RECTS",
    "TEE_COG",
    "TEE_RADIUS",
    "WALL_SEGMENTS",
    "WALL_RADIUS",
    "tee_cog_world",
    "tee_polygons_world",
    "tee_signed_distance",
    "PushTRenderer",
]

WORLD_SIZE = 512.0
AGENT_RADIUS = 15.0
# (u0, u1, v0, v1) in body-local coordinates: the bar, then the stem (reference scale 30, length 4).
TEE_RECTS: tuple[tuple[float, float, float, float], ...] = ((-60.0, 60.0, 0.0, 30.0), (-15.0, 15.0, 30.0, 120.0))
# The reference puts the centre of gravity at the mean of the two rectangles' centroids, not the area-weighted
# centroid (0, 40.7); we keep its value because it decides how the block turns when pushed.
TEE_COG = (0.0, 45.0)
# Farthest block point from the centre of gravity (bar corners and stem tip are both 75 px away).
TEE_RADIUS = 75.0
WALL_SEGMENTS = (
    ((5.0, 506.0), (5.0, 5.0)),
    ((5.0, 5.0), (506.0, 5.0)),
    ((506.0, 5.0), (506.0, 506.0)),
    ((5.0, 506.0), (506.0, 506.0)),
)
WALL_RADIUS = 2.0

# The reference draws with pygame at 512 px, where pixel i shows world point i, then resizes with OpenCV, whose
# output pixel j shows the source point (j + 0.5)·scale − 0.5; so do we, at any size.
_PIXEL_SHIFT = -0.5
# The reference outlines every polygon edge with a round-capped line of this radius, centred on the edge ...
_OUTLINE_RADIUS = 2.0
# ... and the agent's disc with a ring this wide.
_AGENT_RING = 4.0


def _lighter(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """The reference's fill colour: 1.2 × the shape's colour, clipped to 255."""
    r, g, b = (min(round(1.2 * c), 255) for c in color)
    return r, g, b


_BACKGROUND = (255, 255, 255)
_WALL = (211, 211, 211)  # LightGray, no lighter fill: walls are segments
_BLOCK_EDGE = (119, 136, 153)  # LightSlateGray
_BLOCK_FILL = _lighter(_BLOCK_EDGE)  # (143, 163, 184)
_AGENT_EDGE = (65, 105, 225)  # RoyalBlue
_AGENT_FILL = _lighter(_AGENT_EDGE)  # (78, 126, 255)


def _rotation(angle: float) -> tuple[float, float]:
    return math.cos(angle), math.sin(angle)


def tee_cog_world(block_xy: np.ndarray | tuple[float, float], angle: float) -> np.ndarray:
    """World position of the block's centre of gravity for origin ``block_xy`` and ``angle``."""
    c, s = _rotation(angle)
    gx, gy = TEE_COG
    return np.array([block_xy[0] + c * gx - s * gy, block_xy[1] + s * gx + c * gy])


def tee_polygons_world(block_xy: np.ndarray | tuple[float, float], angle: float) -> list[np.ndarray]:
    """The two rectangles of the T as (4, 2) world-coordinate corner arrays."""
    c, s = _rotation(angle)
    rot = np.array([[c, -s], [s, c]])
    out = []
    for u0, u1, v0, v1 in TEE_RECTS:
        local = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]])
        out.append(local @ rot.T + np.asarray(block_xy, dtype=np.float64)[:2])
    return out


def tee_signed_distance(point: np.ndarray, block_xy: np.ndarray, angle: float) -> float:
    """Signed distance from ``point`` to the T's outline (negative inside), exact for a union of two boxes."""
    c, s = _rotation(angle)
    dx, dy = float(point[0]) - float(block_xy[0]), float(point[1]) - float(block_xy[1])
    u, v = c * dx + s * dy, -s * dx + c * dy
    best = math.inf
    for u0, u1, v0, v1 in TEE_RECTS:
        cu, cv, hu, hv = (u0 + u1) / 2, (v0 + v1) / 2, (u1 - u0) / 2, (v1 - v0) / 2
        qu, qv = abs(u - cu) - hu, abs(v - cv) - hv
        outside = math.hypot(max(qu, 0.0), max(qv, 0.0))
        best = min(best, outside + min(max(qu, qv), 0.0))
    return best


def _box_masks(
    u: np.ndarray, v: np.ndarray, rect: tuple[float, float, float, float], radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which body-local points (u, v) lie inside one ``TEE_RECTS`` box, and which within ``radius`` of its outline."""
    u0, u1, v0, v1 = rect
    qu = np.abs(u - (u0 + u1) / 2) - (u1 - u0) / 2  # > 0: outside the box along u
    qv = np.abs(v - (v0 + v1) / 2) - (v1 - v0) / 2
    inside = (qu <= 0.0) & (qv <= 0.0)
    near_outside = np.square(np.maximum(qu, 0.0)) + np.square(np.maximum(qv, 0.0)) <= radius * radius
    deep_inside = (qu < -radius) & (qv < -radius)
    return inside, near_outside & ~deep_inside


class PushTRenderer:
    """Draws Push-T states ``(agent_x, agent_y, block_x, block_y, block_angle, ...)`` as uint8 (S, S, 3).

    Args:
        img_size: output side S in pixels.
        supersample: samples per pixel side; None picks 4 up to 96 px and 2 above (both well under 2 ms).
    """

    def __init__(self, img_size: int, supersample: int | None = None):
        if int(img_size) != img_size or img_size < 8:
            raise ValueError(f"PushTRenderer: img_size must be an integer >= 8, got {img_size!r}")
        self.img_size = int(img_size)
        self.supersample = int(supersample) if supersample is not None else (4 if img_size <= 96 else 2)
        if self.supersample < 1:
            raise ValueError(f"PushTRenderer: supersample must be >= 1, got {supersample!r}")
        self._px = WORLD_SIZE / self.img_size  # world units per pixel
        # Sub-pixel sample offsets inside one pixel, in pixel units.
        self._offsets = (np.arange(self.supersample) + 0.5) / self.supersample
        self._background = self._draw_background()

    # -- sampling helpers ---------------------------------------------------------------------------------------
    def _grid(self, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """World (x, y) of every sample point of pixel rows [r0, r1) and columns [c0, c1), as 2-D grids."""
        ys = ((np.arange(r0, r1)[:, None] + self._offsets[None, :]) * self._px + _PIXEL_SHIFT).ravel()
        xs = ((np.arange(c0, c1)[:, None] + self._offsets[None, :]) * self._px + _PIXEL_SHIFT).ravel()
        return xs[None, :], ys[:, None]

    def _coverage(self, inside: np.ndarray, rows: int, cols: int) -> np.ndarray:
        """Average a (rows·k, cols·k) boolean sample mask down to per-pixel coverage in [0, 1]."""
        k = self.supersample
        counts = np.zeros((rows, cols), dtype=np.float32)
        for i in range(k):  # k² strided sums: at k = 2 ten times faster than a mean over two axes of a 4-D view
            for j in range(k):
                counts += inside[i::k, j::k]
        return counts * np.float32(1.0 / (k * k))

    def _pixel_box(self, x0: float, x1: float, y0: float, y1: float) -> tuple[int, int, int, int] | None:
        n, px, shift = self.img_size, self._px, _PIXEL_SHIFT
        c0, c1 = max(int(math.floor((x0 - shift) / px)), 0), min(int(math.ceil((x1 - shift) / px)), n)
        r0, r1 = max(int(math.floor((y0 - shift) / px)), 0), min(int(math.ceil((y1 - shift) / px)), n)
        return (r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None

    @staticmethod
    def _blend(img: np.ndarray, box: tuple[int, int, int, int], cover: np.ndarray, color: tuple[int, ...]) -> None:
        r0, r1, c0, c1 = box
        for channel, value in enumerate(color):  # one channel at a time: numpy is slow on a trailing axis of 3
            patch = img[r0:r1, c0:c1, channel]
            patch += (np.float32(value) - patch) * cover

    # -- drawing ----------------------------------------------------------------------------------------------
    def _draw_background(self) -> np.ndarray:
        n = self.img_size
        img = np.empty((n, n, 3), dtype=np.float32)
        img[:] = _BACKGROUND
        x, y = self._grid(0, n, 0, n)
        near = np.zeros((y.shape[0], x.shape[1]), dtype=bool)
        for (ax, ay), (bx, by) in WALL_SEGMENTS:
            # Distance to an axis-aligned segment: clamp along it, measure across it.
            px = np.clip(x, min(ax, bx), max(ax, bx))
            py = np.clip(y, min(ay, by), max(ay, by))
            near |= (x - px) ** 2 + (y - py) ** 2 <= WALL_RADIUS**2
        self._blend(img, (0, n, 0, n), self._coverage(near, n, n), _WALL)
        return img

    def render(self, state: np.ndarray) -> np.ndarray:
        """uint8 (S, S, 3): white floor, light-gray walls, then the T block and the agent on top, each filled in
        the lighter colour and outlined in the darker one, as the reference draws them."""
        s = np.asarray(state, dtype=np.float64)
        img = self._background.copy()
        bx, by, angle = float(s[2]), float(s[3]), float(s[4])
        corners = np.concatenate(tee_polygons_world((bx, by), angle))
        lo, hi = corners.min(axis=0) - _OUTLINE_RADIUS, corners.max(axis=0) + _OUTLINE_RADIUS
        box = self._pixel_box(lo[0], hi[0], lo[1], hi[1])
        if box is not None:
            r0, r1, c0, c1 = box
            x, y = self._grid(r0, r1, c0, c1)
            c, sn = _rotation(angle)
            u = c * (x - bx) + sn * (y - by)
            v = -sn * (x - bx) + c * (y - by)
            inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
            edge = np.zeros_like(inside)
            for rect in TEE_RECTS:
                # Each rectangle is outlined on its own, so the line where the stem meets the bar shows too.
                rect_inside, rect_edge = _box_masks(u, v, rect, _OUTLINE_RADIUS)
                inside |= rect_inside
                edge |= rect_edge
            rows, cols = r1 - r0, c1 - c0
            self._blend(img, box, self._coverage(inside, rows, cols), _BLOCK_FILL)
            self._blend(img, box, self._coverage(edge, rows, cols), _BLOCK_EDGE)
        ax, ay, r = float(s[0]), float(s[1]), AGENT_RADIUS
        box = self._pixel_box(ax - r, ax + r, ay - r, ay + r)
        if box is not None:
            r0, r1, c0, c1 = box
            x, y = self._grid(r0, r1, c0, c1)
            d2 = (x - ax) ** 2 + (y - ay) ** 2
            self._blend(img, box, self._coverage(d2 <= r * r, r1 - r0, c1 - c0), _AGENT_EDGE)
            self._blend(img, box, self._coverage(d2 <= (r - _AGENT_RING) ** 2, r1 - r0, c1 - c0), _AGENT_FILL)
        return np.rint(img).astype(np.uint8)
