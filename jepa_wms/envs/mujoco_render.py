"""Fast headless MuJoCo frames, shared by the MuJoCo envs (PointMaze, Metaworld).

On a software GL (llvmpipe) the default 4096² shadow map and MSAA make rendering 10–100× slower than it needs to
be, so both are turned off. Renderers are also closed at interpreter exit *before* MuJoCo tears its EGL display
down: MuJoCo registers its own exit hook when the first GL context is made, ours is registered afterwards, and
exit hooks run last-in first-out. Without that, renderers freed during teardown print EGL errors at every exit.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any

__all__ = ["import_mujoco", "make_renderer", "release_renderer"]

_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()


def import_mujoco(needed_by: str) -> Any:
    """``mujoco``, imported with headless rendering selected (MUJOCO_GL must be set before the first import)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import mujoco
    except ImportError as err:
        raise ImportError(f'{needed_by} needs mujoco ({err}); install it with pip install "jepa-wms[sim]"') from err
    return mujoco


def _close_live() -> None:
    for renderer in list(_LIVE):
        renderer.close()


def make_renderer(mujoco: Any, model: Any, size: int) -> Any:
    """A ``size``×``size`` ``mujoco.Renderer`` for ``model`` with shadows and MSAA off, closed at exit."""
    model.vis.quality.offsamples = 0  # no MSAA; must precede the renderer's GL buffers
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), size)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), size)
    renderer = mujoco.Renderer(model, size, size)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0  # persists: update_scene keeps render flags
    if not _LIVE:
        atexit.unregister(_close_live)
        atexit.register(_close_live)
    _LIVE.add(renderer)
    return renderer


def release_renderer(renderer: Any) -> None:
    """Close ``renderer`` now (an env's ``close``)."""
    _LIVE.discard(renderer)
    renderer.close()
