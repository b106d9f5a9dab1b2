"""Warnings of astro_delens.

Every warning the package emits is a subclass of
`astropy.utils.exceptions.AstropyUserWarning`, so that the usual astropy
filters apply. Bad input raises the built-in `ValueError`, `TypeError` or
`OSError` with a message that names the offending argument.

Examples
--------
Turn the out-of-domain warnings into errors:

>>> import warnings
>>> from astro_delens.exceptions import OutOfDomainWarning
>>> with warnings.catch_warnings():
...     warnings.simplefilter("error", OutOfDomainWarning)
...     # code that must not run outside the model's training domain
...     pass
"""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["AstroDelensWarning", "OutOfDomainWarning", "PreprocessingWarning",
           "RefinementWarning"]


class AstroDelensWarning(AstropyUserWarning):
    """Base class of the warnings emitted by astro_delens."""


class OutOfDomainWarning(AstroDelensWarning):
    """The input (or an estimate) lies outside the domain the model was trained on.

    Raised for a pixel scale much coarser than the model's grid, a PSF or a
    signal-to-noise ratio far outside the training ranges of the model's preset,
    a cutout too small to hold the arcs, or an estimate outside the training prior.
    The result is still returned, but it should not be trusted blindly.

    Attributes
    ----------
    code : str
        A short machine-readable tag (``"pixel_scale"``, ``"psf"``, ``"snr"``,
        ``"field"``, ``"prior"``, ``"noise_free"``) also stored in the results' flags.
    """

    def __init__(self, message, code="domain"):
        super().__init__(message)
        self.code = code


class PreprocessingWarning(AstroDelensWarning):
    """A preprocessing step fell back to a less reliable method (e.g. too few sky pixels)."""


class RefinementWarning(AstroDelensWarning):
    """A lenstronomy refinement ended at the edge of its search range.

    The refinement searches a box of ``bounds_nsigma`` network sigmas around the
    network's estimate (within the physical limits of the parameters). A
    parameter that ends on the box's edge was probably stopped there: the
    network's estimate may be far off for this image. The parameters concerned
    are listed in ``RefineResult.settings["at_bounds"]``.
    """
