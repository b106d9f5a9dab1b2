"""End-to-end throughput: FITS cutouts in, an ECSV table and source FITS files out.

Usage::

    python benchmarks/end_to_end_throughput.py [-n 64] [--model sky | --untrained]
        [--symmetries 8] [--no-field-check] [--skip-check]

``n`` FITS files are written to a temporary folder, a third of each of three
kinds: the bundled example (0.1" pixels turned by 30 deg: bicubic resampling),
a north-up image with 0.05" pixels (2 x 2 sub-pixel resampling) and a north-up
image already on the model's grid (copied). Then, after a warm-up, the wall and
CPU time of

* ``predict``: `LensParameterEstimator.predict_many` (prepare every file, one
  batched network call) and writing the ECSV table;
* ``reconstruct``: `SourceReconstructor.reconstruct_many` (prepare, lens centre
  from the estimator, source network) and writing one FITS file per input,
  without the re-lensing check (``check=False``) and with it (the default);

and of the preparation alone are printed as cutouts per second. The networks
average their answers over ``--symmetries`` turns and flips of each image (8,
the default, as the API does; 1 is the network alone). Without shipped
models (or with ``--untrained``), untrained networks of the default (full)
size are used: the speed is the same as for trained ones.
"""

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def make_inputs(folder, n):
    """``n`` FITS files of three kinds (see the module docstring)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from astro_delens.data import example_path

    with fits.open(example_path()) as hdul:
        sci, noise = hdul["SCI"].data, hdul["NOISE"].data
        c = (sci.shape[0] - 1) / 2.0
        centre = WCS(hdul["SCI"].header).pixel_to_world(c, c)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        kind = i % 3
        path = Path(folder) / f"cutout_{i:04d}.fits"
        if kind == 0:
            fits.HDUList(fits.open(example_path())).writeto(path)
        else:
            scale = 0.05 if kind == 1 else 0.1
            npix = 2 * sci.shape[0] + 8 if kind == 1 else sci.shape[0] + 4
            w = WCS(naxis=2)
            w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
            w.wcs.crval = [centre.ra.deg, centre.dec.deg]
            w.wcs.crpix = [(npix + 1) / 2] * 2
            w.wcs.cdelt = [-scale / 3600, scale / 3600]
            zoom = np.kron(sci, np.ones((2, 2))) / 4 if kind == 1 else sci
            img = np.zeros((npix, npix), np.float32)
            k = (npix - zoom.shape[0]) // 2
            img[k:k + zoom.shape[0], k:k + zoom.shape[1]] = zoom
            img += rng.normal(0, float(np.median(noise)), img.shape).astype(np.float32)
            fits.PrimaryHDU(img, w.to_header()).writeto(path)
        paths.append(str(path))
    return paths


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None):
    from astro_delens.nn.registry import DEFAULT_FAMILY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=64, help="number of cutouts (default 64)")
    parser.add_argument("--model", default=DEFAULT_FAMILY, help="model family or directory")
    parser.add_argument("--untrained", action="store_true",
                        help="use untrained default-size networks instead of --model")
    parser.add_argument("--symmetries", type=int, choices=(1, 4, 8), default=8,
                        help="turns and flips averaged over (default 8)")
    parser.add_argument("--no-field-check", action="store_true",
                        help="estimator without its field-dependence check (field_check=False)")
    parser.add_argument("--skip-check", action="store_true",
                        help="do not time the re-lensing check (it does not depend on "
                             "--symmetries)")
    args = parser.parse_args(argv)

    from astro_delens import LensParameterEstimator, SourceReconstructor
    from astro_delens.cutout import prepare_cutout
    from astro_delens.exceptions import AstroDelensWarning
    from astro_delens.nn.registry import ModelNotFoundError
    from astro_delens.results import write_fits, write_table

    warnings.simplefilter("ignore", AstroDelensWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if not args.untrained:
            try:
                LensParameterEstimator(model)
            except ModelNotFoundError:
                print(f"model {model!r} not found: using untrained default-size networks")
                args.untrained = True
        if args.untrained:
            from astro_delens.data._devtools import make_untrained_family

            model = str(make_untrained_family(Path(tmp) / "untrained", tiny=False))
        est = LensParameterEstimator(model, symmetries=args.symmetries,
                                     field_check=not args.no_field_check)
        rec = SourceReconstructor(model, estimator=est, symmetries=args.symmetries)
        files = make_inputs(tmp, args.n)
        out = Path(tmp) / "out"
        out.mkdir()
        # warm-up (imports, graph tracing, caches)
        est.predict_many(files[:3])
        rec.reconstruct_many(files[:3], check=False)

        _, t_prep, c_prep = _timed(lambda: [prepare_cutout(f, est.preset) for f in files])

        def predict():
            table = est.predict_many(files)
            write_table(table, out / "results.ecsv", overwrite=True)
            return table

        def reconstruct(check):
            sources = rec.reconstruct_many(files, check=check)
            for f, s in zip(files, sources):
                write_fits(s, out / (Path(f).stem + "_source.fits"), overwrite=True)

        _, t_pred, c_pred = _timed(predict)
        _, t_rec, c_rec = _timed(lambda: reconstruct(False))
        t_chk = c_chk = float("nan")
        if not args.skip_check:
            _, t_chk, c_chk = _timed(lambda: reconstruct(True))

    n = args.n
    kind = "untrained (default size)" if args.untrained else model
    print(f"model: {kind}; {n} cutouts (3 kinds); answers averaged over {args.symmetries} "
          f"symmetries; {os.cpu_count()} CPUs visible")
    print(f"{'stage':34s} {'wall s':>8s} {'cpu s':>8s} {'cutouts/s (wall)':>17s} "
          f"{'cutouts/s (cpu)':>16s}")
    for name, wall, cpu in (
        ("prepare only (cutout.py)", t_prep, c_prep),
        ("predict: FITS -> ECSV table", t_pred, c_pred),
        ("reconstruct: FITS -> source FITS", t_rec, c_rec),
        ("  + re-lensing check (default)", t_chk, c_chk),
    ):
        print(f"{name:34s} {wall:8.2f} {cpu:8.2f} {n / wall:17.1f} {n / cpu:16.1f}")


if __name__ == "__main__":
    main()
