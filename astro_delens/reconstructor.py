"""`SourceReconstructor`: the unlensed source of a strong lens, as NDData with a source-plane WCS.

The source network of `astro_delens.nn.registry` predicts the source surface
brightness on the preset's source-plane grid (``source_npix`` pixels of
``source_pixel_scale``), centred on the lens centre. The lens centre is taken
from a parameter network of the same model family (or given by the caller), so
that the returned `~astropy.nddata.CCDData` carries a WCS whose reference pixel
is the lens centre: a celestial TAN WCS when the input had one, else linear
offsets in arcsec from the cutout centre (x east, y north).

Examples
--------
>>> from astro_delens import SourceReconstructor
>>> from astro_delens.data import example_path
>>> source = SourceReconstructor().reconstruct(example_path())  # the shipped "sky" models
>>> source.shape, source.wcs.wcs.ctype[0], source.meta["ADKIND"]
((96, 96), 'RA---TAN', 'reconstructor')
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

import astropy.units as u
from astropy.coordinates import SkyCoord

from . import batch, lensmodel
from .cutout import PREPARE_KEYWORDS, prepare_cutout
from .estimator import LensParameterEstimator
from .exceptions import AstroDelensWarning
from .front import NetworkFront, load_network
from .nn.registry import default_model
from .results import LensEstimate
from .source_result import make_source, run_inversion, run_relens_check

#: Where `SourceReconstructor` takes the source from.
SOURCE_METHODS = ("network", "inversion")

__all__ = ["SourceReconstructor"]


def _companion_estimator(model, verify, symmetries):
    """The parameter network of the same family as ``model`` (None when there is none)."""
    from .nn import registry

    candidates = []
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        candidates.append(text)
        path = Path(text)
        if path.name == "reconstructor":
            candidates.append(str(path.parent))
    elif isinstance(model, registry.LoadedReconstructor):
        if model.path.name == "reconstructor":
            candidates.append(str(model.path.parent))
    for c in candidates:
        try:
            return LensParameterEstimator(c, verify=verify, symmetries=symmetries)
        except (registry.ModelNotFoundError, ValueError):
            continue
    return None


class SourceReconstructor(NetworkFront):
    """Reconstruct the unlensed source of a strong lens.

    Parameters
    ----------
    model : str, path-like or None
        A shipped model family (``"sky"``, ``"survey"`` or ``"seed"``), a family
        directory or a reconstructor model directory; None, the default:
        ``astro_delens.config.conf.default_model`` (``"sky"`` unless configured).
    estimator : "auto", `~astro_delens.LensParameterEstimator` or None
        Where the lens centre comes from: ``"auto"`` loads the parameter network
        of the same family; None uses the cutout centre (unless ``lens_center``
        is given to `reconstruct`).
    verify : bool
        Check the SHA-256 checksums of the model files.
    batch_size : int or None
        Images per network call; None: the ``reconstructor_batch_size``
        setting (64 unless configured, see `astro_delens.config`).
    symmetries : {8, 4, 1} or None
        Average the network's sources (and the companion estimator's answers)
        over this many turns and flips of the image (see
        `astro_delens.nn.registry.LoadedReconstructor.predict`); None: the
        ``symmetries`` setting (8 unless configured).
    method : {"network", "inversion"}
        Where the source comes from. ``"network"`` (the default, fast): the
        source network (U-Net). ``"inversion"``: a regularised pixelated
        source solved for at the estimated lens together with the lens light
        (`astro_delens.forward.invert_pixelated`, 5-15 CPU seconds per image);
        it explains the data as well as that lens allows, and its check is
        its own fit. It needs a lens estimate (an estimator, or
        ``lens_center`` given as a `~astro_delens.results.LensEstimate`).

    Examples
    --------
    >>> rec = SourceReconstructor()                                  # doctest: +SKIP
    >>> source = rec.reconstruct("lens.fits", hdu="SCI")             # doctest: +SKIP
    >>> source.write("source.fits")                                  # doctest: +SKIP
    """

    def __init__(self, model=None, *, estimator="auto", verify=True, batch_size=None,
                 symmetries=None, method="network"):
        if method not in SOURCE_METHODS:
            raise ValueError(f"method: expected one of {SOURCE_METHODS}, got {method!r}")
        self.method = method
        model = default_model() if model is None else model
        self._model = load_network(model, "reconstructor", verify)
        self._set_symmetries(symmetries)
        if isinstance(estimator, str) and estimator == "auto":
            estimator = _companion_estimator(model, verify, self.symmetries)
        elif estimator is not None and not isinstance(estimator, LensParameterEstimator):
            raise TypeError("estimator: expected 'auto', a LensParameterEstimator or None, "
                            f"got {type(estimator).__name__}")
        self.estimator = estimator
        self._set_batch_size(batch_size, "reconstructor_batch_size")

    def __repr__(self):
        p = self.preset
        est = self.estimator._model.name if self.estimator is not None else None
        return (f"<SourceReconstructor model={self._model.name!r} (source {p.source_npix}x"
                f"{p.source_npix} at {p.source_pixel_scale}\"/pix), estimator={est!r}, "
                f"method={self.method!r}>")

    def _same_grid(self, other):
        a, b = self.preset, other.preset
        return a.npix == b.npix and a.pixel_scale == b.pixel_scale

    # -- steps -------------------------------------------------------------
    def prepare(self, data, **kwargs):
        """The `~astro_delens.cutout.PreparedCutout` that `reconstruct` feeds the network."""
        batch.check_keywords(kwargs, PREPARE_KEYWORDS)
        return prepare_cutout(data, self.preset, **kwargs)

    def _lens_estimates(self, prepared, data_and_kwargs):
        """The companion estimator's `LensEstimate` for each prepared cutout (None without one)."""
        if self.estimator is None:
            return None
        if self._same_grid(self.estimator):
            est_prepared = prepared
        else:
            est_prepared = [self.estimator.prepare(d, **kw) for d, kw in data_and_kwargs]
        with warnings.catch_warnings():
            # the estimate's own domain warnings were given by the prepared cutouts
            warnings.simplefilter("ignore", AstroDelensWarning)
            return self.estimator.predict_prepared(est_prepared)

    def _lens_centers(self, prepared, data_and_kwargs, lens_center, estimates=None):
        """``[(x, y), description]`` offsets of the lens centre for each prepared cutout.

        ``estimates`` (from `_lens_estimates`) saves running the estimator again.
        """
        if lens_center is not None:
            return [self._parse_center(lens_center, p) for p in prepared]
        if estimates is None:
            estimates = self._lens_estimates(prepared, data_and_kwargs)
        if estimates is None:
            return [((0.0, 0.0), "cutout centre (no estimator)") for _ in prepared]
        name = self.estimator.model_info["name"]
        return [(lensmodel.lens_center(e.mean), f"estimator {name}") for e in estimates]

    @staticmethod
    def _parse_center(lens_center, prepared):
        if isinstance(lens_center, LensEstimate):
            return lensmodel.lens_center(lens_center.mean), "given estimate"
        if isinstance(lens_center, SkyCoord):
            if prepared.center is None:
                raise ValueError("lens_center: a SkyCoord needs data with a celestial WCS; "
                                 "give (x, y) offsets in arcsec instead")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                i, j = prepared.wcs.world_to_pixel(lens_center)
            n, d = prepared.image.shape[0], prepared.pixel_scale
            x, y = lensmodel.pixel_to_angle(i, j, n, d)
            return (float(x), float(y)), "given SkyCoord"
        try:
            q = u.Quantity(lens_center, u.arcsec)
        except (TypeError, ValueError, u.UnitsError):
            raise TypeError("lens_center: expected a SkyCoord, a LensEstimate or (x, y) "
                            "offsets east and north of the cutout centre (arcsec)") from None
        if q.shape != (2,) or not np.all(np.isfinite(q.value)):
            raise ValueError(f"lens_center: expected two finite offsets, got {lens_center!r}")
        return (float(q[0].value), float(q[1].value)), "given offsets"

    def reconstruct_prepared(self, prepared, lens_centers=None, estimates=None,
                             check=False, check_options=None) -> list:
        """Sources for a sequence of prepared cutouts (see `reconstruct`).

        Parameters
        ----------
        prepared : sequence of `~astro_delens.cutout.PreparedCutout`
        lens_centers : list of ((x, y), str), optional
            From `_lens_centers` (default: the cutout centres).
        estimates : list of `~astro_delens.results.LensEstimate`, optional
            The lens estimates; they are attached to the sources and used by the check.
        check : bool
            Run the re-lensing check (needs ``estimates``).
        check_options : dict, optional
            Keywords of `astro_delens.forward.relens_check` (method ``"network"``) or
            of `astro_delens.source_result.run_inversion` (method ``"inversion"``).
        """
        prepared = list(prepared)
        if not prepared:
            return []
        if lens_centers is None:
            lens_centers = [((0.0, 0.0), "cutout centre")] * len(prepared)
        if estimates is None:
            estimates = [None] * len(prepared)
        if self.method == "inversion":
            return [self._inverted_source(p, c, e, check, check_options)
                    for p, c, e in zip(prepared, lens_centers, estimates)]
        images = np.stack([p.image for p in prepared])
        noises = np.stack([p.noise_map for p in prepared])
        masks = np.stack([p.mask for p in prepared])
        sources = self._model.predict(images, noises, masks, batch_size=self.batch_size,
                                      symmetries=self.symmetries)
        cards = {"ADSRCMTH": ("network", "source: the source network")}
        return [make_source(src, p, self.model_info, center, how,
                            {**self._estimator_cards(how), **cards}, lens=estimate,
                            check=self._network_check(src, p, estimate, check_options)
                            if check else None)
                for src, p, (center, how), estimate
                in zip(sources, prepared, lens_centers, estimates)]

    @staticmethod
    def _network_check(source, prepared, estimate, options, stacklevel=5):
        """The re-lensing check of a network's source (None, with a warning, when it cannot run)."""
        if estimate is None:
            warnings.warn(AstroDelensWarning(
                f"{prepared.label}: re-lensing check skipped: it needs a lens estimate "
                "(an estimator, or lens_center given as a LensEstimate)"), stacklevel=stacklevel)
            return None
        if not np.any(source):
            warnings.warn(AstroDelensWarning(
                f"{prepared.label}: re-lensing check skipped: the reconstructed source is "
                "empty"), stacklevel=stacklevel)
            return None
        return run_relens_check(source, prepared, estimate.mean, **(options or {}))

    def _inverted_source(self, prepared, lens_center, estimate, check, check_options):
        """The pixelated inversion's source at ``estimate``, with its fit as the check."""
        center, how = lens_center
        if estimate is None:
            raise ValueError(f"{prepared.label}: method='inversion' needs a lens estimate: an "
                             "estimator, or lens_center given as a LensEstimate")
        inversion, check_result = run_inversion(prepared, estimate.mean,
                                                **(check_options or {}))
        cards = self._estimator_cards(how)
        cards["ADSRCMTH"] = ("inversion", "source: regularised pixelated inversion")
        cards["ADREGLAM"] = (float(inversion.regularization), "inversion regularisation")
        cards["ADLOGZ"] = (float(inversion.log_evidence), "inversion ln evidence")
        return make_source(inversion.source, prepared, self.model_info, center, how, cards,
                           lens=estimate, check=check_result if check else None)

    def _estimator_cards(self, how):
        """Header cards naming the estimator that gave the lens centre (if it did)."""
        extra = {}
        if self.estimator is not None and how.startswith("estimator"):
            est = self.estimator.model_info
            extra["ADESTMOD"] = (str(est["name"]), "estimator giving the lens centre")
            sha = est["sha256"].get("model.weights.h5")
            if sha:
                extra["ADESTSHA"] = (sha, "")
        return extra

    def attach_check(self, source, **options):
        """The source with its re-lensing check (a new object; ``source`` is left as it is).

        Parameters
        ----------
        source : `~astro_delens.source_result.ReconstructedSource`
            From this class (it knows its prepared cutout and lens estimate).
        **options
            Keywords of `astro_delens.forward.relens_check`.

        Returns
        -------
        `~astro_delens.source_result.ReconstructedSource`
            ``source`` itself when the check cannot run (with a warning).

        Warns
        -----
        `~astro_delens.exceptions.AstroDelensWarning`
            The check cannot run: no lens estimate, or an empty source.
        """
        check = self._network_check(np.asarray(source.data), source.prepared, source.lens,
                                    options, stacklevel=3)
        return source if check is None else source.with_check(check)

    # -- public ------------------------------------------------------------
    def reconstruct(self, data, *, pixel_scale=None, position=None, size=None, noise=None,
                    psf=None, mask=None, hdu=None, background_subtracted=False,
                    mask_contaminants=True, lens_center=None, check=True,
                    check_options=None):
        """Reconstruct the source of one image, and check it against the data.

        Parameters
        ----------
        data, pixel_scale, position, size, noise, psf, mask, hdu, background_subtracted, \
mask_contaminants
            As `astro_delens.LensParameterEstimator.predict`.
        lens_center : SkyCoord, LensEstimate or (x, y) Quantity, optional
            The lens centre on which the source grid is centred (default: from
            the estimator; offsets are east and north of the cutout centre).
        check : bool
            Re-lens the source with the estimated lens (lenstronomy; lens light
            solved linearly; the input's PSF, or an assumed Gaussian stated in
            ``check.psf_used``) and compare with the data (about half a second
            per image). Needs a lens estimate: from the estimator, or
            ``lens_center`` given as a `~astro_delens.results.LensEstimate`.
        check_options : dict, optional
            Keywords of `astro_delens.forward.relens_check` (e.g. thresholds;
            method ``"network"``) or of `astro_delens.source_result.run_inversion`
            (method ``"inversion"``).

        Returns
        -------
        `~astro_delens.source_result.ReconstructedSource`
            A `~astropy.nddata.CCDData`: the source (flux per source pixel, in
            the input's unit), north up and east left, with the source-plane WCS
            and the provenance (model, version, SHA-256, preprocessing) in
            ``meta``. ``lens`` is the lens estimate; with the check,
            ``reduced_chi2``, ``flag``, ``model_image``, ``residuals`` and
            ``plot()`` give its result, and ``write`` stores its images as FITS
            extensions.

        Warns
        -----
        `~astro_delens.exceptions.AstroDelensWarning`
            When the check cannot run (no lens estimate, empty source).
        """
        kwargs = dict(pixel_scale=pixel_scale, position=position, size=size, noise=noise,
                      psf=psf, mask=mask, hdu=hdu, background_subtracted=background_subtracted,
                      mask_contaminants=mask_contaminants)
        prepared = prepare_cutout(data, self.preset, **kwargs)
        estimates = None
        with warnings.catch_warnings():
            if self.estimator is not None and not self._same_grid(self.estimator):
                warnings.simplefilter("ignore", AstroDelensWarning)
            if isinstance(lens_center, LensEstimate):
                estimates = [lens_center]
            elif lens_center is None:
                estimates = self._lens_estimates([prepared], [(data, kwargs)])
            centers = self._lens_centers([prepared], [(data, kwargs)], lens_center, estimates)
        return self.reconstruct_prepared([prepared], centers, estimates, check=check,
                                         check_options=check_options)[0]

    def reconstruct_many(self, inputs, *, on_error="raise", progress=None, check=True,
                         check_options=None, **kwargs) -> list:
        """Reconstruct many sources (in chunks through the networks; see `iter_reconstruct`).

        Parameters
        ----------
        inputs : iterable
            Inputs of `reconstruct`, or pairs ``(data, {keyword: value})``.
        on_error : {"raise", "warn"}
            With ``"warn"`` a failing input gives a warning and None in the output.
        progress : bool or None
            Show a progress bar over the inputs; None: the ``progress`` setting
            (`astro_delens.config`; only on a terminal unless configured).
        check, check_options
            As `reconstruct` (the check costs about half a second per image;
            ``check=False`` for speed).
        **kwargs
            Keywords of `reconstruct` (except ``lens_center``) for every input.

        Returns
        -------
        list of `~astro_delens.source_result.ReconstructedSource` (or None for failed inputs)
        """
        return [o.result for o in batch.warn_failures(on_error, lambda mode: self.iter_reconstruct(
            inputs, progress=progress, check=check, check_options=check_options, on_error=mode,
            **kwargs))]

    def iter_reconstruct(self, inputs, *, names=None, on_error="raise", progress=None,
                         check=True, check_options=None, context=None, **kwargs):
        """Reconstruct many sources in chunks, yielding one `~astro_delens.batch.Outcome` per input.

        The streaming form of `reconstruct_many` (see `astro_delens.batch`).

        Parameters
        ----------
        inputs, progress, check, check_options, **kwargs
            As `reconstruct_many`.
        names : sequence of str, optional
            Names of the inputs (default: file names, or type and position).
        on_error : {"raise", "skip"}
            A failing input raises, or gives an outcome whose ``error`` is set.
        context : callable, optional
            See `astro_delens.batch.run`.

        Yields
        ------
        `~astro_delens.batch.Outcome`
            ``result`` is a `~astro_delens.source_result.ReconstructedSource`, in input order.
        """
        items = batch.iter_items(inputs, names, PREPARE_KEYWORDS, **kwargs)
        total = len(inputs) if hasattr(inputs, "__len__") else None

        def process(prepared, chunk):
            pairs = [(item.data, item.kwargs) for item in chunk]
            estimates = self._lens_estimates(prepared, pairs)
            centers = self._lens_centers(prepared, pairs, None, estimates)
            return self.reconstruct_prepared(prepared, centers, estimates, check=check,
                                             check_options=check_options)

        yield from batch.run(items, self._prepare_item, process, on_error=on_error,
                             progress=batch.show_progress(progress), context=context, total=total)


# keywords accepted by ``reconstruct`` (for the command line and docs)
RECONSTRUCT_KEYWORDS = PREPARE_KEYWORDS + ("lens_center",)
