import imageio.v2 as imageio
import numpy as np
import pytest

from jepa_wms.evaluation.media import plot_cost_history, side_by_side, write_video


def _frames(n=5, size=16):
    frames = []
    for i in range(n):
        f = np.full((size, size, 3), 255, np.uint8)
        f[i, i] = (255, 0, 0)
        frames.append(f)
    return frames


def test_side_by_side_upscales_agent_and_goal():
    frames = _frames()
    img = side_by_side(frames[0], frames[-1])
    assert img.shape == (192, 2 * 192 + 4, 3)
    assert tuple(img[0, 0]) == (255, 0, 0) and tuple(img[0, 196]) == (255, 255, 255)


@pytest.mark.parametrize("suffix", ["gif", "mp4"])
def test_video_has_every_frame_and_holds_the_last(tmp_path, suffix):
    path = write_video(tmp_path / f"ep.{suffix}", _frames(), _frames()[0], fps=4)
    if suffix == "gif":
        frames = imageio.mimread(path)
        assert len(frames) >= 5 and frames[0].shape[:2] == (192, 388)
    else:
        import imageio_ffmpeg

        assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == 5 + 4  # frames + the last held 1 s at 4 fps


def test_cost_plot(tmp_path):
    path = plot_cost_history(tmp_path / "c.png", np.exp(-np.linspace(0, 3, 30))[None].repeat(4, 0))
    assert path.stat().st_size > 1000
