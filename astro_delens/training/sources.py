"""Procedural source galaxies drawn with GalSim.

The original work lensed 2,418 real COSMOS galaxies, which cannot be downloaded
here. `ProceduralSourceGenerator` draws realistic and diverse morphologies of
star-forming galaxies at z ~ 1-3 instead:

``sersic``
    a single Sersic profile, index 0.5-4;
``bulge_disk``
    a de Vaucouleurs-like bulge plus an exponential disk with their own sizes,
    axis ratios and a slight misalignment;
``clumpy``
    an exponential disk with star-forming knots (`galsim.RandomKnots`, each knot a
    small Gaussian), as seen in rest-frame UV images of z ~ 2 galaxies;
``irregular``
    two to four offset components (Sersic blobs and knots), like mergers and
    irregular galaxies.

Half-light radii are log-uniform in 0.08"-0.5" (typical of galaxies at
z ~ 1-3 in HST imaging); every galaxy is randomly rotated. Profiles have unit
total flux and are centred on the origin; the simulator positions them.

Real galaxies in GalSim's RealGalaxyCatalog format are handled by
`astro_delens.training.real_galaxies`.
"""

from __future__ import annotations

import galsim
import numpy as np

__all__ = ["SOURCE_KINDS", "ProceduralSourceGenerator"]

#: Morphological kinds drawn by `ProceduralSourceGenerator`, with their frequencies.
SOURCE_KINDS = {"sersic": 0.2, "bulge_disk": 0.3, "clumpy": 0.3, "irregular": 0.2}


def _galsim_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(1, 2**31 - 1))


def _random_shape(profile, rng, q_range=(0.3, 1.0)):
    """Give ``profile`` a random axis ratio and orientation."""
    q = rng.uniform(*q_range)
    beta = rng.uniform(0.0, np.pi) * galsim.radians
    return profile.shear(q=q, beta=beta)


def _log_uniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


class ProceduralSourceGenerator:
    """Draw random source galaxies as GalSim profiles.

    Parameters
    ----------
    hlr_range : tuple of float
        Range of half-light radii in arcsec (log-uniform).
    kinds : dict, optional
        ``{kind: probability}``; default `SOURCE_KINDS`.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_delens.training.sources import ProceduralSourceGenerator
    >>> gen = ProceduralSourceGenerator()
    >>> profile, kind = gen.draw(np.random.default_rng(1))
    >>> round(float(profile.flux), 6), kind in ("sersic", "bulge_disk", "clumpy", "irregular")
    (1.0, True)
    """

    def __init__(self, hlr_range=(0.08, 0.5), kinds=None):
        self.hlr_range = tuple(hlr_range)
        kinds = SOURCE_KINDS if kinds is None else kinds
        unknown = set(kinds) - set(SOURCE_KINDS)
        if unknown:
            raise ValueError(f"kinds: unknown source kinds {sorted(unknown)}; expected "
                             f"{list(SOURCE_KINDS)}")
        self._names = list(kinds)
        p = np.array([kinds[k] for k in self._names], dtype=float)
        self._probabilities = p / p.sum()

    def draw(self, rng: np.random.Generator, kind: str | None = None):
        """Draw one galaxy.

        Returns
        -------
        profile : galsim.GSObject
            Unit total flux, centred on the origin.
        kind : str
            Its morphological kind.
        """
        if kind is None:
            kind = self._names[rng.choice(len(self._names), p=self._probabilities)]
        profile = getattr(self, f"_{kind}")(rng)
        profile = profile.rotate(rng.uniform(0, 2 * np.pi) * galsim.radians)
        return profile.withFlux(1.0), kind

    # -- the kinds ------------------------------------------------------------
    def _hlr(self, rng, scale=1.0):
        return scale * _log_uniform(rng, *self.hlr_range)

    def _sersic(self, rng):
        n = rng.uniform(0.5, 4.0)
        return _random_shape(galsim.Sersic(n=n, half_light_radius=self._hlr(rng)), rng)

    def _bulge_disk(self, rng):
        disk_hlr = self._hlr(rng)
        bulge_hlr = disk_hlr * rng.uniform(0.2, 0.6)
        bulge_fraction = rng.uniform(0.05, 0.6)
        beta = rng.uniform(0, np.pi)
        disk = galsim.Exponential(half_light_radius=disk_hlr).shear(
            q=rng.uniform(0.2, 1.0), beta=beta * galsim.radians)
        bulge = galsim.DeVaucouleurs(half_light_radius=bulge_hlr).shear(
            q=rng.uniform(0.6, 1.0), beta=(beta + rng.normal(0, 0.2)) * galsim.radians)
        return galsim.Add([disk.withFlux(1 - bulge_fraction), bulge.withFlux(bulge_fraction)])

    def _knots(self, rng, hlr, flux):
        """Star-forming knots: `galsim.RandomKnots` positions, each a small Gaussian clump.

        GalSim's knots are point sources; giving each the size of a giant
        star-forming clump (sigma 0.015"-0.04") keeps the galaxy analytic, so it
        is drawn in real space without huge FFTs.
        """
        knots = galsim.RandomKnots(
            npoints=int(rng.integers(5, 40)), half_light_radius=hlr, flux=flux,
            rng=galsim.BaseDeviate(_galsim_seed(rng)),
        )
        sigma = rng.uniform(0.015, 0.04)
        clump_flux = flux / len(knots.points)
        return galsim.Add([galsim.Gaussian(sigma=sigma, flux=clump_flux).shift(x, y)
                           for x, y in knots.points])

    def _clumpy(self, rng):
        hlr = self._hlr(rng)
        knot_fraction = rng.uniform(0.2, 0.7)
        disk = _random_shape(galsim.Exponential(half_light_radius=hlr), rng, (0.3, 1.0))
        knots = self._knots(rng, hlr * rng.uniform(0.6, 1.2), knot_fraction)
        return galsim.Add([disk.withFlux(1 - knot_fraction), knots])

    def _irregular(self, rng):
        n_components = int(rng.integers(2, 5))
        separation = self._hlr(rng, 1.0)
        components = []
        for _ in range(n_components):
            if rng.uniform() < 0.3:
                blob = self._knots(rng, self._hlr(rng, 0.6), 1.0)
            else:
                blob = _random_shape(
                    galsim.Sersic(n=rng.uniform(0.5, 2.5),
                                  half_light_radius=self._hlr(rng, 0.6)), rng)
            dx, dy = rng.normal(0.0, separation, 2)
            components.append(blob.withFlux(rng.uniform(0.2, 1.0)).shift(dx, dy))
        return galsim.Add(components)
