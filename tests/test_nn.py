"""Tests of astro_delens.nn: normalisation, augmentation, architectures and losses."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from astro_delens import lensmodel
from astro_delens.nn import augment
from astro_delens.nn import normalization as norm

# TensorFlow's variables trip a NumPy 2 DeprecationWarning when Keras saves weights
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


# --------------------------------------------------------------------------
# normalisation (NumPy only)
# --------------------------------------------------------------------------
def test_importing_nn_does_not_import_keras():
    code = ("import sys, astro_delens, astro_delens.nn, astro_delens.nn.normalization, "
            "astro_delens.nn.augment, astro_delens.nn.registry, astro_delens.nn.architectures; "
            "from astro_delens.nn.registry import list_models; list_models(); "
            "astro_delens.nn.architectures.resolve_config('estimator', {'npix': 32}); "
            "bad = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_normalize_inputs_shapes_and_channels():
    rng = np.random.default_rng(1)
    image = rng.normal(0, 0.1, (3, 16, 16))
    image[:, 8, 8] += [5.0, 50.0, 0.5]
    noise = np.full((3, 16, 16), 0.1)
    x, scale = norm.normalize_inputs(image, noise)
    assert x.shape == (3, 16, 16, 2) and x.dtype == np.float32
    assert scale.shape == (3,) and np.all(scale > 0)
    np.testing.assert_allclose(x[..., 0], image / scale[:, None, None], rtol=1e-6)
    np.testing.assert_allclose(x[..., 1], noise / scale[:, None, None], rtol=1e-6)
    # the scale follows the amplitude: a 10x brighter image normalises to the same x
    x10, s10 = norm.normalize_inputs(10 * image, 10 * noise)
    np.testing.assert_allclose(s10, 10 * scale)
    np.testing.assert_allclose(x10, x, rtol=1e-5, atol=1e-6)
    # single image
    x1, s1 = norm.normalize_inputs(image[0], noise[0])
    assert x1.shape == (16, 16, 2) and np.ndim(s1) == 0


def test_normalize_inputs_floor_mask_and_degenerate():
    # pure noise: the scale is floored at NOISE_FLOOR x median noise
    rng = np.random.default_rng(2)
    noise = np.full((32, 32), 1.0)
    _, scale = norm.normalize_inputs(rng.normal(0, 1e-3, (32, 32)), noise)
    assert scale == pytest.approx(norm.NOISE_FLOOR)
    # noise-free presets: zeros in channel 1; empty image: scale 1, never 0
    x, scale = norm.normalize_inputs(np.zeros((8, 8)), np.zeros((8, 8)))
    assert scale == 1.0 and np.all(x == 0)
    x, scale = norm.normalize_inputs(np.ones((8, 8)), None)
    assert np.all(x[..., 1] == 0) and scale == 1.0
    # masked pixels: image 0, noise MASKED_NOISE, and they do not set the scale
    image = np.ones((8, 8))
    image[0, 0] = 1e6
    mask = np.zeros((8, 8), bool)
    mask[0, 0] = True
    x, scale = norm.normalize_inputs(image, np.full((8, 8), 0.1), mask)
    assert scale == pytest.approx(1.0)
    assert x[0, 0, 0] == 0 and x[0, 0, 1] == norm.MASKED_NOISE
    # non-finite pixels count as masked
    image[0, 0] = np.nan
    x, scale = norm.normalize_inputs(image, np.full((8, 8), 0.1))
    assert np.all(np.isfinite(x)) and x[0, 0, 1] == norm.MASKED_NOISE
    # a mask broadcast over a batch
    x, _ = norm.normalize_inputs(np.ones((2, 8, 8)), np.ones((2, 8, 8)), mask)
    assert np.all(x[:, 0, 0, 1] == norm.MASKED_NOISE)
    with pytest.raises(ValueError, match="noise_map"):
        norm.normalize_inputs(np.ones((8, 8)), np.ones((7, 7)))
    with pytest.raises(ValueError, match="mask"):
        norm.normalize_inputs(np.ones((8, 8)), np.ones((8, 8)), np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="image"):
        norm.normalize_inputs(np.ones(8), np.ones(8))


def test_source_and_param_round_trips():
    rng = np.random.default_rng(3)
    scale = np.array([2.0, 0.5])
    src = rng.random((2, 6, 6))
    s = norm.normalize_source(src, scale)
    np.testing.assert_allclose(s, src / scale[:, None, None], rtol=1e-6)
    np.testing.assert_allclose(norm.denormalize_source(s, scale), src, rtol=1e-6)
    stats = norm.param_stats("survey")
    mean, std = lensmodel.prior_moments("survey")
    np.testing.assert_allclose(stats["mean"], mean)
    p = lensmodel.sample_parameters("survey", rng, 500)
    z = norm.normalize_params(p, stats)
    assert np.all(np.abs(z.mean(axis=0)) < 0.2) and np.all(np.abs(z.std(axis=0) - 1) < 0.2)
    np.testing.assert_allclose(norm.denormalize_params(z, stats), p, rtol=1e-5, atol=1e-7)
    json.dumps(stats)
    with pytest.raises(ValueError, match="stats"):
        norm.normalize_params(p, {"mean": [0.0] * 8})
    with pytest.raises(ValueError, match="params"):
        norm.normalize_params(p[:, :3], stats)


# --------------------------------------------------------------------------
# augmentation
# --------------------------------------------------------------------------
def _lenstronomy_renderer(n=40, d=0.1):
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel
    from lenstronomy.Util.simulation_util import data_configure_simple

    # inverse=True: column 0 is the eastern edge, x grows to the east (lensmodel's convention)
    data = ImageData(**data_configure_simple(n, d, inverse=True))
    model = ImageModel(data, PSF(psf_type="NONE"),
                       lens_model_class=LensModel(list(lensmodel.LENS_MODEL_LIST)),
                       source_model_class=LightModel(["GAUSSIAN_ELLIPSE"]),
                       kwargs_numerics={"supersampling_factor": 1})
    light = LightModel(["GAUSSIAN_ELLIPSE"])

    def render(p, src):
        return model.image(kwargs_lens=lensmodel.to_lenstronomy_kwargs(p), kwargs_source=[src],
                           unconvolved=True)

    def source_target(p, src, ns=24, ds=0.05):
        # the source on a grid centred on the lens centre (as the source target)
        i, j = np.meshgrid(np.arange(ns), np.arange(ns))
        x, y = lensmodel.pixel_to_angle(i, j, ns, ds)
        return light.surface_brightness(x + p[4], y + p[5], [src])

    return render, source_target


@pytest.mark.parametrize("k,flip", [(k, f) for k in range(4) for f in (False, True)])
def test_augmentation_matches_resimulation(k, flip):
    """np.rot90/np.fliplr of a lenstronomy image == the image of the transformed parameters."""
    render, source_target = _lenstronomy_renderer()
    p = np.array([1.1, 2.1, 0.12, -0.07, 0.15, -0.08, 0.04, 0.03])
    src = dict(amp=10.0, sigma=0.15, e1=0.2, e2=0.1, center_x=0.1, center_y=0.05)
    image = render(p, src)
    q = augment.transform_params(p, k, flip)
    # the source (absolute position and its own ellipticity) transforms the same way
    sp = augment.transform_params([0, 0, src["e1"], src["e2"], src["center_x"],
                                   src["center_y"], 0, 0], k, flip)
    src_q = dict(amp=10.0, sigma=0.15, e1=sp[2], e2=sp[3], center_x=sp[4], center_y=sp[5])
    expected = render(q, src_q)
    got = augment.transform_image(image, k, flip)
    assert np.max(np.abs(got - expected)) < 1e-9 * np.max(image)
    if (k, flip) != (0, False):  # the test is not trivial
        assert np.max(np.abs(got - image)) > 0.1 * np.max(image)
    # the source target (grid centred on the lens centre) follows the same array operation
    np.testing.assert_allclose(augment.transform_image(source_target(p, src), k, flip),
                               source_target(q, src_q), atol=1e-9 * 10)


def test_augment_batch_consistent_and_reproducible():
    rng = np.random.default_rng(0)
    n = 16
    images = rng.random((n, 6, 6))
    params = lensmodel.sample_parameters("survey", rng, n)
    (a, b), p = augment.augment_batch(np.random.default_rng(5), [images, images * 2], params)
    (a2, _), p2 = augment.augment_batch(np.random.default_rng(5), [images, None], params)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(p, p2)
    np.testing.assert_array_equal(b, 2 * a)
    ks, flips = augment.random_transforms(np.random.default_rng(5), n)
    for i in range(n):
        np.testing.assert_array_equal(a[i], augment.transform_image(images[i], ks[i], flips[i]))
        np.testing.assert_allclose(p[i], augment.transform_params(params[i], ks[i], flips[i]))
    # theta_E and gamma are invariant; the symmetry group has 8 distinct elements
    np.testing.assert_array_equal(p[:, :2], params[:, :2])
    img = np.arange(16.0).reshape(4, 4)
    assert len({augment.transform_image(img, k, f).tobytes()
                for k in range(4) for f in (False, True)}) == 8
    masks = augment.random_masks(np.random.default_rng(1), 50, 16, probability=0.5)
    assert masks.shape == (50, 16, 16) and 5 < masks.any(axis=(1, 2)).sum() < 45
    assert not augment.random_masks(rng, 3, 16).any()
    # small fields mask the border and keep the centre; neighbours are discs inside
    small = augment.random_masks(np.random.default_rng(2), 20, 64, probability=1.0,
                                 border_fraction=1.0)
    edge_rows = np.concatenate([small[:, [0, -1], :], small[:, :, [0, -1]].transpose(0, 2, 1)],
                               axis=1)
    assert np.all(edge_rows.all(axis=2).any(axis=1))  # a whole edge masked in every mask
    assert small[:, 28:36, 28:36].mean() < 0.01
    discs = augment.random_masks(np.random.default_rng(3), 20, 64, probability=1.0,
                                 border_fraction=0.0)
    assert np.all(discs.any(axis=(1, 2))) and discs.mean() < 0.1


# --------------------------------------------------------------------------
# architectures and losses (Keras)
# --------------------------------------------------------------------------
keras = pytest.importorskip("keras")


def test_tiny_networks_shapes():
    from astro_delens.nn import architectures as arch

    est = arch.build_estimator(dict(arch.TINY_ESTIMATOR, npix=32))
    x = np.random.default_rng(0).random((3, 32, 32, 2)).astype("float32")
    y = keras.ops.convert_to_numpy(est(x, training=False))
    assert y.shape == (3, 16)
    s = y[:, 8:]
    assert np.all(s >= -14) and np.all(s <= 6)
    rec = arch.build_reconstructor(dict(arch.TINY_RECONSTRUCTOR, npix=32, source_npix=32))
    assert rec(x, training=False).shape == (3, 32, 32, 1)


def test_default_sizes_and_config_errors():
    from astro_delens.nn import architectures as arch

    est = arch.build_estimator({"npix": 96})
    rec = arch.build_reconstructor({"npix": 96, "source_npix": 96})
    assert 0.5e6 < est.count_params() < 1.5e6
    assert 0.5e6 < rec.count_params() < 2.0e6
    assert est.output_shape == (None, 16)
    assert rec.output_shape == (None, 96, 96, 1)
    with pytest.raises(ValueError, match="source_npix"):
        arch.build_reconstructor({"npix": 64, "source_npix": 32})
    with pytest.raises(ValueError, match="unknown"):
        arch.build_estimator({"npix": 64, "wdths": [8]})
    with pytest.raises(ValueError, match="npix"):
        arch.build_estimator({})
    with pytest.raises(ValueError, match="divisible"):
        arch.build_reconstructor({"npix": 36, "depth": 4})
    with pytest.raises(ValueError, match="kind"):
        arch.build_model("decoder", {"npix": 32})


def test_spatial_soft_argmax_finds_the_peak():
    from astro_delens.nn.layers import SpatialSoftArgmax

    h, w = 12, 16
    maps = np.zeros((2, h, w, 3), "float32")
    maps[0, 3, 10, 0] = 50.0   # a sharp peak at row 3, column 10
    maps[0, 5:7, 0:2, 1] = 50.0  # a 2x2 block: its mean position
    maps[1, 0, 0, 2] = 50.0
    out = keras.ops.convert_to_numpy(SpatialSoftArgmax()(maps))
    assert out.shape == (2, 6)
    u, v = np.linspace(-1, 1, w), np.linspace(-1, 1, h)
    np.testing.assert_allclose(out[0, [0, 3]], [u[10], v[3]], atol=1e-5)
    np.testing.assert_allclose(out[0, [1, 4]], [u[0:2].mean(), v[5:7].mean()], atol=1e-5)
    # a flat map: the centre of the grid
    np.testing.assert_allclose(out[0, [2, 5]], [0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(out[1, [2, 5]], [-1.0, -1.0], atol=1e-5)


def test_keypoint_branch_and_growth_from_a_trained_network():
    from astro_delens.nn import architectures as arch
    from astro_delens.nn.transfer import transfer_weights

    small = arch.build_estimator(dict(arch.TINY_ESTIMATOR, npix=32))
    rng = np.random.default_rng(5)
    small.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype)
                       for w in small.get_weights()])
    grown = arch.build_estimator(dict(arch.TINY_ESTIMATOR, npix=32, keypoints=4))
    assert grown.get_layer("keypoints").output.shape == (None, 8)
    assert grown.get_layer("keypoint_maps").output.shape == (None, 16, 16, 4)  # stage -2
    assert transfer_weights(small, grown) == ["keypoint_maps"]
    x = rng.random((3, 32, 32, 2)).astype("float32")
    # the new head rows start at zero: the grown network computes what the trained one did
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grown(x, training=False)),
                               keras.ops.convert_to_numpy(small(x, training=False)), atol=1e-6)
    head = grown.get_layer("head").get_weights()[0]
    assert head.shape[0] == small.get_layer("head").get_weights()[0].shape[0] + 8
    assert np.all(head[-8:] == 0)
    # weights that cannot grow are refused
    other = arch.build_estimator(dict(arch.TINY_ESTIMATOR, npix=32, head_units=7))
    with pytest.raises(ValueError, match="head"):
        transfer_weights(small, other)
    with pytest.raises(ValueError, match="keypoints_stage"):
        arch.resolve_config("estimator", {"npix": 32, "keypoints": 2, "keypoints_stage": 4})
    with pytest.raises(ValueError, match="keypoints"):
        arch.resolve_config("estimator", {"npix": 32, "keypoints": -1})


def test_recentre_puts_the_given_lens_centre_on_the_grid_centre():
    from astro_delens.nn.architectures import cascade_geometry
    from astro_delens.nn.layers import Recentre

    npix, scale = 32, 0.1
    stats = {"mean": [1.0, 2.0, 0.0, 0.0, 0.05, -0.02, 0.0, 0.0], "std": [0.2] * 8}
    x, y = 0.35, -0.25  # arcsec, x east, y north: 3.5 columns east (left), 2.5 rows south
    col, row = lensmodel.angle_to_pixel(x, y, npix, scale)
    image = np.zeros((1, npix, npix, 2), "float32")
    r, c = int(round(row)), int(round(col))
    assert (r, c) == (row, col)  # a 3x3 block centred on the lens
    image[0, r - 1:r + 2, c - 1:c + 2, 0] = 1.0
    raw = np.zeros((1, 16), "float32")
    raw[0, 4], raw[0, 5] = (x - 0.05) / 0.2, (y + 0.02) / 0.2
    out = keras.ops.convert_to_numpy(Recentre(**cascade_geometry(stats, scale))([image, raw]))
    rows, cols = np.indices((npix, npix))
    w = out[0, :, :, 0]
    centroid = (np.sum(w * cols) / w.sum(), np.sum(w * rows) / w.sum())
    np.testing.assert_allclose(centroid, ((npix - 1) / 2, (npix - 1) / 2), atol=1e-4)
    np.testing.assert_allclose(w.sum(), 9.0, atol=1e-4)


def test_cascade_grows_from_a_trained_network_and_starts_from_its_answers(tmp_path):
    from astro_delens.nn import architectures as arch
    from astro_delens.nn.transfer import transfer_weights

    config = dict(arch.TINY_ESTIMATOR, npix=32, keypoints=2)
    first = arch.build_estimator(config)
    rng = np.random.default_rng(6)
    first.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype)
                       for w in first.get_weights()])
    geometry = arch.cascade_geometry({"mean": [0.0] * 8, "std": [0.2] * 8}, 0.1)
    cascade = arch.build_estimator(dict(config, cascade=geometry))
    assert transfer_weights(first, cascade) == ["cascade_delta"]
    # the second network starts as a copy of the first, its head reading the first's answer
    np.testing.assert_array_equal(cascade.get_layer("cascade_stem_conv").get_weights()[0],
                                  first.get_layer("stem_conv").get_weights()[0])
    head = cascade.get_layer("cascade_head").get_weights()[0]
    assert head.shape[0] == first.get_layer("head").get_weights()[0].shape[0] + 16
    assert np.all(head[-16:] == 0)
    # only the second network trains, and at first the cascade answers as the first network
    assert all(w.path.startswith("cascade_") for w in cascade.trainable_weights)
    assert cascade.trainable_weights
    x = rng.random((3, 32, 32, 2)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(cascade(x, training=False)),
                               keras.ops.convert_to_numpy(first(x, training=False)), atol=1e-6)
    # once the correction is not zero, a weights round trip keeps the answers
    delta = cascade.get_layer("cascade_delta")
    delta.set_weights([rng.normal(0, 0.1, w.shape).astype(w.dtype)
                       for w in delta.get_weights()])
    path = str(tmp_path / "cascade.weights.h5")
    cascade.save_weights(path)
    again = arch.build_estimator(dict(config, cascade=geometry))
    again.load_weights(path)
    a = keras.ops.convert_to_numpy(cascade(x, training=False))
    assert np.abs(a - keras.ops.convert_to_numpy(first(x, training=False))).max() > 1e-3
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again(x, training=False)), a)
    with pytest.raises(ValueError, match="cascade"):
        arch.resolve_config("estimator", {"npix": 32, "cascade": {"index": [4, 5]}})
    with pytest.raises(ValueError, match="unresolved"):
        arch.build_estimator(dict(config, cascade=True))


def test_gaussian_nll_matches_numpy():
    from astro_delens.nn.losses import GaussianNLL, mean_mse

    rng = np.random.default_rng(0)
    y = rng.normal(size=(5, 8)).astype("float32")
    pred = rng.normal(size=(5, 16)).astype("float32")
    mu, s = pred[:, :8], pred[:, 8:]
    expected = np.mean(0.5 * (np.exp(-s) * (y - mu) ** 2 + s))
    got = float(keras.ops.convert_to_numpy(GaussianNLL(beta=0.0)(y, pred)))
    assert got == pytest.approx(expected, rel=1e-5)
    weighted = np.mean(0.5 * (np.exp(-s) * (y - mu) ** 2 + s) * np.exp(0.5 * s))
    got = float(keras.ops.convert_to_numpy(GaussianNLL(beta=0.5)(y, pred)))
    assert got == pytest.approx(weighted, rel=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(mean_mse(y, pred)),
                               np.mean((y - mu) ** 2, axis=-1), rtol=1e-5)
    with pytest.raises(ValueError, match="beta"):
        GaussianNLL(beta=2.0)


def test_gaussian_nll_weights_each_parameter_and_round_trips_its_config():
    from astro_delens.nn.losses import GaussianNLL

    rng = np.random.default_rng(1)
    y = rng.normal(size=(5, 8)).astype("float32")
    pred = rng.normal(size=(5, 16)).astype("float32")
    mu, s = pred[:, :8], pred[:, 8:]
    c = np.array([0.5, 1, 2, 2, 0.5, 0.5, 1, 1])
    expected = np.mean(0.5 * (np.exp(-s) * (y - mu) ** 2 + s) * np.exp(0.5 * s) * c)
    loss = GaussianNLL(beta=0.5, weights=c)
    assert float(keras.ops.convert_to_numpy(loss(y, pred))) == pytest.approx(expected, rel=1e-5)
    again = GaussianNLL.from_config(loss.get_config())
    assert again.weights == list(c) and again.beta == 0.5
    assert "weights" not in GaussianNLL().get_config()
    with pytest.raises(ValueError, match="weights"):
        GaussianNLL(weights=[1, 0, 1])
    with pytest.raises(ValueError, match="weights: expected 8 values"):
        GaussianNLL(weights=[1, 2, 3])(y, pred)


def test_source_loss_and_ssim():
    from astro_delens.nn.losses import SourceLoss, ssim

    rng = np.random.default_rng(0)
    t = rng.random((4, 24, 24, 1)).astype("float32")
    loss = SourceLoss(alpha=0.5)
    assert float(keras.ops.convert_to_numpy(loss(t, t))) == pytest.approx(0.0, abs=1e-5)
    worse = float(keras.ops.convert_to_numpy(loss(t, t + rng.normal(0, 0.3, t.shape))))
    assert worse > 0.1
    # relative: the loss does not depend on the overall amplitude
    p = t + rng.normal(0, 0.1, t.shape).astype("float32")
    a = float(keras.ops.convert_to_numpy(loss(t, p)))
    b = float(keras.ops.convert_to_numpy(loss(0.01 * t, 0.01 * p)))
    assert a == pytest.approx(b, rel=1e-3)
    # the keras.ops fallback SSIM agrees with keras.ops.image.ssim (Keras versions that have it)
    if hasattr(keras.ops.image, "ssim"):
        ours = keras.ops.convert_to_numpy(ssim(t, p, 1.0))
        ref = keras.ops.convert_to_numpy(keras.ops.image.ssim(t, p, max_val=1.0))
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


def test_custom_objects_are_registered_and_serialise():
    from astro_delens.nn import layers, losses

    for obj in (losses.GaussianNLL, losses.SourceLoss, layers.InputFeatures,
                layers.GaussianHead, layers.SpatialSoftArgmax):
        assert keras.saving.get_registered_name(obj).startswith("astro_delens>")
    loss = losses.SourceLoss(alpha=0.3, relative=False)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert again.alpha == 0.3 and again.relative is False
    head = layers.GaussianHead(8, -5.0, 3.0)
    assert layers.GaussianHead.from_config(head.get_config()).logvar_min == -5.0


def test_weights_round_trip_identical_predictions(tmp_path):
    from astro_delens.nn import architectures as arch

    x = np.random.default_rng(1).random((4, 32, 32, 2)).astype("float32")
    for kind, cfg in (("estimator", arch.TINY_ESTIMATOR),
                      ("reconstructor", arch.TINY_RECONSTRUCTOR)):
        keras.utils.set_random_seed(3)
        model = arch.build_model(kind, dict(cfg, npix=32))
        # perturb every weight (batch-norm statistics too) away from its initial value
        rng = np.random.default_rng(4)
        model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) ** 2
                           for w in model.get_weights()])
        path = tmp_path / f"{kind}.weights.h5"
        model.save_weights(str(path))
        clone = arch.build_model(kind, dict(cfg, npix=32))
        clone.load_weights(str(path))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)),
                                      keras.ops.convert_to_numpy(clone(x, training=False)))


def test_jax_backend_builds_and_predicts(tmp_path):
    pytest.importorskip("jax")
    code = (
        "import numpy as np, keras; assert keras.backend.backend() == 'jax'\n"
        "from astro_delens.nn import architectures as a\n"
        "m = a.build_estimator(dict(a.TINY_ESTIMATOR, npix=32, keypoints=2))\n"
        "r = a.build_reconstructor(dict(a.TINY_RECONSTRUCTOR, npix=32))\n"
        "x = np.ones((2, 32, 32, 2), 'float32')\n"
        "assert m(x).shape == (2, 16) and r(x).shape == (2, 32, 32, 1)\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
