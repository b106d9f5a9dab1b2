"""Simulate one galaxy-scale strong lens: lenstronomy for the lensing, GalSim for galaxies and PSFs.

A sample is made in five steps, each from its own random stream spawned from
the sample's seed (so the source of a sample can be re-drawn on its own):

1. lens parameters from the preset's priors (`astro_delens.lensmodel`);
2. a source galaxy (`~astro_delens.training.sources.ProceduralSourceGenerator`,
   or a real galaxy from a catalog), placed at a random offset from the lens
   centre inside the region that is multiply imaged;
3. the source drawn by GalSim on a fine source-plane grid, turned into the
   source target (reference PSF, binned onto the source-plane grid), and the
   target lensed by the ``EPL`` + ``SHEAR`` model through lenstronomy's
   `~lenstronomy.ImSim.image_model.ImageModel` (``INTERPOL`` light profile,
   bilinear interpolation, sub-pixel supersampling) and convolved with the PSF;
4. the lens galaxy's light, an elliptical Sersic profile roughly aligned with the
   mass (presets with lens light);
5. sky and Poisson noise (presets with noise).

The source target (see `astro_delens.presets`) is thus, by construction, the
source whose lensed image is the arcs: the true lens re-lenses it exactly.
"""

from __future__ import annotations

import numpy as np

from .. import lensmodel
from ..presets import get_preset
from .instrument import PSFBank, add_noise, draw_psf, psf_stamp_size
from .sources import ProceduralSourceGenerator

__all__ = ["LensSimulator", "make_simulator", "render_arcs", "render_lens_light", "source_offset",
           "source_target"]

#: Largest source offset from the lens centre, in units of theta_E; sources
#: inside it are strongly lensed into arcs, rings or quads/doubles.
MAX_SOURCE_OFFSET = 0.35


def _streams(seed):
    """Independent random streams for (lens, source, instrument, noise)."""
    entropy = list(np.atleast_1d(seed).astype(np.int64)) if not isinstance(seed, int) else seed
    children = np.random.SeedSequence(entropy).spawn(4)
    return [np.random.default_rng(c) for c in children]


def source_offset(theta_E, rng):
    """Source position (x east, y north; arcsec) relative to the lens centre, uniform in area."""
    radius = MAX_SOURCE_OFFSET * theta_E * np.sqrt(rng.uniform())
    angle = rng.uniform(0, 2 * np.pi)
    return float(radius * np.cos(angle)), float(radius * np.sin(angle))


def _draw_on_grid(profile, npix, scale, offset_xy):
    """Surface brightness (flux per arcsec^2) of ``profile`` sampled at pixel centres.

    The grid follows this package's orientation (column 0 east, row 0 south).
    GalSim's +x axis points to increasing columns, i.e. to the west, so the
    shift in GalSim's frame is ``(-x, y)`` and the drawn array needs no flip.
    The profiles are analytic, so they are evaluated in real space (no FFT).
    """
    x, y = offset_xy
    image = profile.shift(-x, y).drawImage(nx=npix, ny=npix, scale=scale, method="no_pixel")
    return image.array.astype(float) / scale**2


def source_target(hires_sb, hires_scale, reference_fwhm, factor=2):
    """The source target from the fine source image that is lensed.

    The fine surface-brightness image is convolved with the Gaussian reference
    PSF and integrated over target pixels (``factor`` x ``factor`` fine pixels
    each), giving flux per target pixel.
    """
    from scipy.ndimage import gaussian_filter

    sigma_pixels = reference_fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / hires_scale
    smooth = gaussian_filter(hires_sb, sigma_pixels, mode="constant")
    n = smooth.shape[0] // factor
    binned = smooth[: n * factor, : n * factor].reshape(n, factor, n, factor).sum(axis=(1, 3))
    return binned * hires_scale**2


def render_arcs(params, source_sb, source_scale, npix, pixel_scale, psf, supersampling=3):
    """Lens a pixelised source with lenstronomy and convolve it with the PSF.

    The same renderer as the physics tools'
    (`astro_delens.forward.render_lensed_source`), given surface brightness.

    Parameters
    ----------
    params : array-like (8,)
        Lens parameters (`astro_delens.lensmodel` order).
    source_sb : ndarray (m, m)
        Source surface brightness (flux per arcsec^2) on a grid centred on the
        lens centre, in this package's orientation (column 0 east, row 0 south).
    source_scale : float
        Pixel scale of ``source_sb`` in arcsec.
    npix, pixel_scale : int, float
        The image grid.
    psf : ndarray
        Pixelised PSF on the image grid (odd size, unit sum).
    supersampling : int
        Rays per pixel side.

    Returns
    -------
    ndarray (npix, npix)
        Lensed, PSF-convolved source in flux per image pixel.
    """
    from ..forward.relens import render_lensed_source

    # the physics tools' renderer, which takes flux per source pixel
    flux = np.asarray(source_sb, dtype=float) * float(source_scale) ** 2
    return render_lensed_source(params, flux, source_scale, npix, pixel_scale, psf=psf,
                                supersampling=supersampling)


def render_lens_light(kwargs_sersic, npix, pixel_scale, psf, supersampling=3):
    """``SERSIC_ELLIPSE`` light through lenstronomy, PSF-convolved, in flux per pixel.

    ``kwargs_sersic`` holds the keywords of one profile (a dict) or of several
    (a list of dicts, summed).
    """
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LightModel.light_model import LightModel

    kwargs_list = [kwargs_sersic] if isinstance(kwargs_sersic, dict) else list(kwargs_sersic)
    image_model = ImageModel(
        ImageData(**lensmodel.image_data_kwargs(npix, pixel_scale)),
        PSF(psf_type="PIXEL", kernel_point_source=np.asarray(psf, dtype=float)),
        lens_light_model_class=LightModel(["SERSIC_ELLIPSE"] * len(kwargs_list)),
        kwargs_numerics={"supersampling_factor": int(supersampling),
                         "supersampling_convolution": False},
    )
    return image_model.lens_surface_brightness(kwargs_list)


class LensSimulator:
    """Simulate strong lenses of a preset.

    Parameters
    ----------
    preset : str or `~astro_delens.presets.Preset`
        ``"seed"`` or ``"survey"`` (see `astro_delens.presets`).
    source_catalog : object, optional
        Real galaxies (`astro_delens.training.real_galaxies`): an object with
        ``__len__``, ``profile(index, rng)`` and ``source_id(index)``. Without
        it, sources are procedural.
    psf_files : list, optional
        FITS PSFs (see `~astro_delens.training.instrument.PSFBank`); when given,
        the ``file`` PSF kind is drawn for a quarter of the lenses of presets
        that vary the PSF.

    Examples
    --------
    >>> from astro_delens.training.simulate import LensSimulator
    >>> sample = LensSimulator("seed").simulate(42)
    >>> sample["image"].shape, sample["source"].shape, sample["params"].shape
    ((64, 64), (64, 64), (8,))
    """

    def __init__(self, preset="survey", source_catalog=None, psf_files=None):
        self.preset = get_preset(preset)
        self.source_catalog = source_catalog
        self.psf_bank = PSFBank(list(psf_files)) if psf_files else None
        self.generator = ProceduralSourceGenerator()
        p = self.preset
        self.psf_npix = psf_stamp_size(p.psf_fwhm_range[1], p.pixel_scale)
        self.hires_scale = p.source_pixel_scale / 2.0
        self.hires_npix = 2 * p.source_npix

    # -- pieces -------------------------------------------------------------
    def source_for(self, seed, catalog_index=None):
        """The source of sample ``seed``: ``(profile, kind, source_id, (x, y) offset)``.

        Re-draws exactly the galaxy that `simulate` lenses for this seed.
        """
        lens_rng, source_rng, _, _ = _streams(seed)
        params = lensmodel.sample_parameters(self.preset.name, lens_rng)
        if self.source_catalog is not None:
            if catalog_index is None:
                catalog_index = int(source_rng.integers(len(self.source_catalog)))
            profile = self.source_catalog.profile(catalog_index, source_rng)
            kind, source_id = "real", self.source_catalog.source_id(catalog_index)
        else:
            profile, kind = self.generator.draw(source_rng)
            source_id = f"procedural:{np.random.SeedSequence(seed).entropy}"
        offset = source_offset(params[lensmodel.INDEX["theta_E"]], source_rng)
        return profile, kind, source_id, offset

    def _psf(self, rng):
        p = self.preset
        kinds = list(p.psf_kinds)
        if self.psf_bank is not None and len(kinds) > 1:
            kinds = kinds + ["file"] * max(1, len(kinds) // 3)
        kind = kinds[int(rng.integers(len(kinds)))]
        low, high = p.psf_fwhm_range
        fwhm = float(np.exp(rng.uniform(np.log(low), np.log(high)))) if high > low else float(low)
        psf, measured = draw_psf(kind, fwhm, p.pixel_scale, self.psf_npix, rng, self.psf_bank)
        return psf, kind, measured

    def _lens_light_kwargs(self, params, rng):
        theta_E = params[lensmodel.INDEX["theta_E"]]
        phi, q = lensmodel_phi_q(params[lensmodel.INDEX["e1"]], params[lensmodel.INDEX["e2"]])
        q_light = np.clip(q * rng.uniform(0.85, 1.15), 0.3, 1.0)
        phi_light = phi + rng.normal(0.0, np.radians(10.0))
        from lenstronomy.Util.param_util import phi_q2_ellipticity

        e1, e2 = phi_q2_ellipticity(phi_light, q_light)
        return {
            "amp": 1.0, "R_sersic": float(theta_E * np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
            "n_sersic": float(rng.uniform(2.0, 5.0)), "e1": float(e1), "e2": float(e2),
            "center_x": float(params[lensmodel.INDEX["center_x"]] + rng.normal(0, 0.01)),
            "center_y": float(params[lensmodel.INDEX["center_y"]] + rng.normal(0, 0.01)),
        }

    # -- the sample -----------------------------------------------------------
    def simulate(self, seed, catalog_index=None) -> dict:
        """Simulate the lens of ``seed`` (an int or a sequence of ints).

        See ``CONTRACTS.md`` / the docs for the keys of the returned dict.
        """
        p = self.preset
        lens_rng, _, instrument_rng, noise_rng = _streams(seed)
        params = lensmodel.sample_parameters(p.name, lens_rng)
        profile, kind, source_id, offset = self.source_for(seed, catalog_index)

        hires = _draw_on_grid(profile, self.hires_npix, self.hires_scale, offset)
        target = source_target(hires, self.hires_scale, p.source_reference_fwhm)
        psf, psf_kind, psf_fwhm = self._psf(instrument_rng)
        # The target itself is lensed, so re-lensing it with the true lens gives the arcs.
        arcs = render_arcs(params, target / p.source_pixel_scale**2, p.source_pixel_scale,
                           p.npix, p.pixel_scale, psf, p.supersampling)
        peak = float(arcs.max())
        if not peak > 0:
            raise RuntimeError(f"seed {seed!r}: the lensed source fell outside the image")
        # Arcs peak at 1 (arbitrary flux units); the target scales with them.
        arcs, target = arcs / peak, target / peak

        lens_light = np.zeros_like(arcs)
        ratio = 0.0
        if p.lens_light:
            kwargs_light = self._lens_light_kwargs(params, instrument_rng)
            if instrument_rng.uniform() >= p.lens_light_zero_fraction:
                low, high = p.lens_light_ratio_range
                ratio = float(np.exp(instrument_rng.uniform(np.log(low), np.log(high))))
                light = render_lens_light(kwargs_light, p.npix, p.pixel_scale, psf, p.supersampling)
                lens_light = light * (ratio / light.max())

        model = arcs + lens_light
        if p.noise:
            low, high = p.snr_range
            snr = float(np.exp(noise_rng.uniform(np.log(low), np.log(high))))
            sky = float(np.exp(noise_rng.uniform(np.log(10.0), np.log(1000.0))))
            image, noise_map = add_noise(model, 1.0, snr, sky, noise_rng)
        else:
            snr = float("inf")
            image, noise_map = model.astype(np.float32), np.zeros_like(model, dtype=np.float32)

        return {
            "image": image,
            "noise_map": noise_map,
            "arcs": arcs.astype(np.float32),
            "lens_light": lens_light.astype(np.float32),
            "source": target.astype(np.float32),
            "params": params,
            "psf": psf,
            "meta": {
                "pixel_scale": p.pixel_scale, "psf_kind": psf_kind, "psf_fwhm": psf_fwhm,
                "snr": snr, "lens_light_ratio": ratio, "source_kind": kind,
                "source_id": source_id, "source_x": offset[0], "source_y": offset[1],
            },
        }


def lensmodel_phi_q(e1, e2):
    """lenstronomy's orientation and axis ratio of ellipticity ``(e1, e2)``."""
    from lenstronomy.Util.param_util import ellipticity2phi_q

    phi, q = ellipticity2phi_q(e1, e2)
    return float(phi), float(q)


def make_simulator(preset, source_catalog=None, psf_files=None) -> LensSimulator:
    """The simulator of ``preset``: `~astro_delens.training.sky.SkySimulator` for presets
    that ask for it (``extra["simulator"] == "sky"``), else `LensSimulator`."""
    preset = get_preset(preset)
    if preset.extra.get("simulator") == "sky":
        from .sky import SkySimulator

        return SkySimulator(preset, source_catalog=source_catalog, psf_files=psf_files)
    return LensSimulator(preset, source_catalog=source_catalog, psf_files=psf_files)
