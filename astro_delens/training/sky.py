"""Lenses as the sky shows them, prepared as users' images are (the ``sky`` preset).

The ``survey`` simulator draws clean lenses straight onto the model's grid. Real
cutouts differ: they come at their instrument's pixel scale, the lens galaxy
has a bulge and an envelope that can outshine the arcs a hundredfold, other
galaxies and stars share the field (some close to the ring), the noise of
drizzled images is correlated, the sky is imperfectly subtracted and the lens
is not exactly at the cutout centre. `SkySimulator` draws all of these at a
native pixel scale and then passes the image through the very
`~astro_delens.cutout.prepare_cutout` that users' images go through
(resampling, background, noise estimate, contaminant masks), so that a network
trained on it never sees an input that inference cannot produce.

A sample is made in these steps, each from the sample's own random streams:

1. lens parameters from the ``sky`` priors (the ``survey`` ones, with the
   centre up to 0.5" off the cutout centre) and a procedural source, in a
   quarter of the lenses with a compact, nearly point-like core (a quasar or a
   compact star-forming knot);
2. the instrument: a native pixel scale (`NATIVE_SCALES`), a PSF of the
   ``gaussian``, ``moffat``, ``airy`` (or, with ``psf_files``, ``file``) kind
   whose FWHM follows the pixel scale, and a cutout width, smaller than the
   model's field of view in a fifth of the samples;
3. the arcs, lensed and PSF-convolved at the native scale (and, as the
   noise-free truth, on the model's grid);
4. lens light of two elliptical Sersic components (bulge and envelope) with
   different axis ratios and a twist of their position angles, its peak 0.3-100
   times the arcs' peak;
5. field objects: neighbours anywhere in the cutout, a satellite close to the
   ring in a third of the lenses, and stars;
6. sky and Poisson noise, correlated between neighbouring pixels in half of the
   samples (as drizzling does), plus a background offset and gradient;
7. `~astro_delens.cutout.prepare_cutout`, given the noise map in half of the
   samples (the other half estimate it, as users without one do).

The returned ``image`` and ``noise_map`` are the prepared cutout's; the noise
map is NaN where the cutout is masked, which the networks' normalisation reads
as masked. ``arcs``, ``lens_light``, ``source`` and ``psf`` are on the model's
grids, noise-free, as for the other presets.
"""

from __future__ import annotations

import numpy as np

from .. import lensmodel
from .instrument import add_noise, draw_psf, psf_stamp_size
from .simulate import (
    LensSimulator,
    _draw_on_grid,
    _streams,
    lensmodel_phi_q,
    render_arcs,
    render_lens_light,
    source_target,
)

__all__ = ["SkySimulator", "NATIVE_SCALES"]

#: Native pixel scales (arcsec) and how often each is drawn: JWST NIRCam short
#: wavelengths, HST ACS / drizzled WFC3, WFC3/IR, Euclid VIS, ground-like.
NATIVE_SCALES = {0.03: 0.15, 0.05: 0.25, 0.08: 0.2, 0.1: 0.25, 0.2: 0.15}
#: PSF FWHM in native pixels (log-uniform range) for each native scale.
PSF_FWHM_PIXELS = {0.03: (1.6, 3.0), 0.05: (1.6, 2.6), 0.08: (1.6, 2.4), 0.1: (1.4, 2.2),
                   0.2: (2.5, 3.0)}


def _log_uniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _sersic(x, y, r_eff, n, q, phi, amp=1.0):
    from lenstronomy.Util.param_util import phi_q2_ellipticity

    e1, e2 = phi_q2_ellipticity(phi, q)
    return {"amp": float(amp), "R_sersic": float(r_eff), "n_sersic": float(n),
            "e1": float(e1), "e2": float(e2), "center_x": float(x), "center_y": float(y)}


def _add_stamp(image, stamp, x, y, pixel_scale):
    """Add ``stamp`` (odd size, centred) at angular position ``(x, y)`` of ``image``."""
    from scipy.ndimage import shift

    n = image.shape[0]
    col, row = lensmodel.angle_to_pixel(x, y, n, pixel_scale)
    ic, ir = int(np.round(col)), int(np.round(row))
    moved = shift(stamp, (row - ir, col - ic), order=3, mode="constant")
    h = stamp.shape[0] // 2
    r0, r1, c0, c1 = ir - h, ir + h + 1, ic - h, ic + h + 1
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r1, n), min(c1, n)
    if rr0 >= rr1 or cc0 >= cc1:
        return
    image[rr0:rr1, cc0:cc1] += moved[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0]


class SkySimulator(LensSimulator):
    """Simulate lenses of the ``sky`` preset (see the module docstring).

    Parameters
    ----------
    preset : str or `~astro_delens.presets.Preset`
        ``"sky"`` (or a preset with the same grid and ``extra["simulator"] == "sky"``).
    source_catalog, psf_files
        As for `~astro_delens.training.simulate.LensSimulator`.

    Attributes
    ----------
    field_objects : bool
        Draw neighbours, satellites and stars (True); False leaves them out of
        the image, the random draws unchanged, to measure what they cost.

    Examples
    --------
    >>> from astro_delens.training.sky import SkySimulator
    >>> sample = SkySimulator("sky").simulate(7)                  # doctest: +SKIP
    >>> sample["image"].shape, sample["meta"]["pixel_scale"]      # doctest: +SKIP
    ((96, 96), 0.1)
    """

    field_objects = True

    # -- instrument -------------------------------------------------------------
    def _instrument(self, rng):
        scales = np.array(list(NATIVE_SCALES))
        weights = np.array(list(NATIVE_SCALES.values()))
        scale = float(rng.choice(scales, p=weights / weights.sum()))
        fwhm = scale * _log_uniform(rng, *PSF_FWHM_PIXELS[scale])
        kinds = list(self.preset.psf_kinds)
        if self.psf_bank is not None:
            kinds = kinds + ["file"]
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "file":
            # a real PSF has its own width: use it at the scales it was made for
            scale = float(rng.choice([0.03, 0.05]))
        psf_seed = int(rng.integers(2**31))
        fov = self.preset.field_of_view
        if rng.uniform() < 0.2:
            width = rng.uniform(0.5, 1.0) * fov
        else:
            width = rng.uniform(1.0, 1.4) * fov
        npix = int(np.ceil(width / scale)) | 1
        return scale, fwhm, kind, psf_seed, npix

    def _draw_psf(self, kind, fwhm, scale, seed):
        npix = psf_stamp_size(max(fwhm, 3 * scale) * 2.0, scale)
        return draw_psf(kind, fwhm, scale, npix, np.random.default_rng(seed), self.psf_bank)

    # -- light ------------------------------------------------------------------
    def _lens_light(self, params, rng):
        """Bulge and envelope keywords (amp 1) and the envelope's share of the flux."""
        theta_e = params[lensmodel.INDEX["theta_E"]]
        phi, q = lensmodel_phi_q(params[lensmodel.INDEX["e1"]], params[lensmodel.INDEX["e2"]])
        cx, cy = (c + rng.normal(0, 0.01) for c in lensmodel.lens_center(params))
        q_bulge = float(np.clip(q * rng.uniform(0.8, 1.2), 0.4, 1.0))
        phi_bulge = phi + rng.normal(0.0, np.radians(10.0))
        bulge = _sersic(cx, cy, theta_e * _log_uniform(rng, 0.15, 0.6),
                        rng.uniform(3.0, 6.0), q_bulge, phi_bulge)
        q_env = float(np.clip(rng.uniform(0.4, 1.0), 0.35, 1.0))
        phi_env = phi_bulge + rng.normal(0.0, np.radians(25.0))  # isophote twist
        envelope = _sersic(cx, cy, theta_e * _log_uniform(rng, 0.8, 3.0),
                           rng.uniform(1.0, 4.0), q_env, phi_env)
        return bulge, envelope, float(rng.uniform(0.3, 0.8))

    def _field_objects(self, params, rng, width):
        """Neighbours and satellites (Sersic keywords with a peak ratio) and stars."""
        theta_e = params[lensmodel.INDEX["theta_E"]]
        half = width / 2.0
        galaxies = []
        for _ in range(int(rng.poisson(2.0))):
            x, y = rng.uniform(-half, half, 2)
            galaxies.append((_sersic(x, y, _log_uniform(rng, 0.08, 0.8),
                                     rng.uniform(0.5, 4.0), rng.uniform(0.3, 1.0),
                                     rng.uniform(0, np.pi)),
                             _log_uniform(rng, 0.2, 30.0)))
        if rng.uniform() < 0.35:  # a satellite or interloper close to the ring
            r = theta_e * rng.uniform(0.6, 1.8)
            a = rng.uniform(0, 2 * np.pi)
            cx, cy = lensmodel.lens_center(params)
            galaxies.append((_sersic(cx + r * np.cos(a), cy + r * np.sin(a),
                                     _log_uniform(rng, 0.05, 0.4), rng.uniform(0.5, 4.0),
                                     rng.uniform(0.4, 1.0), rng.uniform(0, np.pi)),
                             _log_uniform(rng, 0.2, 5.0)))
        stars = []
        for _ in range(int(rng.poisson(0.5))):
            x, y = rng.uniform(-half, half, 2)
            stars.append((x, y, _log_uniform(rng, 1.0, 100.0)))
        return galaxies, stars

    def _source(self, seed, rng, catalog_index=None):
        """The source target (flux per source pixel) with, sometimes, a compact core."""
        import galsim

        profile, kind, source_id, offset = self.source_for(seed, catalog_index)
        if rng.uniform() < 0.25:
            # a quasar or a compact knot: a nearly point-like core of comparable flux
            core = galsim.Gaussian(fwhm=rng.uniform(0.005, 0.03)).withFlux(
                profile.flux * _log_uniform(rng, 0.2, 2.0))
            profile = galsim.Add(profile, core)
            kind = f"{kind}+compact"
        p = self.preset
        hires = _draw_on_grid(profile, self.hires_npix, self.hires_scale, offset)
        return source_target(hires, self.hires_scale, p.source_reference_fwhm), kind, \
            source_id, offset

    # -- the sample -------------------------------------------------------------
    def simulate(self, seed, catalog_index=None) -> dict:
        """Simulate the lens of ``seed`` and prepare it as a user's image (see module docstring)."""
        import warnings

        from ..cutout import prepare_cutout

        native = self.simulate_native(seed, catalog_index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = prepare_cutout(native["native_image"], self.preset,
                                      pixel_scale=native["meta"]["pixel_scale"],
                                      noise=native["native_noise_map"]
                                      if native["meta"]["noise_given"] else None, warn=False)
        sample = {k: v for k, v in native.items() if not k.startswith("native_")}
        sample["image"] = np.asarray(prepared.image, dtype=np.float32)
        sample["noise_map"] = np.where(prepared.mask, np.nan,
                                       prepared.noise_map).astype(np.float32)
        return sample

    def simulate_native(self, seed, catalog_index=None) -> dict:
        """The lens of ``seed`` at its native pixel scale, before `prepare_cutout`.

        Returns the keys of `simulate` but ``image`` and ``noise_map``, and
        ``native_image`` and ``native_noise_map`` (sky subtracted imperfectly,
        as observed); ``meta["pixel_scale"]`` is the native scale and
        ``meta["noise_given"]`` says whether `simulate` passes the noise map.
        """
        p = self.preset
        lens_rng, _, instrument_rng, noise_rng = _streams(seed)
        entropy = list(np.atleast_1d(seed).astype(np.int64)) + [7]
        field_rng = np.random.default_rng(entropy)
        params = lensmodel.sample_parameters(p.name, lens_rng)
        target, source_kind, source_id, offset = self._source(seed, field_rng, catalog_index)

        scale, fwhm, psf_kind, psf_seed, n_native = self._instrument(instrument_rng)
        psf_native, measured = self._draw_psf(psf_kind, fwhm, scale, psf_seed)
        psf_model = draw_psf(psf_kind, fwhm, p.pixel_scale, self.psf_npix,
                             np.random.default_rng(psf_seed), self.psf_bank)[0]
        ss_native = 1 if scale < 0.07 else p.supersampling
        sb = target / p.source_pixel_scale**2
        arcs_model = render_arcs(params, sb, p.source_pixel_scale, p.npix, p.pixel_scale,
                                 psf_model, p.supersampling)
        peak = float(arcs_model.max())
        if not peak > 0:
            raise RuntimeError(f"seed {seed!r}: the lensed source fell outside the image")
        arcs_model, target = arcs_model / peak, target / peak
        arcs = render_arcs(params, sb / peak, p.source_pixel_scale, n_native, scale,
                           psf_native, ss_native)
        arcs_peak = float(arcs.max())
        if not arcs_peak > 0:
            raise RuntimeError(f"seed {seed!r}: the arcs fell outside the cutout")

        light_model = np.zeros_like(arcs_model)
        light = np.zeros_like(arcs)
        ratio = 0.0
        if instrument_rng.uniform() >= p.lens_light_zero_fraction:
            bulge, envelope, share = self._lens_light(params, instrument_rng)
            b = render_lens_light(bulge, p.npix, p.pixel_scale, psf_model, p.supersampling)
            e = render_lens_light(envelope, p.npix, p.pixel_scale, psf_model, p.supersampling)
            bulge["amp"], envelope["amp"] = (1 - share) / b.sum(), share / e.sum()
            total = bulge["amp"] * b + envelope["amp"] * e
            ratio = _log_uniform(instrument_rng, *p.lens_light_ratio_range)
            k = ratio / total.max()
            bulge["amp"] *= k
            envelope["amp"] *= k
            light_model = k * total
            light = render_lens_light([bulge, envelope], n_native, scale, psf_native, ss_native)

        width = n_native * scale
        galaxies, stars = self._field_objects(params, field_rng, width)  # drawn even when off
        field = np.zeros_like(arcs)
        if self.field_objects:
            for kwargs, peak_ratio in galaxies:
                g = render_lens_light(kwargs, n_native, scale, psf_native, ss_native)
                if g.max() > 0:
                    field += g * (peak_ratio * arcs_peak / g.max())
            for x, y, peak_ratio in stars:
                _add_stamp(field, psf_native * (peak_ratio * arcs_peak / psf_native.max()),
                           x, y, scale)
        model = arcs + light + field
        low, high = p.snr_range
        snr = _log_uniform(noise_rng, low, high)
        sky = _log_uniform(noise_rng, 10.0, 1000.0)
        image, noise_map = add_noise(model, arcs_peak, snr, sky, noise_rng)
        image = image.astype(float)
        if noise_rng.uniform() < 0.5:
            # drizzle-like correlation: the noise convolved with a small kernel of unit
            # quadratic sum, which keeps each pixel's variance
            from scipy.ndimage import convolve

            a = noise_rng.uniform(0.1, 0.4)
            kernel = np.array([[a * a, a, a * a], [a, 1.0, a], [a * a, a, a * a]])
            kernel /= np.sqrt(np.sum(kernel**2))
            image = model + convolve(image - model, kernel, mode="reflect")
        sky_rms = float(np.median(noise_map))
        yy, xx = (np.mgrid[:n_native, :n_native] - (n_native - 1) / 2.0) / n_native
        gx, gy = noise_rng.normal(0.0, 0.5 * sky_rms, 2)
        image += noise_rng.normal(0.0, 2.0 * sky_rms) + gx * xx + gy * yy

        give_noise = noise_rng.uniform() < 0.5
        return {
            "native_image": image.astype(np.float32),
            "native_noise_map": noise_map.astype(np.float32),
            "native_field": field.astype(np.float32),
            "native_arcs": arcs.astype(np.float32),
            "arcs": arcs_model.astype(np.float32),
            "lens_light": light_model.astype(np.float32),
            "source": target.astype(np.float32),
            "params": params,
            "psf": psf_model,
            "meta": {
                "pixel_scale": scale, "psf_kind": psf_kind, "psf_fwhm": measured,
                "snr": snr, "lens_light_ratio": ratio, "source_kind": source_kind,
                "source_id": source_id, "source_x": offset[0], "source_y": offset[1],
                "n_field_galaxies": len(galaxies), "n_stars": len(stars),
                "cutout_arcsec": width, "noise_given": bool(give_noise),
            },
        }
