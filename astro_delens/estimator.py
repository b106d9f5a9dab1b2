"""`LensParameterEstimator`: lens parameters of real survey cutouts, with uncertainties.

The estimator wires three modules together: `astro_delens.cutout` turns any
input into a cutout on the model's grid, the parameter network of
`astro_delens.nn.registry` predicts a Gaussian posterior for the eight
parameters of `astro_delens.lensmodel`, and `astro_delens.results` turns it
into tables with units, sky quantities and sky coordinates.

Examples
--------
The shipped ``"sky"`` model (the default) on the bundled example lens:

>>> from astro_delens import LensParameterEstimator
>>> from astro_delens.data import example_path
>>> est = LensParameterEstimator()
>>> result = est.predict(example_path())
>>> table = result.to_table()
>>> table["theta_E"].unit, table["center"].frame.name, list(result.flags)
(Unit("arcsec"), 'icrs', [])
"""

from __future__ import annotations

import warnings

import numpy as np

from . import batch, lensmodel
from .cutout import PREPARE_KEYWORDS, field_holds_arcs, prepare_cutout
from .exceptions import OutOfDomainWarning
from .fieldcheck import DEFAULT_THRESHOLD, field_dependence
from .front import NetworkFront, load_network
from .results import LensEstimate, estimates_table

__all__ = ["LensParameterEstimator"]


class LensParameterEstimator(NetworkFront):
    """Estimate the eight lens parameters of a strong lens, with 1-sigma uncertainties.

    Parameters
    ----------
    model : str, path-like or None
        A shipped model family (``"sky"``, ``"survey"`` or ``"seed"``), a family
        directory or an estimator model directory (see `astro_delens.nn.registry`);
        None, the default: ``astro_delens.config.conf.default_model`` (``"sky"``
        unless configured).
    verify : bool
        Check the SHA-256 checksums of the model files before loading them.
    batch_size : int or None
        Images per network call in `predict_many`; None: the
        ``estimator_batch_size`` setting (256 unless configured, see
        `astro_delens.config`).
    symmetries : {8, 4, 1} or None
        Average the network's answers over this many turns and flips of the
        image (see `astro_delens.nn.registry.LoadedEstimator.predict`); None:
        the ``symmetries`` setting (8 unless configured). 8 is the most
        accurate; 1 is faster (on 2 CPU cores, arrays to
        a table without the field check at 72 instead of 34 cutouts per second).
    field_check : bool
        Check that the Einstein radius does not depend on what lies far from
        the lens (`astro_delens.fieldcheck`: four more network passes on
        smaller fields of view); estimates that do are flagged
        ``field_dependence`` with an `~astro_delens.exceptions.OutOfDomainWarning`
        and their theta_E interval is widened to the range found.

    Examples
    --------
    >>> est = LensParameterEstimator()                           # doctest: +SKIP
    >>> result = est.predict("lens.fits", hdu="SCI")             # doctest: +SKIP
    >>> result.to_table()["theta_E", "theta_E_err", "center"]   # doctest: +SKIP
    """

    def __init__(self, model=None, *, verify=True, batch_size=None, symmetries=None,
                 field_check=True):
        self._model = load_network(model, "estimator", verify)
        self._set_batch_size(batch_size, "estimator_batch_size")
        self._set_symmetries(symmetries)
        if not isinstance(field_check, bool):
            raise TypeError(f"field_check: expected True or False, got {field_check!r}")
        self.field_check = field_check

    @property
    def field_check_threshold(self) -> float:
        """Relative theta_E range above which an estimate is flagged (`astro_delens.fieldcheck`)."""
        stored = self._model.config.get("field_check") or {}
        return float(stored.get("threshold", DEFAULT_THRESHOLD))

    def __repr__(self):
        p = self.preset
        return (f"<LensParameterEstimator model={self._model.name!r} "
                f"({p.npix}x{p.npix} at {p.pixel_scale}\"/pix)>")

    # -- steps -------------------------------------------------------------
    def prepare(self, data, **kwargs):
        """The `~astro_delens.cutout.PreparedCutout` that `predict` would feed the network."""
        batch.check_keywords(kwargs, PREPARE_KEYWORDS)
        return prepare_cutout(data, self.preset, **kwargs)

    def predict_prepared(self, prepared) -> list:
        """Estimates for a sequence of prepared cutouts (one network call per batch)."""
        prepared = list(prepared)
        if not prepared:
            return []
        images = np.stack([p.image for p in prepared])
        noises = np.stack([p.noise_map for p in prepared])
        masks = np.stack([p.mask for p in prepared])
        mean, std = self._model.predict(images, noises, masks, batch_size=self.batch_size,
                                        symmetries=self.symmetries)
        flags = [self._domain_flags(m, p) for m, p in zip(mean, prepared)]
        if self.field_check:
            std = self._check_field(images, noises, masks, mean, std, prepared, flags)
        info = self.model_info
        return [LensEstimate(m, s, p, info, f) for m, s, p, f in zip(mean, std, prepared, flags)]

    def _check_field(self, images, noises, masks, mean, std, prepared, flags):
        """Warn about, and widen the theta_E interval of, estimates that depend on the field."""
        t = lensmodel.INDEX["theta_E"]
        relative, bounds = field_dependence(self._model, images, noises, masks, mean[:, t],
                                            self.batch_size)
        threshold = self.field_check_threshold
        std = std.copy()
        for k in np.flatnonzero(relative > threshold):
            low, high = bounds[k]
            std[k, t] = np.hypot(std[k, t], (high - low) / 2.0)
            flags[k].append("field_dependence")
            warnings.warn(OutOfDomainWarning(
                f"{prepared[k].label}: theta_E depends on what lies far from the lens: "
                f"{low:.2f}\"-{high:.2f}\" as the field of view shrinks around the ring "
                f"(more than {threshold:.0%} of the estimate); neighbours, stars or "
                "interlopers may be read as arcs. The interval has been widened to this "
                "range; mask them or give a smaller size to check.", "field_dependence"),
                stacklevel=3)
        return std

    def _domain_flags(self, mean, prepared):
        flags = [code for code, _ in prepared.domain_warnings]
        try:
            priors = lensmodel.get_priors(self.preset.name)
        except ValueError:
            priors = {}
        outside = []
        for i, name in enumerate(lensmodel.PARAMETER_NAMES):
            if name in priors:
                low, high = priors[name].bounds
                if not (low <= mean[i] <= high):
                    outside.append(f"{name}={mean[i]:.3g} (prior {low:g} to {high:g})")
        if outside:
            flags.append("prior")
            warnings.warn(OutOfDomainWarning(
                f"{prepared.label}: estimate outside the training prior of preset "
                f"{self.preset.name!r}: " + ", ".join(outside), "prior"), stacklevel=3)
        theta_e = float(mean[lensmodel.INDEX["theta_E"]])
        psf_fwhm = prepared.psf_fwhm or prepared.assumed_psf_fwhm
        if "field" not in flags and not field_holds_arcs(prepared.field_radius, theta_e, psf_fwhm):
            flags.append("field")
            warnings.warn(OutOfDomainWarning(
                f"{prepared.label}: the cutout covers {prepared.field_radius:.2f}\" around the "
                f"centre, too small to hold the arcs of the estimated theta_E = "
                f"{theta_e:.2f}\"", "field"), stacklevel=3)
        return flags

    # -- public ------------------------------------------------------------
    def refine(self, estimate, **options) -> LensEstimate:
        """Refine an estimate with lenstronomy, starting from the network's answer.

        Runs `astro_delens.forward.refine` on the estimate's prepared cutout:
        a particle swarm and a least-squares polish (optionally an MCMC) of a
        lens + shapelet source + Sersic lens-light model, with Gaussian priors
        and bounds set by the network's estimate and uncertainties. Uses the
        cutout's PSF, or the Gaussian PSF it assumes when none was given.
        The uncertainties are the fit's Fisher errors plus, in quadrature, the
        systematic errors measured for the model's preset on simulations
        (`astro_delens.forward.refine.SYSTEMATIC_STD`; ``systematic_std=None``
        leaves them out).

        Parameters
        ----------
        estimate : `~astro_delens.results.LensEstimate`
            A network estimate (from `predict` or `predict_prepared`).
        **options
            Keywords of `astro_delens.forward.refine` (``mcmc=True``,
            ``n_particles``, ``n_iterations``, ``seed``...).

        Returns
        -------
        `~astro_delens.results.LensEstimate`
            ``mean`` and ``std`` are the refined values (``network_mean`` and
            ``network_std`` keep the network's), ``refinement`` the
            `~astro_delens.forward.RefineResult`; tables get a ``refined`` column.
        """
        from .forward import refine
        from .forward.refine import SYSTEMATIC_STD
        from .psf import psf_keywords

        if not isinstance(estimate, LensEstimate):
            raise TypeError(f"estimate: expected a LensEstimate, got {type(estimate).__name__}")
        prepared = estimate.prepared
        psf_kwargs, description = psf_keywords(prepared)
        options = {"seed": 0, "systematic_std": SYSTEMATIC_STD.get(self.preset.name), **options}
        result = refine(prepared.image, prepared.noise_map, estimate.network_mean,
                        estimate.network_std, prepared.pixel_scale, mask=prepared.mask,
                        **psf_kwargs, **options)
        if description is not None:
            result.settings["psf"] = description
        return estimate.with_refinement(result)

    def predict(self, data, *, pixel_scale=None, position=None, size=None, noise=None,
                psf=None, mask=None, hdu=None, background_subtracted=False,
                mask_contaminants=True, refine=False, refine_options=None) -> LensEstimate:
        """Estimate the lens parameters of one image.

        Parameters
        ----------
        data : str, pathlib.Path, HDUList, image HDU, NDData, Quantity or ndarray
            The image (see `astro_delens.cutout`). Arrays without a WCS are taken
            to be north up and east left.
        pixel_scale : `~astropy.units.Quantity`, optional
            Required for data without a celestial WCS.
        position : `~astropy.coordinates.SkyCoord` or (x, y), optional
            Centre of the cutout (default: the image centre).
        size : `~astropy.units.Quantity`, optional
            Width of the region used (default: the model's field of view).
        noise, psf, mask, hdu, background_subtracted, mask_contaminants
            See `astro_delens.cutout.prepare_cutout`.
        refine : bool
            Refine the network's estimate with a lenstronomy fit of the image
            (see `refine`; tens of seconds per image on a CPU).
        refine_options : dict, optional
            Keywords of `astro_delens.forward.refine`.

        Returns
        -------
        `~astro_delens.results.LensEstimate`
            ``to_table()`` gives a one-row `~astropy.table.QTable`; with
            ``refine=True`` its ``refined`` is True and ``refinement`` holds the
            fit (model image, residuals, reduced chi^2, settings).

        Warns
        -----
        `~astro_delens.exceptions.OutOfDomainWarning`
            Input or estimate outside the model's training domain.
        """
        prepared = prepare_cutout(
            data, self.preset, pixel_scale=pixel_scale, position=position, size=size,
            noise=noise, psf=psf, mask=mask, hdu=hdu,
            background_subtracted=background_subtracted, mask_contaminants=mask_contaminants)
        estimate = self.predict_prepared([prepared])[0]
        if refine:
            estimate = self.refine(estimate, **(refine_options or {}))
        return estimate

    def predict_many(self, inputs, *, names=None, on_error="raise", progress=None, **kwargs):
        """Estimate the parameters of many images; one table row per input.

        Parameters
        ----------
        inputs : iterable
            Each item is an input accepted by `predict`, or a pair
            ``(data, {keyword: value})`` with keywords for that input only.
        names : sequence of str, optional
            Identifiers for the ``input`` column (default: the file name, or the
            type and index of the object).
        on_error : {"raise", "warn"}
            With ``"warn"``, an input that fails gives a warning and a row of
            NaN whose ``error`` column holds the message.
        progress : bool or None
            Show a progress bar (tqdm) over the inputs; None: the ``progress``
            setting (`astro_delens.config`; only on a terminal unless configured).
        **kwargs
            Keywords of `predict` applied to every input.

        Returns
        -------
        `~astropy.table.QTable`
            Columns as `~astro_delens.results.estimates_table`, plus ``error``
            when ``on_error="warn"``.
        """
        outcomes = list(batch.warn_failures(on_error, lambda mode: self.iter_predict(
            inputs, names=names, progress=progress, on_error=mode, **kwargs)))
        return _table_with_failures(outcomes, on_error == "warn")

    def iter_predict(self, inputs, *, names=None, on_error="raise", progress=None,
                     context=None, **kwargs):
        """Estimate many images in chunks, yielding one `~astro_delens.batch.Outcome` per input.

        The streaming form of `predict_many` (see `astro_delens.batch`): memory
        stays flat however many inputs there are, because each chunk's
        estimates are yielded, without the cutouts' arrays, before the next
        chunk is prepared.

        Parameters
        ----------
        inputs, names, progress, **kwargs
            As `predict_many`.
        on_error : {"raise", "skip"}
            A failing input raises, or gives an outcome whose ``error`` is set.
        context : callable, optional
            See `astro_delens.batch.run` (e.g. to collect each input's warnings).

        Yields
        ------
        `~astro_delens.batch.Outcome`
            ``result`` is a `~astro_delens.results.LensEstimate` (its ``prepared``
            has no arrays), in input order.
        """
        items = batch.iter_items(inputs, names, PREPARE_KEYWORDS, **kwargs)
        total = len(inputs) if hasattr(inputs, "__len__") else None
        yield from batch.run(items, self._prepare_item, self._estimate_chunk, on_error=on_error,
                             progress=batch.show_progress(progress), context=context, total=total)

    def _estimate_chunk(self, prepared, items):
        return [e.without_arrays() for e in self.predict_prepared(prepared)]


def _table_with_failures(outcomes, with_error_column):
    """Table of the estimates in input order, with NaN rows for the failures."""
    from astropy.coordinates import SkyCoord
    from astropy.table import QTable

    rows = [o.result for o in outcomes]
    names = [o.item.name for o in outcomes]
    errors = {i: o.error for i, o in enumerate(outcomes) if not o.ok}
    good_idx = [i for i, r in enumerate(rows) if r is not None]
    n = len(rows)
    if good_idx:
        good = estimates_table([rows[i] for i in good_idx], [names[i] for i in good_idx])
    else:
        good = QTable()
        for name in lensmodel.PARAMETER_NAMES:
            good[name] = np.zeros(0)
            good[name + "_err"] = np.zeros(0)
    if len(good_idx) == n:
        table = good
    else:
        table = QTable(meta=good.meta)
        idx = np.array(good_idx, dtype=int)
        for col in good.colnames:
            values = good[col]
            if col == "input":
                table[col] = list(names)
            elif col == "flags":
                flags = ["error"] * n
                for k, i in enumerate(good_idx):
                    flags[i] = values[k]
                table[col] = flags
            elif isinstance(values, SkyCoord):
                ra, dec = np.full(n, np.nan), np.full(n, np.nan)
                ra[idx], dec[idx] = values.ra.deg, values.dec.deg
                table[col] = SkyCoord(ra, dec, unit="deg", frame="icrs")
            else:
                unit = getattr(values, "unit", None)
                full = np.full(n, np.nan)
                full[idx] = np.asarray(getattr(values, "value", values), dtype=float)
                table[col] = full * unit if unit is not None else full
        if "input" not in table.colnames:
            table.add_column(list(names), name="input", index=0)
    if with_error_column or errors:
        table["error"] = [errors.get(i, "") for i in range(n)]
    return table
