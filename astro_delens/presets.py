"""Named simulation presets: the image grid, the source-plane grid and the instrument.

A preset fixes everything a model depends on: the model's image grid (pixels
and pixel scale), the source-plane grid on which the source target lives, the
reference PSF of the source target, and the ranges from which PSF, noise and
lens light are drawn. The lens priors of each preset live in
`astro_delens.lensmodel.PRIORS`.

Presets
-------
``seed``
    The original work's conditions: 64 x 64 pixels at 0.08"/pixel, Gaussian PSF
    of FWHM 0.1", no noise, no lens light.
``survey``
    Space-based imaging like HST, Euclid and JWST, resampled onto 96 x 96 pixels
    at 0.1"/pixel (9.6" across, so that the ring of a theta_E = 3" lens sits
    1.8" inside the edge). PSFs are Gaussian, Moffat or obscured Airy patterns
    (plus real PSFs read from files when given) of FWHM 0.07"-0.25"; the peak
    signal-to-noise of the arcs ranges from 5 to 200 (log-uniform); the lens
    galaxy's peak brightness ranges from 0.1 to 20 times that of the arcs, and
    is absent in 10% of the lenses.
``sky``
    The ``survey`` grid and lenses, drawn as the sky shows them and prepared
    as users' images are (`astro_delens.training.sky`): simulated at native
    pixel scales of 0.03"-0.2" and passed through
    `~astro_delens.cutout.prepare_cutout`; lens light of two components of
    different shape and orientation, 0.3-100 times the arcs' peak;
    neighbours, satellites close to the ring and stars; compact sources;
    correlated noise and background residuals; lenses up to 0.5" off the
    cutout centre; cutouts smaller than the model's grid.

The source target
-----------------
The source target is the true source surface brightness on a square
source-plane grid of ``source_npix`` pixels of ``source_pixel_scale`` arcsec
(half the image pixel), centred on the lens centre (offsets in arcsec, x east,
y north, as in `astro_delens.lensmodel`), convolved with a circular Gaussian
reference PSF of FWHM ``source_reference_fwhm``, in the same flux units per
pixel area as the image, scaled to the source-plane pixel area.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

__all__ = ["Preset", "PRESETS", "get_preset", "preset_from_dict"]


@dataclass(frozen=True)
class Preset:
    """A named, documented simulation configuration (see module docstring)."""

    name: str
    npix: int
    pixel_scale: float  # arcsec / pixel of the model's image grid
    source_npix: int
    source_pixel_scale: float  # arcsec / pixel of the source-plane grid
    source_reference_fwhm: float  # arcsec, Gaussian reference PSF of the target
    supersampling: int  # sub-pixel rays per pixel side
    psf_kinds: tuple = ("gaussian",)  # of "gaussian", "moffat", "airy" (+ "file" with psf_files)
    psf_fwhm_range: tuple = (0.1, 0.1)  # arcsec
    noise: bool = False
    snr_range: tuple = (float("inf"), float("inf"))  # peak S/N of the arcs
    lens_light: bool = False
    lens_light_ratio_range: tuple = (0.0, 0.0)  # peak lens light / peak arcs
    lens_light_zero_fraction: float = 0.0  # fraction of lenses with no light
    description: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-serialisable description (stored with datasets and models)."""
        d = asdict(self)
        d["psf_kinds"] = list(self.psf_kinds)
        for key in ("psf_fwhm_range", "snr_range", "lens_light_ratio_range"):
            d[key] = [float(v) for v in d[key]]
        return d

    @property
    def field_of_view(self) -> float:
        """Width of the image grid in arcsec."""
        return self.npix * self.pixel_scale

    @property
    def source_field_of_view(self) -> float:
        """Width of the source-plane grid in arcsec."""
        return self.source_npix * self.source_pixel_scale


PRESETS = {
    "seed": Preset(
        name="seed",
        npix=64,
        pixel_scale=0.08,
        source_npix=64,
        source_pixel_scale=0.04,
        source_reference_fwhm=0.02,
        supersampling=3,
        psf_kinds=("gaussian",),
        psf_fwhm_range=(0.1, 0.1),
        noise=False,
        lens_light=False,
        description="The original work's conditions: 64x64 at 0.08\", Gaussian PSF "
        "FWHM 0.1\", no noise, no lens light.",
    ),
    "survey": Preset(
        name="survey",
        npix=96,
        pixel_scale=0.1,
        source_npix=96,
        source_pixel_scale=0.05,
        source_reference_fwhm=0.025,
        supersampling=2,
        psf_kinds=("gaussian", "moffat", "airy"),
        psf_fwhm_range=(0.07, 0.25),
        noise=True,
        snr_range=(5.0, 200.0),
        lens_light=True,
        lens_light_ratio_range=(0.1, 20.0),
        lens_light_zero_fraction=0.1,
        description="Space-based imaging (HST, Euclid, JWST) on 96x96 pixels at 0.1\": "
        "noise, lens light and PSF drawn over realistic ranges, theta_E 0.5\"-3.0\".",
    ),
}
# the survey's grids and lenses, drawn as the sky shows them (astro_delens.training.sky)
PRESETS["sky"] = replace(
    PRESETS["survey"],
    name="sky",
    psf_fwhm_range=(0.07, 0.6),
    lens_light_ratio_range=(0.3, 100.0),
    lens_light_zero_fraction=0.05,
    description="Lenses as the sky shows them (HST, Euclid, JWST and ground-like "
    "cutouts at native pixel scales of 0.03\"-0.2\", passed through prepare_cutout onto "
    "the survey grid): two-component lens light up to 100x the arcs, neighbours, "
    "satellites and stars, compact sources, correlated noise, background residuals, "
    "lenses up to 0.5\" off centre, cutouts smaller than the grid.",
    extra={"simulator": "sky"},
)


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``.

    Raises
    ------
    ValueError
        If there is no such preset.
    """
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise ValueError(f"preset: unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]


def preset_from_dict(d) -> Preset:
    """Rebuild a `Preset` from `Preset.to_dict` output, as stored in model and dataset files."""
    d = dict(d)
    for key in ("psf_kinds", "psf_fwhm_range", "snr_range", "lens_light_ratio_range"):
        if key in d and isinstance(d[key], list):
            d[key] = tuple(float(v) if isinstance(v, str) and key != "psf_kinds" else v
                           for v in d[key])
    fields = Preset.__dataclass_fields__
    return Preset(**{k: v for k, v in d.items() if k in fields})
