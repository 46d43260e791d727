"""Shared fixtures: a tiny Wall dataset and config overrides that make a world model train in seconds."""

from __future__ import annotations

import http.server
import os
import threading

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo, whichever test imports it first

# A model small enough for 16-px frames: the encoder halves 16 → 8 → 4 (grid 4×4).
TINY = [
    "collect.img_size=16",
    "model.encoder.img_size=16",
    "model.encoder.channels=[8, 16]",
    "model.encoder.embed_dim=8",
    "model.encoder.grid_size=4",
    "model.encoder.stem_patch=0",
    "model.predictor.pred_dim=16",
    "model.predictor.depth=1",
    "model.predictor.num_heads=2",
    "model.proprio_emb_dim=4",
    "data.num_frames=4",
    "data.frameskip=2",
    "loss.rollout_steps=3",
    "train.batch_size=8",
    "train.epochs=2",
    "train.precision=fp32",
    "train.log_every=1",
    "plan.num_samples=16",
    "plan.iterations=2",
    "plan.num_elites=4",
    "plan.horizon=3",
    "plan.execute=3",
    "plan.episode_chunk=2",
    "eval.episodes=3",
    "eval.videos=1",
]


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    from jepa_wms.datasets import collect

    out = tmp_path_factory.mktemp("data")
    return collect("wall", 6, out, episode_len=20, workers=1, img_size=16, show_progress=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_dataset):
    from jepa_wms.config import load_config
    from jepa_wms.training import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("train")
    return train(load_config("wall", TINY), tiny_dataset.parent, out, show_progress=False)


@pytest.fixture(scope="session")
def tiny_image_head(tmp_path_factory, tiny_dataset, tiny_checkpoint):
    """An image head (one decoder stage, one epoch) on the tiny checkpoint's encoder."""
    from jepa_wms.heads import train_head

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("image_head")
    return train_head(
        tiny_checkpoint, "image", tiny_dataset.parent, out, ["train.epochs=1"], channels=[8], show_progress=False
    )


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server over ``tmp_path/served``: yields (base URL, folder, requested paths, truncate switch)."""
    served = tmp_path / "served"
    served.mkdir()
    hits: list[str] = []
    truncate = {"on": False}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):
            hits.append(self.path)
            if truncate["on"]:
                data = (served / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                return
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served, hits, truncate
    httpd.shutdown()
