"""The batch engine: many inputs -> prepared cutouts -> network batches -> results.

One loop serves `LensParameterEstimator.predict_many`,
`SourceReconstructor.reconstruct_many` and the ``predict`` and ``reconstruct``
commands, in one process or on Dask workers (`astro_delens.parallel`). Inputs
are streamed in chunks: each input of a chunk is prepared on its own (one bad
input is recorded as a failure and never stops the batch), the chunk's
prepared cutouts go through the networks together, and an `Outcome` per input
is yielded in input order before the next chunk is read, so memory does not
grow with the number of inputs.

Examples
--------
>>> from astro_delens.batch import make_items, run
>>> def prepare(item):
...     return float(item.data)
>>> def process(prepared, items):  # the networks would run here, on the whole chunk
...     return [2 * p for p in prepared]
>>> outcomes = run(make_items([1.0, "two", 3.0]), prepare, process, on_error="skip")
>>> [o.result if o.ok else o.error for o in outcomes]
[2.0, "ValueError: could not convert string to float: 'two'", 6.0]
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from dataclasses import dataclass, field

__all__ = ["Item", "Outcome", "iter_items", "make_items", "input_name", "check_keywords",
           "show_progress", "run", "warn_failures", "CHUNK_SIZE"]

#: Inputs prepared and sent through the networks together.
CHUNK_SIZE = 128


@dataclass(frozen=True)
class Item:
    """One input of a batch: its position, name, data and own keyword arguments."""

    index: int
    name: str
    data: object
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What became of one `Item`: ``result`` or, when it failed, ``error`` ("Type: message")."""

    item: Item
    result: object = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def input_name(data, index) -> str:
    """A file's name, or the type and position of an in-memory input."""
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    return f"{type(data).__name__}[{index}]"


def _split(entry):
    """``data`` or ``(data, {keywords})`` -> (data, keywords)."""
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], dict):
        return entry[0], dict(entry[1])
    return entry, {}


def iter_items(inputs, names=None, accepted=None, **shared):
    """`Item` objects from user inputs, one at a time (the inputs are not held in memory).

    Parameters
    ----------
    inputs : iterable
        Each entry is the data, or a pair ``(data, {keyword: value})`` whose
        keywords apply to that input only.
    names : sequence of str, optional
        One name per input (default: `input_name`).
    accepted : sequence of str, optional
        The keyword names allowed; others raise `TypeError`.
    **shared
        Keywords applied to every input (an input's own ones take precedence).
    """
    check_keywords(shared, accepted)
    if names is not None:
        names = [str(n) for n in names]
        if hasattr(inputs, "__len__") and len(names) != len(inputs):
            raise ValueError(f"names: {len(names)} names for {len(inputs)} inputs")
    index = -1
    for index, entry in enumerate(inputs):
        data, own = _split(entry)
        check_keywords(own, accepted)
        if names is not None and index >= len(names):
            raise ValueError(f"names: {len(names)} names for more than {len(names)} inputs")
        name = names[index] if names is not None else input_name(data, index)
        yield Item(index, name, data, {**shared, **own})
    if names is not None and index + 1 != len(names):
        raise ValueError(f"names: {len(names)} names for {index + 1} inputs")


def make_items(inputs, names=None, accepted=None, **shared) -> list:
    """`iter_items` as a list (all keyword and name errors raised at once)."""
    return list(iter_items(inputs, names, accepted, **shared))


def check_keywords(kwargs, accepted):
    """Raise `TypeError` for keyword names outside ``accepted`` (None: anything goes)."""
    if accepted is None:
        return
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {unknown}; accepted: {list(accepted)}")


def show_progress(progress) -> bool:
    """``progress`` as a bool; None means the ``progress`` setting (`astro_delens.config`)."""
    if progress is not None:
        return bool(progress)
    from .config import conf

    setting = conf.progress
    return sys.stderr.isatty() if setting == "auto" else setting == "always"


def warn_failures(on_error, iterate):
    """Outcomes of ``iterate(on_error)`` for the ``*_many`` methods of the public classes.

    ``on_error`` is theirs ("raise" or "warn"); with "warn", each failed
    input gives an `~astro_delens.exceptions.AstroDelensWarning` naming it.
    """
    import warnings

    from .exceptions import AstroDelensWarning

    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error: expected 'raise' or 'warn', got {on_error!r}")
    for outcome in iterate("skip" if on_error == "warn" else "raise"):
        if not outcome.ok:
            warnings.warn(AstroDelensWarning(f"{outcome.item.name}: skipped ({outcome.error})"),
                          stacklevel=3)
        yield outcome


def _failure(exc) -> str:
    return f"{type(exc).__name__}: {exc}"


def run(items, prepare, process, *, chunk_size=CHUNK_SIZE, on_error="raise", progress=False,
        desc="preparing", context=None, total=None):
    """Prepare and process ``items`` chunk by chunk; yield one `Outcome` per item, in order.

    Parameters
    ----------
    items : iterable of `Item`
        Consumed a chunk at a time (a generator is never held in memory whole).
    prepare : callable
        ``prepare(item)`` -> the prepared input (e.g. a `~astro_delens.cutout.PreparedCutout`).
    process : callable
        ``process(prepared_list, item_list)`` -> one result per prepared input
        (the networks run here, on the whole chunk).
    chunk_size : int
    on_error : {"raise", "skip"}
        What a failing ``prepare`` does: raise, or give an `Outcome` with ``error``.
    progress : bool
        Show a progress bar over the items (tqdm, on stderr).
    desc : str
        The progress bar's label.
    context : callable, optional
        ``context(name)`` -> a context manager entered around the preparation of
        each item (``name`` is its name) and around each chunk's processing
        (``name`` None); for example to collect the warnings of each input.
    total : int, optional
        The number of items, for the progress bar (default: ``len(items)`` when known).
    """
    from tqdm.auto import tqdm

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size: expected a positive integer, got {chunk_size!r}")
    context = context or (lambda name: contextlib.nullcontext())
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    stream = iter(items)
    with tqdm(total=total, disable=not progress, desc=desc, unit="input",
              file=sys.stderr) as bar:
        while chunk := list(itertools.islice(stream, int(chunk_size))):
            prepared, errors = {}, {}
            for item in chunk:
                with context(item.name):
                    try:
                        prepared[item.index] = prepare(item)
                    except Exception as exc:  # one bad input never stops the batch
                        if on_error == "raise":
                            raise
                        errors[item.index] = _failure(exc)
                bar.update(1)
            good = [item for item in chunk if item.index in prepared]
            results = {}
            if good:
                with context(None):
                    out = process([prepared[item.index] for item in good], good)
                results = {item.index: r for item, r in zip(good, out)}
            for item in chunk:
                yield Outcome(item, results.get(item.index), errors.get(item.index))
