"""`ReconstructedSource`: a reconstructed source that carries its re-lensing check.

`make_source` builds it, once, with everything it carries; the checks come
from `run_relens_check` (a network's source) or `run_inversion` (a pixelated
source, whose check is its own fit).

`~astro_delens.SourceReconstructor.reconstruct` returns the source as a
`~astropy.nddata.CCDData` (data, unit, source-plane WCS, provenance header).
This subclass adds what the physics says about it: the lens estimate that was
used (``lens``) and the `~astro_delens.forward.RelensResult` of re-lensing the
source with that lens and comparing with the data (``check``). The check's
images and numbers are also properties of the source (``model_image``,
``residuals``, ``reduced_chi2``, ``flag``...), `ReconstructedSource.plot` draws
them, and `~astropy.nddata.CCDData.write` (through `ReconstructedSource.to_hdu`)
stores them as FITS extensions ``RELENS_MODEL``, ``LENS_LIGHT`` and
``RESIDUALS`` with the reduced chi^2 (``RLCHI2``) and the flag (``RLFLAG``) in
the primary header.

Slicing or arithmetic gives a plain result without the check (it no longer
describes the new array).
"""

from __future__ import annotations

import numpy as np

from astropy.nddata import CCDData

from .grids import linear_wcs, tan_wcs
from .psf import psf_keywords

__all__ = ["ReconstructedSource", "make_source", "run_relens_check", "run_inversion",
           "NoCheckError"]


class NoCheckError(AttributeError):
    """Asked for a re-lensing result of a source that was not checked."""


def make_source(source, prepared, model, lens_center, lens_center_source, extra=None,
                lens=None, check=None):
    """Wrap a reconstructed source array into a `ReconstructedSource`, built once.

    Parameters
    ----------
    source : numpy.ndarray, shape (S, S)
        Flux per source pixel (``preset.source_pixel_scale``), north up, east left,
        centred on the lens centre.
    prepared : `~astro_delens.cutout.PreparedCutout`
    model : dict
        Provenance of the reconstructor (see `~astro_delens.results.provenance_header`).
    lens_center : tuple of float
        ``(x, y)`` offsets of the lens centre from the cutout centre in arcsec.
    lens_center_source : str
        How the lens centre was found (recorded in the header).
    extra : dict, optional
        More header cards, ``{keyword: (value, comment)}``.
    lens : `~astro_delens.results.LensEstimate`, optional
        The lens estimate the source grid is centred on.
    check : `~astro_delens.forward.RelensResult`, optional
        The re-lensing check of the source.

    Returns
    -------
    ReconstructedSource
        A `~astropy.nddata.CCDData` with a TAN WCS centred on the lens centre when
        the input had a celestial WCS, else a linear WCS of offsets in arcsec from
        the cutout centre (x east, y north; the reference pixel holds the lens
        centre), carrying ``prepared``, ``lens`` and ``check``.
    """
    import warnings

    import astropy.units as u

    from . import lensmodel
    from .results import header_text, provenance_header

    preset = prepared.preset
    s_npix, s_scale = source.shape[0], float(preset.source_pixel_scale)
    cx, cy = (float(v) for v in lens_center)
    cards = {
        "ADSRCSC": (s_scale, "[arcsec] source-plane pixel scale"),
        "ADLENSX": (round(cx, 6), "[arcsec] lens centre east of the cutout centre"),
        "ADLENSY": (round(cy, 6), "[arcsec] lens centre north of the cutout centre"),
        "ADLENSRC": (header_text(lens_center_source, 60), "how the lens centre was found"),
        "ADSRCREF": (float(preset.source_reference_fwhm),
                     "[arcsec] FWHM of the source reference PSF"),
    }
    if prepared.center is not None:
        n, d = prepared.preset.npix, prepared.pixel_scale
        i, j = lensmodel.angle_to_pixel(cx, cy, n, d)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lens_sky = prepared.wcs.pixel_to_world(float(i), float(j)).icrs
        wcs = tan_wcs(lens_sky, s_npix, s_scale)
        cards["ADLENSRA"] = (round(lens_sky.ra.deg, 8), "[deg] lens centre RA (ICRS)")
        cards["ADLENSDE"] = (round(lens_sky.dec.deg, 8), "[deg] lens centre Dec (ICRS)")
    else:
        wcs = linear_wcs(s_npix, s_scale, crval=(cx, cy))
    cards.update(extra or {})
    header = provenance_header(model, prepared, cards)
    unit = prepared.unit if prepared.unit is not None else u.dimensionless_unscaled
    out = ReconstructedSource(np.asarray(source, dtype=np.float32).copy(), unit=unit, wcs=wcs,
                              meta=header)
    out.prepared, out.lens, out.check = prepared, lens, check
    return out


def run_relens_check(source, prepared, params, **kwargs):
    """Re-lens a reconstructed source with lens ``params`` and compare with the prepared data.

    Parameters
    ----------
    source : array-like or `~astropy.nddata.CCDData` (S, S)
        Flux per source pixel on the preset's source grid, centred on the lens centre.
    prepared : `~astro_delens.cutout.PreparedCutout`
        The cutout the networks saw: image, noise, mask and PSF. Without a PSF,
        a Gaussian of ``prepared.assumed_psf_fwhm`` is used and the result's
        ``psf_used`` says so and why.
    params : array-like (8,)
        Lens parameters (`astro_delens.lensmodel` order).
    **kwargs
        More keywords of `astro_delens.forward.relens_check` (thresholds,
        ``lens_light``...).

    Returns
    -------
    `~astro_delens.forward.RelensResult`
    """
    from .forward import relens_check

    psf_kwargs, description = psf_keywords(prepared)
    data = np.asarray(getattr(source, "data", source), dtype=float)
    check = relens_check(prepared.image, prepared.noise_map, params, data,
                         prepared.preset.source_pixel_scale, prepared.pixel_scale,
                         mask=prepared.mask, **psf_kwargs, **kwargs)
    if description is not None:
        check.psf_used = description
    return check


def run_inversion(prepared, params, chi2_threshold=None, arc_chi2_threshold=None, **kwargs):
    """The pixelated source that lens ``params`` implies for a prepared cutout, and its check.

    Parameters
    ----------
    prepared : `~astro_delens.cutout.PreparedCutout`
    params : array-like (8,)
        Lens parameters (`astro_delens.lensmodel` order).
    chi2_threshold, arc_chi2_threshold : float, optional
        The check's thresholds (default: those of
        ``astro_delens.forward.pixelated.as_relens_result``).
    **kwargs
        More keywords of `astro_delens.forward.invert_pixelated`.

    Returns
    -------
    inversion : `~astro_delens.forward.PixelatedSource`
        Its source is on the preset's source grid, convolved with the preset's
        source reference PSF like the networks' sources.
    check : `~astro_delens.forward.RelensResult`
        The inversion's fit judged by the re-lensing check's tests.
    """
    from .forward.pixelated import as_relens_result, invert_pixelated

    preset = prepared.preset
    psf_kwargs, description = psf_keywords(prepared)
    kwargs.setdefault("reference_fwhm", preset.source_reference_fwhm)
    inversion = invert_pixelated(prepared.image, prepared.noise_map, params,
                                 prepared.pixel_scale, preset.source_npix,
                                 preset.source_pixel_scale, mask=prepared.mask,
                                 **psf_kwargs, **kwargs)
    thresholds = {k: v for k, v in (("chi2_threshold", chi2_threshold),
                                    ("arc_chi2_threshold", arc_chi2_threshold)) if v is not None}
    check = as_relens_result(inversion, prepared.image, prepared.noise_map, params,
                             prepared.pixel_scale, preset.source_pixel_scale, **thresholds)
    if description is not None:
        check.psf_used = description
    return inversion, check


class ReconstructedSource(CCDData):
    """A reconstructed source (`~astropy.nddata.CCDData`) with its re-lensing check.

    Made by `~astro_delens.SourceReconstructor`; use it as any CCDData.

    Attributes
    ----------
    lens : `~astro_delens.results.LensEstimate` or None
        The lens estimate the source grid is centred on and the check used.
    check : `~astro_delens.forward.RelensResult` or None
        The re-lensing check (None when it did not run).
    prepared : `~astro_delens.cutout.PreparedCutout` or None
        The cutout the networks saw.
    """

    lens = None
    check = None
    prepared = None

    def _checked(self):
        if self.check is None:
            raise NoCheckError(
                "no re-lensing check ran for this source (reconstruct(..., check=True) runs it; "
                "it needs a lens estimate)")
        return self.check

    @property
    def model_image(self):
        """The model of the data: lensed source plus lens light (image grid)."""
        return self._checked().model_image

    @property
    def lens_light_model(self):
        """The lens galaxy's light fitted in the check (image grid)."""
        return self._checked().lens_light_model

    @property
    def residuals(self):
        """``(data - model) / noise`` on the image grid (0 on unused pixels)."""
        return self._checked().residuals

    @property
    def reduced_chi2(self) -> float:
        """Reduced chi^2 of the re-lensed model over the unmasked pixels."""
        return float(self._checked().reduced_chi2)

    @property
    def flag(self) -> bool:
        """True when the re-lensed source does not explain the data (see ``flag_reasons``)."""
        return bool(self._checked().flag)

    @property
    def flag_reasons(self) -> list:
        """Which of the check's tests failed."""
        return list(self._checked().flag_reasons)

    def plot(self, path=None, fig=None, title=None):
        """Figure of the result, optionally saved as PNG to ``path``.

        With a check: data, model, normalised residuals, and the source with the
        estimated lens's critical curves and caustics (`RelensResult.plot`).
        Without: the prepared data beside the source.

        Parameters
        ----------
        path : path-like, optional
        fig : `matplotlib.figure.Figure`, optional
        title : str, optional
            Figure title (default: the input's label, with the check's reduced
            chi^2 and flag when there is a check).

        Returns
        -------
        `matplotlib.figure.Figure`
        """
        from .files import atomic_write
        from .results import plot_reconstruction

        label = self.prepared.label if self.prepared is not None else None
        if self.check is not None:
            fig = self.check.plot(fig=fig)
            if title is None:
                title = (f"{label + ': ' if label else ''}re-lensing reduced chi^2 "
                         f"{self.check.reduced_chi2:.2f}"
                         + (" (flagged)" if self.check.flag else ""))
            fig.suptitle(title)
            if path is not None:
                atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
            return fig
        if self.prepared is None:
            raise NoCheckError("plot: this source has neither a check nor its prepared cutout")
        return plot_reconstruction(self.prepared, self, path, title=title or label)

    def with_check(self, check):
        """A copy of this source that carries ``check`` (this one is left as it is)."""
        import copy

        out = copy.copy(self)
        out.check = check
        return out

    def to_hdu(self, *args, **kwargs):
        """HDUList of the source; with the check, its images as extensions (see module doc)."""
        from astropy.io import fits

        hdul = super().to_hdu(*args, **kwargs)
        check = self.check
        if check is None:
            return hdul
        header = hdul[0].header
        header["RLCHI2"] = (float(check.reduced_chi2), "re-lensing check: reduced chi^2")
        header["RLARCHI2"] = (float(check.arc_reduced_chi2),
                              "re-lensing check: arc-region reduced chi^2")
        header["RLAMP"] = (float(check.source_amplitude), "re-lensing check: source amplitude")
        header["RLFLAG"] = (bool(check.flag), "re-lensed source does not explain the data")
        header["RLPSF"] = (str(check.psf_used)[:40], "check PSF, see HISTORY")
        header.add_history(f"re-lensing check PSF: {check.psf_used}")
        for reason in check.flag_reasons:
            header.add_history(f"re-lensing check flag: {reason}")
        wcs = self.prepared.wcs if self.prepared is not None else None
        image_header = wcs.to_header() if wcs is not None else fits.Header()
        for data, extname in ((check.model_image, "RELENS_MODEL"),
                              (check.lens_light_model, "LENS_LIGHT"),
                              (check.residuals, "RESIDUALS")):
            hdul.append(fits.ImageHDU(np.asarray(data, dtype=np.float32), header=image_header,
                                      name=extname))
        return hdul
