"""Files written safely and checked: atomic writes, SHA-256 digests, JSON with non-finite floats.

Every output of the package (tables, FITS files, figures, model files) is
written to a temporary file in the target folder and renamed into place, so
that an interrupted run never leaves a partial file behind.

Examples
--------
>>> import tempfile, pathlib
>>> from astro_delens.files import atomic_write_text, sha256_file, to_json
>>> target = pathlib.Path(tempfile.mkdtemp()) / "a.json"
>>> path = atomic_write_text(target, to_json({"snr": float("inf")}))
>>> path.read_text(), sha256_file(path)[:12]
('{"snr": "inf"}', 'c5611d702f41')
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_write", "atomic_write_text", "sha256_file", "write_checksums", "to_json"]


def atomic_write(path, write, overwrite=True) -> Path:
    """Call ``write(temporary_path)`` and rename the result to ``path``.

    Raises `FileExistsError` when ``path`` exists and ``overwrite`` is False.
    The folder is created when needed; the file gets the usual permissions
    (the temporary file's 0600 is widened by the umask).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"output: {str(path)!r} exists (use overwrite=True / --overwrite)")
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def sha256_file(path, chunk=1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def write_checksums(model_dir, names=("config.json", "model.weights.h5", "card.md")) -> dict:
    """Write ``SHA256SUMS`` (``sha256sum`` format) for the ``names`` present in ``model_dir``."""
    model_dir = Path(model_dir)
    sums = {name: sha256_file(model_dir / name) for name in names
            if (model_dir / name).exists()}
    atomic_write_text(model_dir / "SHA256SUMS",
                      "".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    return sums


def to_json(obj, **kw) -> str:
    """`json.dumps` that writes non-finite floats as the strings "inf", "-inf", "nan".

    Strict JSON has no infinities; the noise-free presets have an infinite S/N.
    NumPy arrays and scalars become lists and Python numbers.
    """
    def clean(o):
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, np.ndarray):
            return clean(o.tolist())
        if isinstance(o, np.generic):
            o = o.item()
        if isinstance(o, float) and not math.isfinite(o):
            return "nan" if math.isnan(o) else ("inf" if o > 0 else "-inf")
        return o

    return json.dumps(clean(obj), allow_nan=False, **kw)
