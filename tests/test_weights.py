"""Weight files by URL, served from a loopback HTTP server: cached once, refused when truncated or wrong."""

import hashlib

import pytest
import torch

from jepa_wms.weights import WeightsUnavailableError, resolve_weights


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PRETRAINED_CKPT_ROOT", str(tmp_path / "cache"))


def test_url_is_downloaded_once_into_the_cache(server, tmp_path):
    url, served, hits, _ = server
    torch.save({"w": torch.arange(10)}, served / "model.pth")
    path = resolve_weights(f"{url}/model.pth", progress=False)
    assert path == tmp_path / "cache" / "model.pth"
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(10))
    assert resolve_weights(f"{url}/model.pth", progress=False) == path
    assert hits == ["/model.pth"], "the second call must come from the cache"


def test_truncated_download_leaves_nothing(server, tmp_path):
    url, served, _, truncate = server
    (served / "big.pth").write_bytes(b"x" * 10_000)
    truncate["on"] = True
    with pytest.raises(WeightsUnavailableError, match="cache/big.pth"):
        resolve_weights(f"{url}/big.pth", progress=False)
    assert not list((tmp_path / "cache").iterdir())


def test_checksum_mismatch_is_refused(server, tmp_path):
    url, served, _, _ = server
    (served / "m.pth").write_bytes(b"payload")
    good = hashlib.sha256(b"payload").hexdigest()[:8]
    assert resolve_weights(f"{url}/m.pth", sha256_prefix=good, progress=False).exists()
    (tmp_path / "cache" / "m.pth").unlink()
    with pytest.raises(WeightsUnavailableError, match="SHA-256"):
        resolve_weights(f"{url}/m.pth", sha256_prefix="00000000", progress=False)
    assert not (tmp_path / "cache" / "m.pth").exists()


def test_offline_error_says_where_to_put_the_file(tmp_path):
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(WeightsUnavailableError, match=r"put the file at .*cache/dinov2_vits14_pretrain.pth"):
        resolve_weights("http://127.0.0.1:9/dinov2_vits14_pretrain.pth", progress=False, timeout=5)


def test_local_paths(tmp_path):
    f = tmp_path / "w.pth"
    f.write_bytes(b"1")
    assert resolve_weights(f) == f
    with pytest.raises(WeightsUnavailableError, match="nope.pth"):
        resolve_weights(tmp_path / "nope.pth")


def test_dinov2_loads_official_layout_by_url(server, tmp_path):
    from jepa_wms.encoders import build_dinov2

    url, served, _, _ = server
    torch.manual_seed(0)
    source = build_dinov2("dinov2_vits14")
    torch.save(source.state_dict(), served / "dinov2_vits14_pretrain.pth")
    loaded = build_dinov2("dinov2_vits14", weights=f"{url}/dinov2_vits14_pretrain.pth")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(source(x), loaded(x))
    assert (tmp_path / "cache" / "dinov2_vits14_pretrain.pth").is_file()
