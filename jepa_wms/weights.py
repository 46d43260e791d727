"""Weight files by path or URL: downloads go to the torch hub cache (or ``PRETRAINED_CKPT_ROOT``), atomically, once.

Offline machines get an error that says which file to put where, instead of a stack trace from the network stack.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm


class WeightsUnavailableError(FileNotFoundError):
    """A weight file is neither on disk nor downloadable right now."""


def weights_dir() -> Path:
    """Where downloaded weights live: ``$PRETRAINED_CKPT_ROOT`` if set, else ``<torch hub dir>/checkpoints``."""
    root = os.environ.get("PRETRAINED_CKPT_ROOT")
    if root:
        return Path(root).expanduser()
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _is_url(spec: str) -> bool:
    return urllib.parse.urlparse(spec).scheme in ("http", "https", "file")


def resolve_weights(
    spec: str | os.PathLike,
    *,
    filename: str | None = None,
    sha256_prefix: str | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Return a local path for ``spec``: a local file as is, or a URL downloaded into :func:`weights_dir`.

    ``sha256_prefix`` (the first hex digits of the file's SHA-256, as torch hub names its files) is checked after a
    download; a mismatch deletes the download and raises.
    """
    text = str(spec)
    if not _is_url(text):
        path = Path(text).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"weight file {path} does not exist")
        return path
    name = filename or Path(urllib.parse.urlparse(text).path).name
    dest = weights_dir() / name
    if dest.is_file():
        return dest
    try:
        _download(text, dest, timeout, progress)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise WeightsUnavailableError(
            f"could not download {text} ({exc}); put the file at {dest} (or pass a local path) and retry"
        ) from exc
    if sha256_prefix:
        digest = hashlib.sha256(dest.read_bytes()).hexdigest()
        if not digest.startswith(sha256_prefix):
            dest.unlink()
            raise WeightsUnavailableError(
                f"{text} downloaded with SHA-256 {digest[:12]}…, expected {sha256_prefix}…; the file was removed"
            )
    return dest


def _download(url: str, dest: Path, timeout: float, progress: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            expected = int(total) if total is not None else None
            with tqdm(total=expected, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                written = 0
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
        if expected is not None and written != expected:
            raise ValueError(f"download ended after {written} of {expected} bytes")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
