"""Simulated training sets in HDF5: writing them (in parallel, resumably) and reading them.

Layout
------
One group-less HDF5 file per split; every dataset has the sample axis first,
is chunked one sample per chunk and gzip-compressed:

==================================  =========================  ==========================
dataset                             shape                      type
==================================  =========================  ==========================
image, noise_map, arcs, lens_light  (N, npix, npix)            float32
source                              (N, source_npix, ...)      float32
params                              (N, 8)                     float64 (lensmodel order)
psf                                 (N, k, k)                  float32
pixel_scale, psf_fwhm, snr,         (N,)                       float64
lens_light_ratio, source_x,
source_y
psf_kind, source_kind, source_id    (N,)                       variable-length UTF-8
sample_seed                         (N,)                       int64
==================================  =========================  ==========================

File attributes: ``preset``, ``preset_json``, ``split``, ``seed``, ``n``,
``package_version``, ``created``, ``command``, ``parameter_names`` (JSON),
``complete``, plus ``n_written``, ``source_catalog`` and ``psf_files`` (JSON),
and for real-galaxy sources ``source_processing`` (JSON: how the stamps were
cleaned and deconvolved, `RealGalaxySource.settings
<astro_delens.training.real_galaxies.RealGalaxySource.settings>`).

Reproducibility
---------------
Sample ``i`` of split ``s`` made with seed ``seed`` is simulated from the
integer `sample_seed` ``(seed, s, i)``, derived with `numpy.random.SeedSequence`;
it does not depend on the number of worker processes, and the file is written
in index order. ``LensSimulator(preset).simulate(int(f["sample_seed"][i]))``
re-simulates it (with ``catalog_index=`` the galaxy of its ``source_id`` for
real galaxies).

Splits never share a source
---------------------------
* Procedural sources are drawn from the random stream of the sample's seed,
  which is keyed by (seed, split, index); they are labelled
  ``procedural:<split>:<seed>:<index>``.
* Real galaxies are partitioned once and for all by a hash of their
  identifier (`assign_split`, 80 / 10 / 10 per cent): a sample of a split only
  draws galaxies of that split's subset (`split_indices`).

Interruptions
-------------
Samples are written to ``<path>.partial`` as they are made, with the number of
samples written in the attribute ``n_written``. Running the same generation
again resumes from there (after checking that preset, seed, split, ``n`` and
inputs match). When all samples are written, ``complete`` is set and the file
is renamed to ``<path>`` atomically, so ``<path>`` is always a complete file.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import sys
import warnings
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import lensmodel
from .._version import __version__
from ..presets import get_preset

__all__ = [
    "SPLITS",
    "SPLIT_FRACTIONS",
    "IMAGE_FIELDS",
    "FLOAT_FIELDS",
    "STRING_FIELDS",
    "FIELDS",
    "PARTIAL_SUFFIX",
    "sample_seed",
    "assign_split",
    "split_indices",
    "validate_output_path",
    "generate_dataset",
    "H5Dataset",
    "open_dataset",
    "DatasetWarning",
]

log = logging.getLogger(__name__)

#: Split names and the codes that enter the sample seeds.
SPLITS = {"train": 0, "val": 1, "test": 2}
#: Fractions of a real-galaxy catalog given to each split.
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}

IMAGE_FIELDS = ("image", "noise_map", "arcs", "lens_light", "source", "psf")
FLOAT_FIELDS = ("pixel_scale", "psf_fwhm", "snr", "lens_light_ratio", "source_x", "source_y")
STRING_FIELDS = ("psf_kind", "source_kind", "source_id")
#: Every dataset of a file, in the order they are created.
FIELDS = IMAGE_FIELDS + ("params",) + FLOAT_FIELDS + STRING_FIELDS + ("sample_seed",)

#: Arrays stored as one compressed chunk per sample (compressed by the workers).
ARRAY_FIELDS = IMAGE_FIELDS + ("params",)
#: gzip level of the chunks.
GZIP_LEVEL = 4

#: Times a sample is re-drawn (with a new seed) when the simulator cannot make it.
MAX_ATTEMPTS = 10
PARTIAL_SUFFIX = ".partial"


class DatasetWarning(UserWarning):
    """Something about a dataset file that the user should know but that is not fatal."""


# --------------------------------------------------------------------------
# seeds and splits
# --------------------------------------------------------------------------
def _split_code(split) -> int:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
    return SPLITS[split]


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def sample_seed(seed: int, split: str, index: int, attempt: int = 0) -> int:
    """The integer seed of sample ``index`` of ``split`` in a dataset made with ``seed``.

    Derived from ``SeedSequence([seed, split_code, index])`` (``attempt`` > 0
    appends the attempt number, for the rare samples the simulator rejects);
    a non-negative int64.
    """
    key = [_check_seed(seed), _split_code(split), int(index)]
    if attempt:
        key.append(int(attempt))
    state = np.random.SeedSequence(key).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def assign_split(source_id: str, fractions=None) -> str:
    """The split (``"train"``, ``"val"`` or ``"test"``) a real galaxy belongs to.

    The decision is a stable hash (BLAKE2b) of ``source_id``, so it never changes
    between runs, machines or catalog orderings, and a galaxy listed twice under
    the same identifier lands in one split.

    Parameters
    ----------
    source_id : str
        The galaxy's identifier, e.g. ``"cosmos:141190"``.
    fractions : dict, optional
        ``{split: fraction}``; default `SPLIT_FRACTIONS`.
    """
    fractions = SPLIT_FRACTIONS if fractions is None else fractions
    digest = hashlib.blake2b(str(source_id).encode("utf-8"), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2.0**64
    total = float(sum(fractions.values()))
    edge = 0.0
    for name in SPLITS:
        edge += fractions.get(name, 0.0) / total
        if u < edge:
            return name
    return list(SPLITS)[-1]


def _split_keys(catalog):
    """Per catalog row, the key that decides its split (``split_key`` or ``source_id``)."""
    key = getattr(catalog, "split_key", None) or catalog.source_id
    return [key(i) for i in range(len(catalog))]


def split_indices(catalog, split: str) -> np.ndarray:
    """Indices of the galaxies of ``catalog`` that belong to ``split`` (see `assign_split`).

    The split of a row is decided by ``catalog.split_key(i)`` when the catalog has
    it (rows repeating a galaxy share it), else by ``catalog.source_id(i)``.
    """
    _split_code(split)
    return np.array([i for i, key in enumerate(_split_keys(catalog))
                     if assign_split(key) == split], dtype=np.int64)


# --------------------------------------------------------------------------
# simulating samples
# --------------------------------------------------------------------------
def _to_row(sample, source_id, seed_used):
    """A simulator sample as ``{field: value}`` for the file."""
    meta = sample["meta"]
    row = {name: np.asarray(sample[name], dtype=np.float32) for name in IMAGE_FIELDS}
    row["params"] = np.asarray(sample["params"], dtype=np.float64)
    for name in FLOAT_FIELDS:
        row[name] = float(meta[name])
    row["psf_kind"] = str(meta["psf_kind"])
    row["source_kind"] = str(meta["source_kind"])
    row["source_id"] = str(source_id)
    row["sample_seed"] = int(seed_used)
    return row


def simulate_sample(sim, seed, split, index, subset=None):
    """Simulate sample ``index`` of ``split``; returns a row ``{field: value}``.

    ``subset`` holds the catalog indices allowed for this split when ``sim``
    lenses real galaxies. A sample the simulator rejects (``RuntimeError``, e.g.
    a source lensed outside the image) is re-drawn with the next attempt's seed.
    """
    last_error = None
    for attempt in range(MAX_ATTEMPTS):
        s = sample_seed(seed, split, index, attempt)
        catalog_index = None
        if subset is not None:
            pick = np.random.default_rng([s, 1]).integers(len(subset))
            catalog_index = int(subset[pick])
        try:
            sample = sim.simulate(s, catalog_index=catalog_index)
        except RuntimeError as exc:
            last_error = exc
            continue
        if subset is None:
            source_id = f"procedural:{split}:{seed}:{index}"
        else:
            source_id = sample["meta"]["source_id"]
        return _to_row(sample, source_id, s)
    raise RuntimeError(f"sample {index} of split {split!r}: the simulator failed "
                       f"{MAX_ATTEMPTS} times; last error: {last_error}")


@dataclass(frozen=True)
class _Chunk:
    """One sample of an array field, already passed through HDF5's shuffle + gzip filters."""

    shape: tuple
    dtype: str
    data: bytes


def _encode(array) -> _Chunk:
    """Byte-shuffle and deflate ``array`` exactly as HDF5's shuffle + gzip filters do.

    Compressing in the worker processes keeps the writing process from becoming
    the bottleneck; the chunk is stored with ``write_direct_chunk``.
    """
    array = np.ascontiguousarray(array)
    array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    shuffled = array.view(np.uint8).reshape(-1, array.dtype.itemsize).T.tobytes()
    return _Chunk(array.shape, array.dtype.str, zlib.compress(shuffled, GZIP_LEVEL))


def _encode_row(row) -> dict:
    """``row`` with its array fields compressed (see `_encode`)."""
    return {name: _encode(value) if name in ARRAY_FIELDS else value
            for name, value in row.items()}


_WORKER = {}


def _make_simulator(preset, source_catalog, psf_files):
    from .simulate import make_simulator

    return make_simulator(preset, source_catalog=source_catalog, psf_files=psf_files)


def _worker_init(preset, source_catalog, psf_files, seed, split, subset):
    """Build the simulator once per worker process."""
    _WORKER.update(sim=_make_simulator(preset, source_catalog, psf_files), seed=seed,
                   split=split, subset=subset)


def _worker_block(indices):
    w = _WORKER
    return [_encode_row(simulate_sample(w["sim"], w["seed"], w["split"], i, w["subset"]))
            for i in indices]


def _blocks(start, stop, size):
    return [list(range(a, min(a + size, stop))) for a in range(start, stop, size)]


def _serial_rows(sim, seed, split, subset, start, n, block):
    for indices in _blocks(start, n, block):
        yield [_encode_row(simulate_sample(sim, seed, split, i, subset)) for i in indices]


def _parallel_rows(init_args, start, n, workers, block):
    """Blocks of rows in index order, simulated by ``workers`` spawned processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # "spawn": safe with the threads of TensorFlow / OpenMP, and the same on every OS.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                               initargs=init_args)
    pending = deque()
    try:
        for indices in _blocks(start, n, block):
            pending.append(pool.submit(_worker_block, indices))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------
# the file
# --------------------------------------------------------------------------
def _partial_path(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL_SUFFIX)


def validate_output_path(path, overwrite=False) -> Path:
    """Check that a dataset can be written at ``path``; returns it as a `~pathlib.Path`.

    Raises
    ------
    ValueError
        If ``path`` exists and ``overwrite`` is false, is a folder, or its folder
        does not exist or is not writable.
    """
    path = Path(os.fspath(path)).expanduser()
    if path.is_dir():
        raise ValueError(f"output: {str(path)!r} is a folder; expected an HDF5 file name")
    if path.exists() and not overwrite:
        raise ValueError(f"output: {str(path)!r} exists; pass --overwrite (overwrite=True) "
                         "to replace it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"output: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"output: folder {str(folder)!r} is not writable")
    return path


def _identity(preset, seed, split, n, source_catalog, psf_files):
    """The attributes that must match for a partial file to be resumed."""
    catalog = ""
    if source_catalog is not None:
        catalog_file = getattr(source_catalog, "catalog_file", None)
        catalog = (str(Path(catalog_file).resolve()) if catalog_file is not None
                   else type(source_catalog).__name__)
    identity = {
        "preset": preset.name,
        "preset_json": json.dumps(preset.to_dict(), sort_keys=True),
        "split": split,
        "seed": int(seed),
        "n": int(n),
        "source_catalog": catalog,
        "psf_files": json.dumps([str(p) for p in (psf_files or [])]),
    }
    settings = getattr(source_catalog, "settings", None)
    if settings is not None:
        identity["source_processing"] = json.dumps(settings, sort_keys=True)
    return identity


def _attr(value):
    """An HDF5 attribute as a plain Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _resume_point(h5, identity, partial):
    """Number of samples already in an existing partial file (checks it matches)."""
    for key, expected in identity.items():
        found = _attr(h5.attrs.get(key))
        if isinstance(expected, int):
            found = None if found is None else int(found)
        if found != expected:
            if key == "preset_json":
                found, expected = "another definition", "the current one"
            raise ValueError(
                f"output: {str(partial)!r} holds an unfinished dataset made with "
                f"{key}={found!r}, not {expected!r}; rerun with the same options to resume "
                "it, or pass --overwrite (overwrite=True) to start again"
            )
    return int(h5.attrs.get("n_written", 0))


def _open_partial(partial, identity, command):
    """Open (or create) the partial file; returns ``(h5py.File, samples already written)``."""
    import h5py

    if partial.exists():
        try:
            h5 = h5py.File(partial, "r+")
        except OSError as exc:
            if "lock" in str(exc).lower():
                raise ValueError(f"output: {str(partial)!r} is open in another process "
                                 "(a simulation already running?)") from None
            warnings.warn(f"output: {str(partial)!r} is unreadable (interrupted while "
                          "writing?); starting again", DatasetWarning, stacklevel=3)
            partial.unlink()
        else:
            try:
                return h5, _resume_point(h5, identity, partial)
            except Exception:
                h5.close()
                raise
    h5 = h5py.File(partial, "w")
    h5.attrs.update(identity)
    h5.attrs.update({
        "package_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "parameter_names": json.dumps(list(lensmodel.PARAMETER_NAMES)),
        "complete": False,
        "n_written": 0,
    })
    h5.flush()
    return h5, 0


def _create_datasets(h5, n, row):
    import h5py

    string = h5py.string_dtype("utf-8")
    for name in FIELDS:
        if name in h5:
            continue
        value = row[name]
        if name in STRING_FIELDS:
            dtype, shape = string, ()
        elif name == "sample_seed":
            dtype, shape = np.int64, ()
        elif name in FLOAT_FIELDS:
            dtype, shape = np.float64, ()
        else:
            dtype, shape = np.dtype(value.dtype), tuple(value.shape)
        h5.create_dataset(name, shape=(n,) + shape, dtype=dtype, chunks=(1,) + shape,
                          compression="gzip", compression_opts=GZIP_LEVEL, shuffle=True)


def _write_rows(h5, start, rows):
    """Write ``rows`` (encoded by `_encode_row`) at ``start``; returns the new count."""
    stop = start + len(rows)
    for name in FIELDS:
        ds = h5[name]
        values = [row[name] for row in rows]
        if name in ARRAY_FIELDS:
            for index, chunk in enumerate(values, start):
                if chunk.shape != ds.shape[1:] or np.dtype(chunk.dtype) != ds.dtype:
                    raise RuntimeError(f"{name}: the simulator returned {chunk.dtype} "
                                       f"{chunk.shape}, the file holds {ds.dtype} {ds.shape[1:]}")
                ds.id.write_direct_chunk((index,) + (0,) * len(chunk.shape), chunk.data)
        elif name in STRING_FIELDS:
            ds[start:stop] = np.array(values, dtype=object)
        else:
            ds[start:stop] = np.asarray(values, dtype=ds.dtype)
    h5.attrs["n_written"] = stop
    h5.flush()
    return stop


def _default_command(path, preset, n, split, seed):
    return (f"astro_delens.training.dataset.generate_dataset({str(path)!r}, "
            f"preset={preset.name!r}, n={n}, split={split!r}, seed={seed})")


def _progress_bar(total, initial, progress, split):
    from tqdm import tqdm

    # disable=None: tqdm switches itself off when stderr is not a terminal.
    return tqdm(total=total, initial=initial, unit="lens", desc=f"simulate {split}",
                disable=None if progress else True, file=sys.stderr, dynamic_ncols=True)


def _prepare_catalog(source_catalog, split):
    """The real-galaxy provider (or None) and this split's catalog indices (or None)."""
    from .real_galaxies import load_source_catalog

    catalog = load_source_catalog(source_catalog)
    if catalog is None:
        return None, None
    subset = split_indices(catalog, split)
    if len(subset) == 0:
        raise ValueError(f"source_catalog: none of its {len(catalog)} galaxies falls in the "
                         f"{split!r} split (fractions {SPLIT_FRACTIONS}); use a larger catalog")
    return catalog, subset


def generate_dataset(path, preset, n, split, seed, workers=1, overwrite=False,
                     source_catalog=None, psf_files=None, progress=True, command=None,
                     block_size=None):
    """Simulate ``n`` lenses of ``preset`` into the HDF5 file ``path``.

    Parameters
    ----------
    path : str or path-like
        Output file; samples go to ``<path>.partial`` until all are written.
    preset : str or `~astro_delens.presets.Preset`
        Simulation preset.
    n : int
        Number of samples (> 0).
    split : {"train", "val", "test"}
        Which split this file is; enters the seeds and the choice of real galaxies.
    seed : int
        Master seed (>= 0). The file depends only on ``(preset, n, split, seed)``
        and the inputs, not on ``workers``.
    workers : int
        Number of processes (``1``: simulate in this process).
    overwrite : bool
        Replace an existing ``path`` and discard an unfinished ``<path>.partial``.
        Without it, an existing ``path`` is an error and an unfinished partial
        file made with the same options is resumed.
    source_catalog : str, path-like or provider, optional
        Real galaxies (`astro_delens.training.real_galaxies.RealGalaxySource`);
        default procedural sources.
    psf_files : list of str, optional
        FITS PSFs for the ``file`` PSF kind.
    progress : bool
        Show a progress bar (only on a terminal).
    command : str, optional
        The command line stored in the file's ``command`` attribute.
    block_size : int, optional
        Samples simulated per task and written at once (default 4 for one worker, 8
        otherwise); an interruption loses at most the block being made.

    Returns
    -------
    pathlib.Path
        The complete file.

    Raises
    ------
    ValueError
        For bad arguments, checked before any file is created.
    """
    preset = get_preset(preset)
    _split_code(split)
    seed = _check_seed(seed)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n: expected a positive number of samples, got {n!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    n, workers = int(n), int(workers)
    if block_size is not None and (isinstance(block_size, bool) or int(block_size) < 1):
        raise ValueError(f"block_size: expected a positive integer, got {block_size!r}")
    path = validate_output_path(path, overwrite)
    partial = _partial_path(path)
    catalog, subset = _prepare_catalog(source_catalog, split)
    psf_files = [str(p) for p in psf_files] if psf_files else None
    sim = _make_simulator(preset, catalog, psf_files)  # also validates psf_files
    identity = _identity(preset, seed, split, n, catalog, psf_files)
    command = command or _default_command(path, preset, n, split, seed)
    block = int(block_size or (4 if workers == 1 else 8))

    if overwrite and partial.exists():
        partial.unlink()
    h5, start = _open_partial(partial, identity, command)
    try:
        with _progress_bar(n, start, progress, split) as bar:
            if workers == 1 or n - start <= block:
                rows = _serial_rows(sim, seed, split, subset, start, n, block)
            else:
                init = (preset.name, catalog, psf_files, seed, split, subset)
                rows = _parallel_rows(init, start, n, workers, block)
            try:
                for block_rows in rows:
                    _create_datasets(h5, n, block_rows[0])
                    start = _write_rows(h5, start, block_rows)
                    bar.update(len(block_rows))
            finally:
                rows.close()  # stops the worker processes at once on errors
        h5.attrs["complete"] = True
        h5.flush()
    finally:
        h5.close()
    os.replace(partial, path)
    log.info("wrote %d %s samples of preset %r to %s", n, split, preset.name, path)
    return path


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
class H5Dataset:
    """Read access to a complete dataset file, for training and evaluation.

    Parameters
    ----------
    path : str or path-like
        A file written by `generate_dataset`.

    Raises
    ------
    ValueError
        If the file is missing, not HDF5, incomplete or lacks datasets.

    Examples
    --------
    ::

        with open_dataset("train.h5") as data:
            batch = data.read([0, 5, 2], fields=["image", "noise_map", "params"])
            for batch in data.batches(64, shuffle=True, seed=1):
                ...
    """

    def __init__(self, path):
        self.path = Path(os.fspath(path)).expanduser()
        self._h5 = None
        h5 = self._file()
        self.attrs = {k: _attr(v) for k, v in h5.attrs.items()}
        if not bool(self.attrs.get("complete", False)):
            written = self.attrs.get("n_written", "?")
            self.close()
            raise ValueError(
                f"path: {str(self.path)!r} is an unfinished dataset ({written} of "
                f"{self.attrs.get('n', '?')} samples); rerun the simulate command to finish it"
            )
        missing = [name for name in FIELDS if name not in h5]
        if missing:
            self.close()
            raise ValueError(f"path: {str(self.path)!r} lacks dataset(s) {missing}; expected "
                             "a file written by astro_delens.training.dataset")
        self._len = int(h5["image"].shape[0])

    def _file(self):
        if self._h5 is None:
            import h5py

            if not self.path.is_file():
                raise ValueError(f"path: no such file {str(self.path)!r}")
            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as exc:
                raise ValueError(f"path: cannot read {str(self.path)!r} as HDF5 ({exc})") from None
        return self._h5

    # pickling (e.g. to data-loading processes) reopens the file lazily
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_h5"] = None
        return state

    def close(self):
        """Close the file (it is reopened if read again)."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return (f"H5Dataset({str(self.path)!r}, n={len(self)}, preset={self.preset_name!r}, "
                f"split={self.split!r})")

    @property
    def preset_name(self) -> str:
        return self.attrs["preset"]

    @property
    def preset(self):
        """The `~astro_delens.presets.Preset` the file was simulated with."""
        return get_preset(self.preset_name)

    @property
    def split(self) -> str:
        return self.attrs["split"]

    @property
    def seed(self) -> int:
        return int(self.attrs["seed"])

    @property
    def fields(self) -> tuple:
        """Names of the datasets in the file."""
        return tuple(name for name in FIELDS if name in self._file())

    def read(self, indices, fields=None) -> dict:
        """Read samples.

        Parameters
        ----------
        indices : int, slice or array-like of int
            Samples to read, in the order wanted (repeats and negative indices allowed).
        fields : iterable of str, optional
            Datasets to read (default all).

        Returns
        -------
        dict
            ``{field: array}``; string fields come as arrays of `str`.
        """
        fields = self.fields if fields is None else tuple(fields)
        unknown = [f for f in fields if f not in FIELDS]
        if unknown:
            raise ValueError(f"fields: unknown field(s) {unknown}; expected some of {list(FIELDS)}")
        scalar = np.ndim(indices) == 0 and not isinstance(indices, slice)
        if isinstance(indices, slice):
            idx = np.arange(self._len)[indices]
        else:
            idx = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        if idx.size and (idx.min() < -self._len or idx.max() >= self._len):
            raise IndexError(f"indices: expected values in [-{self._len}, {self._len}), got "
                             f"[{idx.min()}, {idx.max()}]")
        idx = np.where(idx < 0, idx + self._len, idx)
        # h5py needs increasing, unique indices: read those, then reorder.
        unique, inverse = np.unique(idx, return_inverse=True)
        h5 = self._file()
        out = {}
        for name in fields:
            ds = h5[name].asstr() if name in STRING_FIELDS else h5[name]
            if unique.size:
                data = np.asarray(ds[unique] if unique.size > 1 else ds[unique[0]:unique[0] + 1])
            else:
                data = np.empty((0,) + h5[name].shape[1:], dtype=h5[name].dtype)
            if name in STRING_FIELDS:
                data = data.astype(str)
            data = data[inverse]
            out[name] = data[0] if scalar else data
        return out

    def batches(self, batch_size, fields=None, shuffle=False, seed=None, drop_last=False):
        """Iterate over the file in batches of ``batch_size`` samples.

        Parameters
        ----------
        batch_size : int
        fields : iterable of str, optional
            Datasets to read (default all).
        shuffle : bool
            Visit the samples in a random order drawn from ``seed``.
        seed : int, optional
        drop_last : bool
            Skip the last, smaller batch.

        Yields
        ------
        dict
            As returned by `read`.
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        order = np.arange(self._len)
        if shuffle:
            order = np.random.default_rng(seed).permutation(self._len)
        for start in range(0, self._len, int(batch_size)):
            chunk = order[start:start + int(batch_size)]
            if drop_last and len(chunk) < int(batch_size):
                return
            yield self.read(chunk, fields)


def open_dataset(path) -> H5Dataset:
    """Open a complete dataset file for reading (see `H5Dataset`)."""
    return H5Dataset(path)
