"""Scale-out on Dask: FITS cutouts to a table with 1 and 2 local workers, against one process.

Usage::

    python benchmarks/dask_scaling.py [-n 200] [--model sky] [--partition-size 50]
        [--no-field-check]

``n`` FITS files of the three kinds of ``end_to_end_throughput.py`` are
estimated three ways, with the default settings otherwise:

* in one process, as ``astro-delens predict`` does without ``--workers``
  (`LensParameterEstimator.iter_predict`);
* with `astro_delens.parallel.predict_to_table` on a local cluster of 1 and
  then 2 worker processes (each worker gets an equal share of the cores), as
  ``astro-delens predict --workers N`` does, after a warm-up partition so that
  the workers have loaded the model.

Printed: cutouts per second of each, whether the Dask tables equal the
one-process one row for row, the speed-up from 1 to 2 workers, and the
projected cost of a million cutouts in core-hours of this machine.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def main(argv=None):
    from astro_delens.nn.registry import DEFAULT_FAMILY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="number of FITS files (default 200)")
    parser.add_argument("--model", default=DEFAULT_FAMILY, help="model family or directory")
    parser.add_argument("--partition-size", type=int, default=50)
    parser.add_argument("--no-field-check", action="store_true")
    args = parser.parse_args(argv)

    from end_to_end_throughput import make_inputs

    from astro_delens import LensParameterEstimator
    from astro_delens.parallel import local_client, predict_to_table
    from astro_delens.results import estimates_table

    warnings.simplefilter("ignore")
    options = {"field_check": not args.no_field_check}
    folder = Path(tempfile.mkdtemp())
    try:
        files = [str(f) for f in make_inputs(folder, args.n)]
        est = LensParameterEstimator(args.model, **options)
        list(est.iter_predict(files[:8]))  # warm-up
        t0 = time.perf_counter()
        outcomes = list(est.iter_predict(files))
        serial_wall = time.perf_counter() - t0
        serial = estimates_table([o.result for o in outcomes], files)
        cores = os.cpu_count()
        print(f"{args.n} FITS files, model {args.model!r}, {cores} cores, "
              f"field check {'on' if options['field_check'] else 'off'}")
        print(f"one process            {args.n / serial_wall:7.1f} cutouts/s")
        rates = {}
        for workers in (1, 2):
            with local_client(workers) as client:
                predict_to_table(files[:workers * 4], client=client, model=args.model,
                                 parts_dir=folder / f"warm{workers}", partition_size=4,
                                 estimator_options=options)
                t0 = time.perf_counter()
                table, failed = predict_to_table(files, client=client, model=args.model,
                                                 parts_dir=folder / f"parts{workers}",
                                                 partition_size=args.partition_size,
                                                 estimator_options=options)
                wall = time.perf_counter() - t0
                client.cluster.close()
            same = (len(failed) == 0 and list(table["input"]) == files and all(
                np.allclose(np.asarray(table[c]), np.asarray(serial[c]), rtol=1e-6,
                            equal_nan=True)
                for c in serial.colnames if c not in ("input", "flags", "center")))
            rates[workers] = args.n / wall
            print(f"Dask, {workers} worker(s)       {rates[workers]:7.1f} cutouts/s "
                  f"(rows equal to one process: {same})")
        print(f"speed-up from 1 to 2 workers: {rates[2] / rates[1]:.2f}x")
        best = max(rates[2], args.n / serial_wall)
        print(f"a million cutouts: {1e6 / best / 3600:.1f} h on this {cores}-core machine "
              f"({1e6 / best / 3600 * cores:.0f} core-hours)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
