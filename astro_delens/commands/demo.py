"""Run the shipped models on the bundled example lens.

The example (`astro_delens.data.example_path`) is a lens simulated by the
package itself, with lens light, noise, a PSF and a celestial WCS rotated by
30 degrees. The command estimates its lens parameters, prints them next to the
truth recorded in the file, reconstructs the source (a regularised pixelated
inversion at the estimated lens, solved with the lens light) and writes

* DIR/example_parameters.ecsv: the parameter table;
* DIR/example_source.fits: the source with its source-plane WCS and provenance,
  and the re-lensing check's model, lens light and residuals as extensions;
* DIR/example.png: the prepared data beside the reconstructed source;
* DIR/example_relens.png: the physics check -- data, the source re-lensed by the
  estimated lens (lenstronomy ray tracing, with the lens light fitted),
  normalised residuals, and the source with the estimated caustics.

examples:
  astro-delens demo
  astro-delens demo --outdir demo_output --model seed
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


HELP = "run the shipped models on the bundled example lens"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``astro-delens demo`` to ``parser``."""
    parser.add_argument("--outdir", default="astro_delens_demo", metavar="DIR",
                        help="output folder (created if needed; default: %(default)s)")
    parser.add_argument("--model", default=None, metavar="MODEL",
                        help="shipped model family or model folder (default: the configured "
                             "default_model, sky unless changed; see astro_delens.config)")


def _example_data():
    from astropy.io import fits
    from astropy.nddata import CCDData, StdDevUncertainty
    from astropy.wcs import WCS

    from ..data import example_path

    with fits.open(example_path()) as hdul:
        sci = hdul["SCI"]
        data = CCDData(sci.data.astype(float), unit=sci.header.get("BUNIT", "adu"),
                       wcs=WCS(sci.header),
                       uncertainty=StdDevUncertainty(hdul["NOISE"].data.astype(float)))
        psf = hdul["PSF"].data.astype(float)
    return data, psf


def _print_comparison(table, truth, stream):
    names = list(truth["params"])
    width = max(len(n) for n in names)
    print(f"{'parameter':<{width}}  {'estimate':>18}  {'truth':>8}", file=stream)
    for name in names:
        value, error = table[name][0], table[f"{name}_err"][0]
        unit = getattr(value, "unit", None)
        unit_text = f" {unit}" if unit is not None and str(unit) else ""
        v = float(getattr(value, "value", value))
        e = float(getattr(error, "value", error))
        print(f"{name:<{width}}  {v:8.4f} +- {e:6.4f}  {truth['params'][name]:8.4f}{unit_text}",
              file=stream)


def run(args) -> int:
    """Run ``astro-delens demo``."""
    from ..data import example_truth
    from ..estimator import LensParameterEstimator
    from ..nn.registry import default_model
    from ..reconstructor import SourceReconstructor
    from ..results import plot_reconstruction, write_fits, write_table

    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    data, psf = _example_data()
    truth = example_truth()

    model = default_model() if args.model is None else args.model
    estimator = LensParameterEstimator(model)
    reconstructor = SourceReconstructor(model, estimator=estimator, method="inversion")
    estimate = estimator.predict(data, psf=psf)
    table = estimate.to_table()
    print(f"example lens, model {model!r}:", file=sys.stdout)
    _print_comparison(table, truth, sys.stdout)

    source = reconstructor.reconstruct(data, psf=psf, lens_center=estimate, check=True)
    verdict = ("the re-lensed source does NOT explain the data" if source.flag
               else "the re-lensed source explains the data")
    print(f"re-lensing check: reduced chi^2 {source.reduced_chi2:.2f} ({verdict}; "
          "pixelated source inverted at the estimated lens)", file=sys.stdout)

    write_table(table, outdir / "example_parameters.ecsv", overwrite=True)
    write_fits(source, outdir / "example_source.fits", overwrite=True)
    plot_reconstruction(source.prepared, source, outdir / "example.png",
                        title=f"example lens ({model} models)")
    source.plot(outdir / "example_relens.png")
    print(f"wrote {outdir / 'example_parameters.ecsv'}, {outdir / 'example_source.fits'}, "
          f"{outdir / 'example.png'} and {outdir / 'example_relens.png'}", file=sys.stdout)
    return 0
