"""VideoWindowDataset: windows decoded straight from DROID-raw / LeRobot videos equal the converter's, decoding only
what they keep, and failing on bad input with the converter's own errors."""

from __future__ import annotations

import json
import pickle
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from jepa_wms.datasets import DatasetError, TrajectoryStore, WindowDataset
from jepa_wms.datasets.formats import convert
from jepa_wms.datasets.video_windows import VideoStore, VideoWindowDataset
from tests.datasets.test_formats_droid import _episode, _poses
from tests.datasets.test_formats_lerobot import CAM, FPS, _info, _rows, _write_v2
from tests.robot_media import colour_frames, frame_ids, write_mp4


def _assert_same_as_converter(ds: VideoWindowDataset, store: TrajectoryStore) -> None:
    """Every window equals the converted episode's frames/arrays over the same kept frames."""
    t = ds.num_frames
    for w in range(len(ds)):
        e, s = ds.window_ids(w)
        win, ep = ds.window(w), store.episode(e)
        np.testing.assert_array_equal(win["pixels"], ep["pixels"][s : s + t])
        for key in ("proprio", "state"):
            np.testing.assert_allclose(win[key], ep[key][s : s + t], atol=1e-6)
        np.testing.assert_allclose(win["actions"], ep["actions"][s : s + t - 1], atol=1e-6)


def _droid(root):
    _episode(root, "ep0", 13)  # kept 0, 4, 8, 12
    _episode(root, "ep1", 18, n_video=17)  # MP4 one frame short: kept 0, 4, 8, 12, 16 → 0 … 12
    _episode(root, "ep2", 4)  # one kept frame: skipped and counted, as by convert
    return root


def test_droid_windows_equal_converter_and_decode_only_kept_frames(tmp_path, caplog):
    root = _droid(tmp_path / "droid")
    store = TrajectoryStore(convert(root, tmp_path / "out", img_size=16, show_progress=False))
    ds = VideoWindowDataset(root, 3, img_size=16)
    assert "skipped 1 episode" in caplog.text
    assert ds.layout == "droid_raw" and len(ds) == 2 + 3  # 4 and 5 kept frames → 2 and 3 windows of 3
    assert [ds.window_ids(w) for w in range(len(ds))] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    _assert_same_as_converter(ds, store)
    assert frame_ids(ds.window(1)["pixels"]) == [4, 8, 12]
    # The test MP4s are all-intra (mpeg4): each kept frame is reached by a seek and nothing else is decoded.
    assert ds.decoded == ds.converted == 3 * (len(ds) + 1)  # every window, then window 1 again
    batch = ds.get([0, 4])
    assert batch["pixels"].shape == (2, 3, 16, 16, 3) and batch["actions"].shape == (2, 2, 7)


def test_droid_video_at_another_rate_reads_as_the_converter_reads_it(tmp_path):
    # A folder `jepa-wms export` writes at 4 fps, read with the default fps=15 (keep every 4th frame): the reader
    # numbers frames at the file's own rate, as the converter numbers them in decode order.
    ep = _episode(tmp_path / "droid", "ep0", 21)
    write_mp4(colour_frames(21), 4, ep / "recordings" / "MP4" / "111.mp4")
    store = TrajectoryStore(convert(tmp_path / "droid", tmp_path / "out", img_size=16, show_progress=False))
    ds = VideoWindowDataset(tmp_path / "droid", 3, img_size=16)
    _assert_same_as_converter(ds, store)
    assert frame_ids(ds.window(2)["pixels"]) == [8, 12, 16]


def test_h264_windows_decode_from_the_keyframe_and_convert_only_kept_frames(tmp_path):
    root = tmp_path / "droid"
    ep = _episode(root, "ep0", 30)  # colour_frames ids wrap after frame 30
    write_mp4(colour_frames(30), 15, ep / "recordings/MP4/111.mp4", codec="libx264")  # one keyframe, B-frames
    store = TrajectoryStore(convert(root, tmp_path / "out", img_size=16, show_progress=False))
    ds = VideoWindowDataset(root, 4, img_size=16)
    last = len(ds) - 1  # kept 16, 20, 24, 28
    win = ds.window(last)
    assert frame_ids(win["pixels"]) == [16, 20, 24, 28]
    assert ds.converted == 4 and ds.decoded == 29  # from the keyframe (frame 0) up to frame 28, never beyond
    ds.window(last)  # earlier than where the decoder stands: back to the keyframe
    assert ds.decoded == 2 * 29
    _assert_same_as_converter(ds, store)


def test_lru_of_open_videos_and_pickling(tmp_path):
    root = _droid(tmp_path / "droid")
    ds = VideoWindowDataset(root, 2, img_size=8, cache_size=1)
    ids = [frame_ids(ds.window(w)["pixels"]) for w in (0, 3, 1, 4)]  # alternate between the two episodes
    assert ids == [[0, 4], [0, 4], [4, 8], [4, 8]]
    assert len(ds._videos.open) == 1
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers: open videos are not carried over
    assert len(clone._videos.open) == 0 and frame_ids(clone.window(2)["pixels"]) == [8, 12]
    subset = VideoWindowDataset(root, 2, img_size=8, episodes=[1])
    assert len(subset) == 4 and frame_ids(subset.window(0)["pixels"]) == [0, 4]


def _write_v3(root, lengths, codec="mpeg4"):
    """A LeRobot v3.0 dataset: all episodes packed into one parquet file and one MP4."""
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(_info("v3.0")))
    cols, meta, start = {}, [], 0
    for e, t in enumerate(lengths):
        for k, v in _rows(t, e, first=start).items():
            cols.setdefault(k, []).extend(v)
        video = {"chunk_index": 0, "file_index": 0, "from_timestamp": start / FPS, "to_timestamp": (start + t) / FPS}
        meta.append(
            {"episode_index": e, "length": t, "data/chunk_index": 0, "data/file_index": 0}
            | {"dataset_from_index": start, "dataset_to_index": start + t}
            | {f"videos/{CAM}/{k}": v for k, v in video.items()}
        )
        start += t
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(pa.table(cols), root / "data/chunk-000/file-000.parquet")
    pq.write_table(pa.Table.from_pylist(meta), root / "meta/episodes/chunk-000/file-000.parquet")
    write_mp4(colour_frames(start), FPS, root / f"videos/{CAM}/chunk-000/file-000.mp4", codec=codec)
    return root


@pytest.mark.parametrize("codec", ["mpeg4", "libx264"])
def test_lerobot_v3_windows_equal_converter(tmp_path, codec):
    root = _write_v3(tmp_path / "v3", [6, 5, 9], codec)
    for opts in ({}, {"action": "action"}):
        store = TrajectoryStore(convert(root, tmp_path / f"out{len(opts)}", options=opts, show_progress=False))
        ds = VideoWindowDataset(root, 3, **opts)
        assert len(ds) == 1 + 1 + 3  # kept 3, 3 and 5 frames
        _assert_same_as_converter(ds, store)
        assert ds.converted == 3 * len(ds)
        assert frame_ids(ds.window(len(ds) - 1)["pixels"]) == [11 + 4, 11 + 6, 11 + 8]


def test_lerobot_v2_windows_equal_converter(tmp_path):
    root = _write_v2(tmp_path / "ds", [7, 5, 1])
    store = TrajectoryStore(convert(root, tmp_path / "out", img_size=12, show_progress=False))
    ds = VideoWindowDataset(root, 2, layout="lerobot", img_size=12)
    assert len(ds) == 3 + 2
    _assert_same_as_converter(ds, store)
    png = _write_v2(tmp_path / "png", [5], "v2.0", video=False)
    with pytest.raises(DatasetError, match="holds images in the parquet files, not video: use convert"):
        VideoWindowDataset(png, 2)


def _same_error(src, build, **opts):
    """The window reader fails with the converter's message (same file, same field)."""
    with pytest.raises(DatasetError) as by_convert:
        convert(src, src.parent / "out", options=opts, show_progress=False)
    with pytest.raises(DatasetError) as by_windows:
        build(src, 2, **opts).window(0)
    assert str(by_windows.value) == str(by_convert.value)
    return str(by_windows.value)


def _droid_bad(tmp_path, mutate=None, **kwargs):
    root = tmp_path / "droid"
    ep = _episode(root, "ep", 9, **kwargs)
    if mutate:
        mutate(ep)
    return root


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mutate": lambda ep: next(ep.glob("metadata_*")).unlink()}, "missing metadata"),
        ({"meta_key": "x"}, "missing camera key 'left_mp4_path'"),
        ({"mutate": lambda ep: (ep / "recordings/MP4/111.mp4").unlink()}, "missing MP4"),
        ({"n_video": 7}, "7 video frames but 9 steps"),
        ({"pose": np.where(np.arange(9)[:, None] == 3, np.nan, _poses(9))}, "NaN or inf pose at frame 3"),
        ({"pose": np.where(np.arange(7) == 6, 1.5, _poses(9))}, "gripper 1.5 outside"),
        (
            {"mutate": lambda ep: (ep / "recordings/MP4/111.mp4").write_bytes(b"\0" * 400)},
            "111.mp4 (left_mp4_path): cannot open video",
        ),
    ],
)
def test_droid_bad_input_errors_as_converter(tmp_path, kwargs, message):
    assert message in _same_error(_droid_bad(tmp_path, **kwargs), VideoWindowDataset)


def test_truncated_video_is_an_error(tmp_path):
    root = _droid_bad(tmp_path)
    mp4 = root / "ep/recordings/MP4/111.mp4"
    mp4.write_bytes(mp4.read_bytes()[:-200])
    with pytest.raises(DatasetError, match=r"111.mp4 \(left_mp4_path\): (cannot (open|read|decode) video|truncated)"):
        VideoWindowDataset(root, 2).window(0)


def test_lerobot_bad_input_errors_as_converter(tmp_path):
    root = _write_v2(tmp_path / "ver", [5])
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    assert "unknown LeRobot version 'v1.6'" in _same_error(root, VideoWindowDataset)
    root = _write_v2(tmp_path / "feat", [5])
    assert "(available: action, observation.images" in _same_error(root, VideoWindowDataset, state="joints")
    ts = np.arange(5) / FPS
    ts[3] += 0.01
    assert "off the 8 fps grid at frame 3" in _same_error(_write_v2(tmp_path / "grid", [5], ts=ts), VideoWindowDataset)
    root = _write_v2(tmp_path / "mp4", [5])
    (root / f"videos/chunk-000/{CAM}/episode_000000.mp4").unlink()
    assert "episode_000000.mp4: missing video file" in _same_error(root, VideoWindowDataset)


def test_arguments_are_checked(tmp_path):
    root = _droid(tmp_path / "droid")
    with pytest.raises(ValueError, match="num_frames must be >= 2"):
        VideoWindowDataset(root, 1)
    with pytest.raises(ValueError, match="no episode of .* has 9 kept frames"):
        VideoWindowDataset(root, 9)
    with pytest.raises(DatasetError, match="reads layouts"):
        VideoWindowDataset(root, 2, layout="franka_h5")
    with pytest.raises(IndexError):
        VideoWindowDataset(root, 2).window(99)


def _assert_same_store(video: VideoStore, store: TrajectoryStore) -> None:
    """The same episodes, rows, stats and metadata as the converted file, and every batch of an epoch equal."""
    assert (video.env, video.env_kwargs, video.image_shape) == (store.env, store.env_kwargs, store.image_shape)
    assert (video.num_episodes, video.num_frames) == (store.num_episodes, store.num_frames)
    for key in ("episode_starts", "episode_lengths", "actions", "proprio", "state"):
        np.testing.assert_array_equal(getattr(video, key), getattr(store, key), err_msg=key)  # NaN rows included
    assert video.action_stats == store.action_stats and video.proprio_stats == store.proprio_stats
    assert video.decoded == 0, "opening a video store decodes no frame"
    for t in (1, 3):  # windows of one frame (pretraining, heads) and of 3
        a, b = WindowDataset(video, t, 1), WindowDataset(store, t, 1)
        for x, y in zip(a.batches(2, epoch=1, seed=3), b.batches(2, epoch=1, seed=3), strict=True):
            assert x.keys() == y.keys() == {"pixels", "proprio", "actions", "state"}
            for k in x:
                assert x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]), k


def test_video_store_equals_the_converted_file(tmp_path):
    root = _droid(tmp_path / "droid")
    store = TrajectoryStore(convert(root, tmp_path / "out", img_size=16, show_progress=False))
    video = VideoStore(root, img_size=16)
    assert video.layout == "droid_raw" and video.created.startswith("droid_raw sha256:")
    _assert_same_store(video, store)
    frames = np.array([[8, 0], [5, 5]])  # any shape, any order, repeats
    np.testing.assert_array_equal(video.read_pixels(frames), store.read_pixels(frames))
    for e in range(store.num_episodes):
        for key, value in video.episode(e).items():
            np.testing.assert_array_equal(value, store.episode(e)[key])
    clone = pickle.loads(pickle.dumps(video))
    assert len(clone._videos.open) == 0 and np.array_equal(clone.read_pixels([3]), store.read_pixels([3]))
    # Another camera, or other poses, is another dataset.
    assert VideoStore(root, img_size=16).created == video.created
    assert VideoStore(root, img_size=16, fps=30).created != video.created
    with pytest.raises(DatasetError, match=r"layout droid_raw takes options .*unknown \['state'\]"):
        VideoStore(root, img_size=16, state="x")


def test_video_store_equals_the_converted_lerobot_file(tmp_path):
    root = _write_v3(tmp_path / "v3", [6, 5, 9], "libx264")
    for opts in ({}, {"action": "action"}):
        out = tmp_path / f"out{len(opts)}"
        store = TrajectoryStore(convert(root, out, img_size=16, options=opts, show_progress=False))
        _assert_same_store(VideoStore(root, img_size=16, **opts), store)


def _write_av1(frames: np.ndarray, fps: int, path, gop: int) -> None:
    """An AV1 MP4 with a keyframe every ``gop`` frames (hidden/reordered frames in between, as SVT-AV1 codes)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream(_av1_encoder(), rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.gop_size = gop
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())


def _av1_encoder() -> str | None:
    """The first AV1 encoder this FFmpeg build opens ("av1" may name a hardware-only one)."""
    import av

    for name in ("libsvtav1", "libaom-av1", "librav1e", "av1"):
        if name not in av.codecs_available:
            continue
        try:
            ctx = av.CodecContext.create(name, "w")
            ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = (
                64,
                64,
                "yuv420p",
                Fraction(1, 15),
            )
            ctx.open()
        except Exception:  # noqa: BLE001 - no such encoder, or one that needs hardware
            continue
        return name
    return None


def test_av1_windows_equal_converter_bit_for_bit(tmp_path):
    """DROID's published MP4s are H.264; AV1 (LeRobot's default codec) must read the same through both paths."""
    import av

    if _av1_encoder() is None:
        pytest.skip(
            f"no AV1 encoder in this PyAV/FFmpeg build (codecs: {sorted(c for c in av.codecs_available if 'av1' in c)})"
        )
    root = tmp_path / "droid"
    ep = _episode(root, "ep0", 30)
    # 64 px: SVT-AV1 refuses smaller frames. Keyframes every 8 frames: windows seek to one and decode on from it.
    _write_av1(colour_frames(30, h=64, w=80), 15, ep / "recordings/MP4/111.mp4", gop=8)
    with av.open(str(ep / "recordings/MP4/111.mp4")) as c:
        assert c.streams.video[0].codec_context.name in ("libdav1d", "av1", "libaom-av1")
    store = TrajectoryStore(convert(root, tmp_path / "out", img_size=16, show_progress=False))
    ds = VideoWindowDataset(root, 3, img_size=16)
    assert frame_ids(ds.window(len(ds) - 1)["pixels"]) == [20, 24, 28]
    # Seeks to the keyframes at 16 (decoding 16 … 20) and 24 (24), then decodes on to 28: never from frame 0.
    assert ds.converted == 3 and ds.decoded == 5 + 1 + 4
    _assert_same_as_converter(ds, store)  # exact pixels
    full = VideoWindowDataset(root, 3)  # no resize: the decoder's own frames, centre-cropped
    converted = convert(root, tmp_path / "full", show_progress=False)
    _assert_same_as_converter(full, TrajectoryStore(converted))
    _assert_same_store(VideoStore(root, img_size=16), store)
