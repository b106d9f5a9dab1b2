"""Many cutouts on many cores or machines: the batch engine on Dask (``dask.distributed``).

The inputs are split into partitions (``astro_delens.config.conf.partition_size``
inputs by default); each partition runs
`LensParameterEstimator.iter_predict` on a Dask worker, which loads the
networks once and keeps them for the next partitions. The estimates of a
partition are built by the same code as in one process
(`astro_delens.results.estimates_table`), so the answers are identical, row
for row.

Two entry points:

* `predict_frame` returns a lazy `dask.dataframe.DataFrame` (one row per
  input, failures included with their ``error``), for analysis in Python;
* `predict_to_table` (behind ``astro-delens predict --workers N`` and
  ``--scheduler ADDRESS``) writes each partition's table to a Parquet file in
  a parts folder as soon as it is done, and merges them into one
  `~astropy.table.QTable` in input order. A run that is killed resumes from
  the parts already written; the failed inputs come back as a table.

Dask (``pip install "astro_delens[dask]"``) is optional: nothing else in the
package needs it. The documentation's page "Many cutouts: batches and Dask"
shows a run on a SLURM cluster with dask-jobqueue.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from .batch import input_name

__all__ = ["cached_model", "warning_lines", "predict_partition", "predict_frame",
           "predict_to_table", "local_client", "partitions", "balanced_partition_size"]

# networks loaded in this process, by (class, model, options): each worker loads a model once
_LOADED = {}


def cached_model(cls, model, options):
    """``cls(model, **options)``, made once per process (a Dask worker keeps its networks)."""
    key = (cls.__name__, os.fspath(model), json.dumps(options, sort_keys=True))
    if key not in _LOADED:
        _LOADED[key] = cls(model, **options)
    return _LOADED[key]


def warning_lines(caught):
    """The messages of recorded warnings, one line each, repeats and deprecations left out."""
    return list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught
                              if not issubclass(w.category, DeprecationWarning)))


def predict_partition(inputs, names, model, estimator_options, prepare_options):
    """Estimates of one partition, as in one process.

    Parameters
    ----------
    inputs : list
        Inputs of `~astro_delens.LensParameterEstimator.predict_many`.
    names : list of str
        Their names.
    model : str or path-like
        Model family or estimator directory (loaded once per process).
    estimator_options, prepare_options : dict
        Keywords of `~astro_delens.LensParameterEstimator` and of ``predict``.

    Returns
    -------
    table : `~astropy.table.QTable` or None
        The estimates of the inputs that succeeded, in order (None when none did).
    errors : list of str or None
        One per input: the error of an input that failed, None for the others.
    messages : list of str
        The warnings raised, one line each.
    """
    from .estimator import LensParameterEstimator
    from .results import estimates_table

    est = cached_model(LensParameterEstimator, model, estimator_options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcomes = list(est.iter_predict(inputs, names=names, on_error="skip", progress=False,
                                         **prepare_options))
    good = [o for o in outcomes if o.ok]
    table = estimates_table([o.result for o in good], [o.item.name for o in good]) if good \
        else None
    return table, [o.error for o in outcomes], warning_lines(caught)


# --------------------------------------------------------------------------
# a Dask DataFrame
# --------------------------------------------------------------------------
def _frame_columns():
    from . import lensmodel
    from .results import DERIVED_QUANTITIES

    floats = []
    for name in (*lensmodel.PARAMETER_NAMES, *DERIVED_QUANTITIES):
        floats += [name, name + "_err"]
    return floats + ["center_ra", "center_dec"]


def _frame_meta():
    import pandas as pd

    meta = {"input": pd.Series(dtype=object)}
    meta.update({c: pd.Series(dtype=float) for c in _frame_columns()})
    meta["flags"] = pd.Series(dtype=object)
    meta["error"] = pd.Series(dtype=object)
    return pd.DataFrame(meta)


def _as_frame(table, errors, names):
    """A partition as a pandas DataFrame in input order: floats in the table's units."""
    import pandas as pd

    good = [i for i, error in enumerate(errors) if error is None]
    frame = _frame_meta().reindex(range(len(names)))
    frame["input"] = list(names)
    frame["flags"] = "error"
    frame["error"] = [error or "" for error in errors]
    if table is not None:
        for col in _frame_columns():
            if col in ("center_ra", "center_dec"):
                if "center" in table.colnames:
                    sky = table["center"]
                    frame.loc[good, col] = sky.ra.deg if col == "center_ra" else sky.dec.deg
            else:
                frame.loc[good, col] = np.asarray(getattr(table[col], "value", table[col]),
                                                  dtype=float)
        frame.loc[good, "flags"] = [str(f) for f in table["flags"]]
    return pd.DataFrame(frame)


def _frame_partition(entries, model, estimator_options, prepare_options):
    names = [name for name, _ in entries]
    table, errors, _ = predict_partition([data for _, data in entries], names, model,
                                         estimator_options, prepare_options)
    return _as_frame(table, errors, names)


def predict_frame(inputs, model=None, *, partition_size=None, estimator_options=None,
                  **prepare_options):
    """Estimates of many inputs as a lazy Dask DataFrame (one row per input, in order).

    Parameters
    ----------
    inputs : sequence or `dask.bag.Bag`
        Inputs of `~astro_delens.LensParameterEstimator.predict_many` (file
        names travel best; arrays are sent to the workers).
    model : str or path-like, optional
        Model family or estimator directory (default:
        ``astro_delens.config.conf.default_model``).
    partition_size : int, optional
        Inputs per partition of a sequence (a bag keeps its own partitions;
        default: ``astro_delens.config.conf.partition_size``).
    estimator_options : dict, optional
        Keywords of `~astro_delens.LensParameterEstimator` (``symmetries``, ``field_check``).
    **prepare_options
        Keywords of ``predict`` applied to every input.

    Returns
    -------
    `dask.dataframe.DataFrame`
        Columns ``input``; the eight parameters, ``axis_ratio``,
        ``position_angle``, ``shear``, ``shear_angle`` and their ``_err``
        (arcsec and degrees as in `~astro_delens.results.estimates_table`);
        ``center_ra`` and ``center_dec`` (deg, NaN without a celestial WCS);
        ``flags``; ``error`` (empty unless the input failed). Compute it with
        the scheduler of your choice, e.g. a ``distributed.Client``.
    """
    import dask
    import dask.bag as db
    import dask.dataframe as dd

    model, options = _resolved(model, estimator_options)
    if isinstance(inputs, db.Bag):
        parts = [dask.delayed(_named)(part, i) for i, part in enumerate(inputs.to_delayed())]
    else:
        inputs = list(inputs)
        size = _check_partition_size(partition_size)
        parts = [[(input_name(data, start + k), data)
                  for k, data in enumerate(inputs[start:start + size])]
                 for start in range(0, len(inputs), size)]
    frames = [dask.delayed(_frame_partition)(part, model, options, prepare_options)
              for part in parts]
    return dd.from_delayed(frames, meta=_frame_meta(), verify_meta=False)


def _resolved(model, estimator_options):
    """The model and estimator options with what was left to the settings filled in here.

    Workers may run in other processes or on other machines, with other
    settings: the client's settings decide (`astro_delens.config`).
    """
    from .config import conf
    from .nn.registry import default_model

    options = dict(estimator_options or {})
    if options.get("symmetries") is None:
        options["symmetries"] = int(conf.symmetries)
    return (default_model() if model is None else model), options


def _named(part, index):
    return [(input_name(data, f"{index}:{k}"), data) for k, data in enumerate(part)]


def partitions(items, partition_size):
    """``items`` in consecutive lists of ``partition_size`` (the last may be shorter)."""
    size = _check_partition_size(partition_size)
    return [items[start:start + size] for start in range(0, len(items), size)]


def balanced_partition_size(n_inputs, client, largest=None):
    """Inputs per partition that keep every worker of ``client`` busy.

    About four partitions per worker thread, and at most ``largest`` inputs
    (default: ``astro_delens.config.conf.partition_size``). The partitions of
    a rerun are the same only on a cluster of the same size: give a fixed
    size to resume on another one.
    """
    largest = _check_partition_size(largest)
    threads = max(1, sum(client.nthreads().values()))
    return max(1, min(largest, math.ceil(n_inputs / (4 * threads))))


def _check_partition_size(partition_size):
    if partition_size is None:
        from .config import conf

        partition_size = conf.partition_size
    if not isinstance(partition_size, (int, np.integer)) or partition_size < 1:
        raise ValueError(f"partition_size: expected a positive integer, got {partition_size!r}")
    return int(partition_size)


# --------------------------------------------------------------------------
# partitions written as Parquet, merged into one table
# --------------------------------------------------------------------------
def local_client(workers):
    """A ``distributed.Client`` on a new local cluster of ``workers`` processes.

    Each worker gets one thread and an equal share of the cores for the
    networks (TensorFlow's and the BLAS thread pools), so the workers do not
    compete for the same cores.
    """
    from distributed import Client, LocalCluster

    workers = int(workers)
    if workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    env = {name: threads for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                      "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, env=env)
    return Client(cluster)


def _part_path(parts_dir, index, names, settings):
    digest = hashlib.sha256(json.dumps([names, settings], sort_keys=True,
                                       default=str).encode()).hexdigest()[:12]
    return Path(parts_dir) / f"part-{index:05d}-{digest}.parquet"


def _write_part(path, entries, model, estimator_options, prepare_options):
    """Run one partition on a worker and store its table (and failures) as Parquet.

    Returns the partition's warnings (one line each) and ``(name, error)`` failures.
    """
    from astropy.table import QTable

    from .files import atomic_write

    names = [name for name, _ in entries]
    table, errors, messages = predict_partition([data for _, data in entries], names, model,
                                                estimator_options, prepare_options)
    if table is None:
        table = QTable({"input": np.array([], dtype=str)})
    failures = [[name, error] for name, error in zip(names, errors) if error]
    table.meta["failures"] = failures  # kept with the part, for a resumed run
    atomic_write(path, lambda tmp: table.write(tmp, format="parquet", overwrite=True))
    return messages, failures


def predict_to_table(files, *, client, parts_dir, model=None, partition_size=None,
                     estimator_options=None, prepare_options=None, on_part=None):
    """Estimate many files on a Dask cluster; partitions stored in ``parts_dir``, then merged.

    Parameters
    ----------
    files : sequence of str
        Input files (as for ``astro-delens predict``; the workers must see them).
    client : ``distributed.Client``
    parts_dir : path-like
        Folder for the partitions' Parquet files (shared by the workers). A part
        already there from an interrupted run with the same inputs and settings
        is not computed again.
    model, partition_size, estimator_options
        As `predict_frame`.
    prepare_options : dict, optional
        Keywords of ``predict`` applied to every file.
    on_part : callable, optional
        Called with ``(n_inputs, messages, failures)`` for each partition as it
        completes (its number of inputs, its warnings, one line each, and the
        ``(name, error)`` of its failed inputs), and with ``(n_inputs, [], [])``
        for each partition found done; for progress bars and reports.

    Returns
    -------
    table : `~astropy.table.QTable` or None
        The estimates of the files that succeeded, in input order, with the
        metadata of one-process tables (None when none succeeded).
    failures : `~astropy.table.Table`
        ``input`` and ``error`` of each file that failed.
    """
    from astropy.table import QTable, Table, vstack
    from distributed import as_completed

    model, estimator_options = _resolved(model, estimator_options)
    prepare_options = dict(prepare_options or {})
    files = [os.fspath(f) for f in files]
    settings = [os.fspath(model), estimator_options, prepare_options]
    Path(parts_dir).mkdir(parents=True, exist_ok=True)
    on_part = on_part or (lambda n_inputs, messages, failures: None)
    paths, todo = [], []
    for index, names in enumerate(partitions(files, partition_size)):
        path = _part_path(parts_dir, index, names, settings)
        paths.append(path)
        if path.exists():
            on_part(len(names), [], [])
        else:
            todo.append((path, [(n, n) for n in names]))
    sizes = {client.submit(_write_part, path, entries, model, estimator_options,
                           prepare_options, pure=False): len(entries) for path, entries in todo}
    for future in as_completed(list(sizes)):
        on_part(sizes[future], *future.result())
    parts = [QTable.read(path) for path in paths]
    failures = [tuple(f) for part in parts for f in part.meta.pop("failures", [])]
    filled = [part for part in parts if len(part)]
    table = None
    if filled:
        _align_centers(filled)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # differing preprocessing metadata is merged below
            table = vstack(filled, metadata_conflicts="silent")
        table.meta["preprocessing"] = {k: v for part in filled
                                       for k, v in part.meta.get("preprocessing", {}).items()}
    failed = Table({"input": [f[0] for f in failures], "error": [f[1] for f in failures]},
                   dtype=(str, str))
    return table, failed


def _align_centers(parts):
    """Give every part a ``center`` column (NaN) when any has one, as a one-process table does."""
    from astropy.coordinates import SkyCoord

    if not any("center" in part.colnames for part in parts):
        return
    for part in parts:
        if "center" not in part.colnames:
            nan = np.full(len(part), np.nan)
            part.add_column(SkyCoord(nan, nan, unit="deg", frame="icrs"), name="center",
                            index=part.colnames.index("flags"))
