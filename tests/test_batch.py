"""Tests of the batch engine (astro_delens.batch) and the streaming forms of the public classes."""

import contextlib
import warnings

import numpy as np
import pytest

import astropy.units as u

from astro_delens import LensParameterEstimator, SourceReconstructor
from astro_delens.batch import Item, iter_items, make_items, run
from astro_delens.data import example_path
from astro_delens.exceptions import AstroDelensWarning


def _double(items_seen):
    def process(prepared, items):
        items_seen.append([item.index for item in items])
        return [2 * p for p in prepared]
    return process


def _parse(item):
    return float(item.data)


def test_outcomes_come_in_input_order_chunk_by_chunk():
    seen = []
    items = make_items(["1", "x", "3", "4", "y", "6", "7"])
    outcomes = list(run(items, _parse, _double(seen), chunk_size=3, on_error="skip"))
    assert [o.item.index for o in outcomes] == list(range(7))
    assert [o.result for o in outcomes] == [2.0, None, 6.0, 8.0, None, 12.0, 14.0]
    assert [o.ok for o in outcomes] == [True, False, True, True, False, True, True]
    assert outcomes[1].error.startswith("ValueError: could not convert")
    # each chunk is processed once, without its failures
    assert seen == [[0, 2], [3, 5], [6]]


def test_errors_raise_unless_skipped_and_bad_settings_are_named():
    items = make_items(["1", "x"])
    with pytest.raises(ValueError, match="could not convert"):
        list(run(items, _parse, _double([])))
    with pytest.raises(ValueError, match="on_error"):
        list(run(items, _parse, _double([]), on_error="warn"))
    with pytest.raises(ValueError, match="chunk_size"):
        list(run(items, _parse, _double([]), chunk_size=0))


def test_a_chunk_of_failures_is_not_processed():
    seen = []
    outcomes = list(run(make_items(["x", "y"]), _parse, _double(seen), on_error="skip"))
    assert seen == [] and not any(o.ok for o in outcomes)


def test_a_generator_is_consumed_a_chunk_at_a_time():
    pulled = []

    def inputs():
        for k in range(5):
            pulled.append(k)
            yield str(k)

    stream = run(iter_items(inputs()), _parse, _double([]), chunk_size=2)
    first = next(stream)
    assert first.result == 0.0 and pulled == [0, 1]  # only the first chunk was read
    assert [o.result for o in stream] == [2.0, 4.0, 6.0, 8.0]
    with pytest.raises(ValueError, match="names: 2 names for more than 2 inputs"):
        list(iter_items((x for x in "abc"), names=["a", "b"]))


def test_context_wraps_each_preparation_and_each_chunk():
    entered = []

    @contextlib.contextmanager
    def context(name):
        entered.append(name)
        yield

    list(run(make_items(["1", "2", "3"], names=["a", "b", "c"]), _parse, _double([]),
             chunk_size=2, context=context))
    assert entered == ["a", "b", None, "c", None]


def test_items_take_names_and_keywords():
    items = make_items(["f.fits", ("g.fits", {"size": 3}), (np.zeros(2), {})], size=5, hdu=1)
    assert [i.name for i in items] == ["f.fits", "g.fits", "ndarray[2]"]
    assert items[0].kwargs == {"size": 5, "hdu": 1}
    assert items[1].kwargs == {"size": 3, "hdu": 1}  # an input's own keywords win
    assert isinstance(items[0], Item)
    with pytest.raises(ValueError, match="names: 1 names for 3 inputs"):
        make_items(["a", "b", "c"], names=["x"])
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['sise'\]"):
        make_items([("a", {"sise": 1})], accepted=("size",))
    with pytest.raises(TypeError, match="sise"):
        make_items(["a"], accepted=("size",), sise=1)


# --------------------------------------------------------------------------
# the public classes on the engine
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def family(tmp_path_factory):
    pytest.importorskip("keras")
    from astro_delens.data._devtools import make_untrained_family

    return make_untrained_family(tmp_path_factory.mktemp("models") / "tiny")


def _inputs():
    from astropy.io import fits

    image = fits.getdata(example_path(), "SCI")
    return [example_path(), "missing.fits", (image, {"pixel_scale": 0.1 * u.arcsec})] * 3


def test_iter_predict_streams_the_same_estimates_as_predict(family):
    est = LensParameterEstimator(family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroDelensWarning)
        outcomes = list(est.iter_predict(_inputs(), on_error="skip"))
        single = est.predict(example_path())
        table = est.predict_many(_inputs(), on_error="warn")
    assert [o.ok for o in outcomes] == [True, False, True] * 3
    first = outcomes[0].result
    assert first.prepared.image is None and first.prepared.wcs is not None  # no arrays kept
    np.testing.assert_allclose(first.mean, single.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table["theta_E"].value[::3], single.mean[0], rtol=1e-5)


def test_iter_reconstruct_gives_sources_and_failures(family):
    rec = SourceReconstructor(family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroDelensWarning)
        outcomes = list(rec.iter_reconstruct(_inputs()[:3], on_error="skip", check=False))
        many = rec.reconstruct_many(_inputs()[:3], on_error="warn", check=False)
    assert [o.ok for o in outcomes] == [True, False, True]
    assert many[1] is None
    np.testing.assert_allclose(outcomes[0].result.data, many[0].data, rtol=1e-5, atol=1e-12)


def test_compiled_network_batches_match_the_plain_call(family):
    """Padding the last batch to a power of two does not change any answer."""
    from astro_delens.nn.registry import load_estimator

    loaded = load_estimator(family / "estimator")
    n = loaded.preset.npix
    x = np.random.default_rng(1).normal(size=(11, n, n, 2)).astype("float32")
    plain = np.asarray(loaded.model(x, training=False))
    for batch_size in (4, 5, 16):
        np.testing.assert_allclose(loaded._run(x, batch_size), plain, rtol=1e-4, atol=1e-5)


def test_settings_give_the_defaults_of_the_public_classes(family, monkeypatch):
    from astro_delens.batch import show_progress
    from astro_delens.config import conf

    with conf.set_temp("symmetries", 4), conf.set_temp("estimator_batch_size", 16), \
            conf.set_temp("reconstructor_batch_size", 8):
        est = LensParameterEstimator(family)
        rec = SourceReconstructor(family)
        assert (est.symmetries, est.batch_size) == (4, 16)
        assert (rec.symmetries, rec.batch_size, rec.estimator.symmetries) == (4, 8, 4)
        assert LensParameterEstimator(family, symmetries=1, batch_size=2).symmetries == 1
    assert LensParameterEstimator(family).symmetries == 8
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert show_progress(None) is False and show_progress(True) is True
    with conf.set_temp("progress", "always"):
        assert show_progress(None) is True and show_progress(False) is False
    with conf.set_temp("progress", "never"):
        assert show_progress(None) is False
