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


def colour_pixels(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 6) -> np.ndarray:
    """(row, column) of the pixels within ``tol`` of ``rgb``."""
    return np.argwhere((np.abs(img[..., :3].astype(int) - np.array(rgb)) <= tol).all(-1))


MEDIAN_BLUE = (31, 119, 180)  # matplotlib's first colour: the median line
EPISODE_GREY = (191, 191, 191)  # colour "0.75": the individual episodes
PATH_GREEN, PATH_RED = (44, 160, 44), (214, 39, 40)  # "tab:green" / "tab:red": paths of successes / failures


def test_cost_plot_draws_the_falling_median_and_the_episodes(tmp_path):
    rates = np.array([0.5, 1.0, 1.5, 2.0])
    path = plot_cost_history(tmp_path / "c.png", np.exp(-rates[:, None] * np.linspace(0, 3, 30)))
    img = imageio.imread(path)
    assert img.shape[:2] == (440, 660)  # 6 x 4 inches at 110 dpi
    median = colour_pixels(img, MEDIAN_BLUE)
    assert len(median) > 300
    first, last = median[median[:, 1].argmin()], median[median[:, 1].argmax()]
    assert first[0] < last[0] - 100  # image rows grow downwards: the line starts high and ends low
    assert len(colour_pixels(img, EPISODE_GREY)) > 200
