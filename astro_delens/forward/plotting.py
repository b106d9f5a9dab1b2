"""Figures of the physics-in-the-loop tools (matplotlib, no pyplot state).

Panels are drawn in arcsec with north up and **east to the left**, as on the
sky: the image's ``x`` axis decreases to the right. Critical curves and
caustics come from lenstronomy's own
`~lenstronomy.LensModel.lens_model_extensions.LensModelExtensions.critical_curve_caustics`.
"""

from __future__ import annotations

import numpy as np

from .. import lensmodel

__all__ = ["critical_curves_and_caustics", "plot_relens", "image_extent", "source_extent"]


def critical_curves_and_caustics(params, window, grid_scale):
    """Critical curves and caustics of a lens, computed by lenstronomy.

    Parameters
    ----------
    params : array-like (8,)
        Lens parameters (`astro_delens.lensmodel` order).
    window : float
        Side (arcsec) of the square, centred on the lens centre, in which the
        curves are searched.
    grid_scale : float
        Spacing (arcsec) of the magnification grid lenstronomy contours.

    Returns
    -------
    ra_crit, dec_crit, ra_caustic, dec_caustic : list of ndarray
        One array per disconnected curve, angular coordinates (x east,
        y north; arcsec), exactly as returned by
        ``LensModelExtensions(LensModel(["EPL", "SHEAR"])).critical_curve_caustics``.
    """
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LensModel.lens_model_extensions import LensModelExtensions

    p = np.asarray(params, dtype=float)
    ext = LensModelExtensions(LensModel(list(lensmodel.LENS_MODEL_LIST)))
    return ext.critical_curve_caustics(
        lensmodel.to_lenstronomy_kwargs(p), compute_window=float(window),
        grid_scale=float(grid_scale), center_x=lensmodel.lens_center(p)[0],
        center_y=lensmodel.lens_center(p)[1],
    )


def image_extent(npix, pixel_scale):
    """``imshow`` extent (left, right, bottom, top) in arcsec, east left."""
    h = 0.5 * npix * pixel_scale
    return (h, -h, -h, h)


def source_extent(source_npix, source_pixel_scale, center):
    """``imshow`` extent of a source-plane grid centred on ``center``, east left."""
    h = 0.5 * source_npix * source_pixel_scale
    return (center[0] + h, center[0] - h, center[1] - h, center[1] + h)


def curve_grid_scale(pixel_scale, window):
    """Default grid spacing of the curve computation: a quarter pixel, at most 400 steps."""
    return max(0.25 * pixel_scale, window / 400.0)


def _zoom_box(source, source_pixel_scale, center, ra_k, dec_k, margin=0.3):
    """(xmin, xmax, ymin, ymax) around the source's light and the caustics, made square."""
    m = source.shape[0]
    xs, ys = [], []
    peak = np.max(np.abs(source)) if source.size else 0.0
    if peak > 0:
        jj, ii = np.nonzero(np.abs(source) > 0.05 * peak)
        c = (m - 1) / 2.0
        xs += list((c - ii) * source_pixel_scale + center[0])
        ys += list((jj - c) * source_pixel_scale + center[1])
    for x, y in zip(ra_k, dec_k):
        xs += list(np.asarray(x))
        ys += list(np.asarray(y))
    if not xs:
        h = 0.5 * m * source_pixel_scale
        return (center[0] - h, center[0] + h, center[1] - h, center[1] + h)
    cx, cy = 0.5 * (min(xs) + max(xs)), 0.5 * (min(ys) + max(ys))
    h = 0.5 * max(max(xs) - min(xs), max(ys) - min(ys)) * (1 + margin) + 2 * source_pixel_scale
    return (cx - h, cx + h, cy - h, cy + h)


def plot_relens(result, fig=None, residual_range=5.0, critical_curves=True):
    """Four panels: data, model, normalised residuals, source (see `RelensResult.plot`).

    The panels' axes carry the labels ``"data"``, ``"model"``, ``"residuals"``
    and ``"source"``; critical curves are lines with gid ``"critical_curve"``,
    caustics lines with gid ``"caustic"``.
    """
    from matplotlib.figure import Figure

    if fig is None:
        fig = Figure(figsize=(17, 4.2), layout="constrained")
    axes = fig.subplots(1, 4)
    for ax, label in zip(axes, ("data", "model", "residuals", "source")):
        ax.set_label(label)  # lets callers and tests find the panels
    n = result.image.shape[0]
    d = result.pixel_scale
    ext = image_extent(n, d)
    shown = result.image[result.used]
    lo, hi = np.percentile(shown, [1.0, 99.5]) if shown.size else (0.0, 1.0)
    if not hi > lo:
        hi = lo + 1.0
    kw = dict(origin="lower", extent=ext, vmin=lo, vmax=hi, cmap="magma")
    for ax, arr, title in ((axes[0], result.image, "data"),
                           (axes[1], result.model_image, "model (lens light + re-lensed source)")):
        im = ax.imshow(arr, **kw)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.85)
    r = np.where(result.used, result.residuals, np.nan)
    im = axes[2].imshow(r, origin="lower", extent=ext, cmap="RdBu_r",
                        vmin=-residual_range, vmax=residual_range)
    status = "FLAGGED" if result.flag else "ok"
    axes[2].set_title(f"residuals / noise: chi2_red {result.reduced_chi2:.2f} ({status})")
    fig.colorbar(im, ax=axes[2], shrink=0.85)

    center = lensmodel.lens_center(result.params)
    m = result.source.shape[0]
    sext = source_extent(m, result.source_pixel_scale, center)
    im = axes[3].imshow(result.source, origin="lower", extent=sext, cmap="magma")
    axes[3].set_title(f"source (x {result.source_amplitude:.3g}) and caustics")
    fig.colorbar(im, ax=axes[3], shrink=0.85)

    if critical_curves:
        window = n * d
        ra_c, dec_c, ra_k, dec_k = critical_curves_and_caustics(
            result.params, window, curve_grid_scale(d, window))
        for ax in axes[:3]:
            for k, (x, y) in enumerate(zip(ra_c, dec_c)):
                ax.plot(x, y, color="cyan", lw=0.8, gid="critical_curve",
                        label="critical curve" if k == 0 else None)
            ax.set_xlim(ext[0], ext[1])
            ax.set_ylim(ext[2], ext[3])
        for k, (x, y) in enumerate(zip(ra_k, dec_k)):
            axes[3].plot(x, y, color="cyan", lw=0.8, gid="caustic",
                         label="caustic" if k == 0 else None)
    else:
        ra_k, dec_k = [], []
    zoom = _zoom_box(result.source, result.source_pixel_scale, center, ra_k, dec_k)
    axes[3].set_xlim(min(zoom[1], sext[0]), max(zoom[0], sext[1]))  # east (larger x) left
    axes[3].set_ylim(max(zoom[2], sext[2]), min(zoom[3], sext[3]))
    for ax in axes:
        ax.set_xlabel("x (east) [arcsec]")
        ax.set_ylabel("y (north) [arcsec]")
    fig.suptitle(f"re-lensing check; PSF: {result.psf_used}", fontsize=9)
    return fig
