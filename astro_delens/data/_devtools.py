"""Developer helpers for tests and benchmarks (not used by the package at run time).

`make_untrained_family` writes a model family with untrained (tiny by
default) networks, so that the inference code can be exercised without the
shipped weights. `load_real_lens` opens the real lenses of the project's
shared data folder: the tests and benchmarks run every lens listed in
``../shared/data/real_lenses/manifest.json`` (beside the repository; absent
from a user's clone) through the public classes. This module reads that
manifest and turns each entry into the arguments of
`~astro_delens.LensParameterEstimator.predict`, following the notes of each
entry (HDU names, extensions holding the noise and PSF, flipped arrays, masks
that are regions of interest rather than bad pixels, the lenstronomy HDF5
layout of the DESI lenses).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["shared_data_dir", "real_lens_entries", "load_real_lens", "make_untrained_family"]


def shared_data_dir():
    """``../shared/data`` relative to the repository root (None when absent).

    Looked for beside the source tree of the package, then beside the current
    folder; ``ASTRO_DELENS_SHARED_DATA`` overrides both.
    """
    env = os.environ.get("ASTRO_DELENS_SHARED_DATA")
    if env:
        candidates = [Path(env)]
    else:
        candidates = [Path(__file__).resolve().parents[3] / "shared" / "data",
                      Path.cwd().resolve().parent / "shared" / "data"]
    for path in candidates:
        if (path / "real_lenses" / "manifest.json").is_file():
            return path
    return None


def real_lens_entries(root=None):
    """The manifest entries (list of dict); empty when the shared data are absent."""
    root = Path(root) if root is not None else shared_data_dir()
    if root is None:
        return []
    with open(root / "real_lenses" / "manifest.json") as f:
        return json.load(f)


def _fits_array(path, hdu=0):
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        return np.array(hdul[hdu].data, dtype=float)


def _is_region_of_interest(mask_path):
    # an "arc mask" marks the pixels to fit (1 = use), not bad pixels
    return "arc_mask" in Path(mask_path).name


def load_real_lens(entry, root=None):
    """``(data, kwargs)`` for ``predict(data, **kwargs)`` of one manifest entry.

    Parameters
    ----------
    entry : dict
        One entry of `real_lens_entries`.
    root : path-like, optional
        The shared data folder (default `shared_data_dir`).
    """
    import astropy.units as u

    root = Path(root) if root is not None else shared_data_dir()
    base = root / "real_lenses"
    image = base / entry["image"]
    kwargs = {}
    notes = entry.get("notes", "")
    if "background-subtracted" in notes.lower():
        kwargs["background_subtracted"] = True
    if str(image).endswith(".h5"):
        return _load_lenstronomy_h5(entry, base, kwargs)
    mask = entry.get("mask")
    if entry.get("wcs"):
        data = str(image)
        kwargs["hdu"] = entry["hdu"]
        if entry.get("noise"):
            kwargs["noise"] = _aux_reference(entry["noise"], base)
        if entry.get("psf"):
            kwargs["psf"] = _aux_reference(entry["psf"], base)
        if mask and not _is_region_of_interest(mask):
            kwargs["mask"] = _fits_array(base / mask) != 0
        return data, kwargs
    # arrays without a sky WCS: the pixel scale comes from the manifest
    hdu = entry["hdu"] if isinstance(entry["hdu"], (int, str)) else 0
    arrays = {"data": _fits_array(image, hdu)}
    if entry.get("noise"):
        arrays["noise"] = _fits_array(base / entry["noise"])
    if mask and not _is_region_of_interest(mask):
        arrays["mask"] = _fits_array(base / mask) != 0
    if "flipped top-to-bottom" in notes:
        arrays = {k: np.flipud(v) for k, v in arrays.items()}
    data = arrays.pop("data")
    kwargs.update(arrays)
    kwargs["pixel_scale"] = entry["pixel_scale_arcsec"] * u.arcsec
    if entry.get("psf"):
        kwargs["psf"] = _fits_array(base / entry["psf"])
    return data, kwargs


def _aux_reference(text, base):
    """``"file.fits[EXT] (comment)"`` -> ``"<base>/file.fits[EXT]"``."""
    ref = text.split(" (")[0].strip()
    return str(base / ref)


def _load_lenstronomy_h5(entry, base, kwargs):
    """A lens stored as lenstronomy ``kwargs_data`` in HDF5 (DESI HST F140W)."""
    import astropy.units as u
    import h5py

    with h5py.File(base / entry["image"], "r") as f:
        image = np.array(f["image_data"], dtype=float)
        rms = float(np.array(f["background_rms"]))
        exposure = np.array(f["exposure_time"], dtype=float)
        transform = np.array(f["transform_pix2angle"], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = rms**2 + np.clip(image, 0.0, None) / exposure
    noise = np.sqrt(variance)
    mask = ~(exposure > 0)
    # lenstronomy's transform maps pixels to (ra, dec): make it north up, east left
    if transform[0, 0] > 0:
        image, noise, mask = (np.fliplr(a) for a in (image, noise, mask))
    if transform[1, 1] < 0:
        image, noise, mask = (np.flipud(a) for a in (image, noise, mask))
    scale = float(np.sqrt(abs(np.linalg.det(transform))))
    psf_name = entry["psf"].split(" (")[0].strip()
    with h5py.File(base / psf_name, "r") as f:
        psf = np.array(f["kernel_point_source"], dtype=float)
    kwargs.update(pixel_scale=scale * u.arcsec, noise=noise, mask=mask, psf=psf)
    return image, kwargs


def make_untrained_family(path, preset="survey", tiny=True, seed=0):
    """Write a model family ``path/{estimator,reconstructor}`` with untrained networks.

    The model directories follow `astro_delens.nn.registry` (config.json,
    model.weights.h5, card.md, SHA256SUMS) and load with
    ``load_estimator(path)`` / ``load_reconstructor(path)``. Their outputs are
    meaningless: they exist to test the plumbing quickly.

    Returns
    -------
    pathlib.Path
        The family directory.
    """
    import json

    import keras

    from .. import lensmodel
    from .._version import __version__
    from ..nn import architectures as arch
    from ..nn import normalization as norm
    from ..presets import get_preset
    from ..files import write_checksums

    preset = get_preset(preset)
    path = Path(path)
    keras.utils.set_random_seed(int(seed))
    for kind in ("estimator", "reconstructor"):
        base = dict(arch.TINY_ESTIMATOR if kind == "estimator" else arch.TINY_RECONSTRUCTOR) \
            if tiny else {}
        base["npix"] = preset.npix
        if kind == "reconstructor":
            base["source_npix"] = preset.source_npix
        config = arch.resolve_config(kind, base)
        model = arch.build_model(kind, config)
        out = path / kind
        out.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # TensorFlow's numpy-2 copy= deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            model.save_weights(str(out / "model.weights.h5"))
        cfg = {
            "kind": kind,
            "version": __version__,
            "status": "untrained (test model)",
            "architecture": config,
            "normalization": dict(norm.description(), params=norm.param_stats(preset)),
            "parameter_names": list(lensmodel.PARAMETER_NAMES),
            "preset": preset.to_dict(),
        }
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        (out / "card.md").write_text(f"# untrained {kind} for tests\n", encoding="utf-8")
        write_checksums(out)
    return path
