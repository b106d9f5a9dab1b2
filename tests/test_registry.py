"""Tests of astro_delens.nn.registry and the ``astro-delens models`` command."""

import json
import time

import numpy as np
import pytest

from astro_delens.presets import Preset, get_preset

keras = pytest.importorskip("keras")

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

PRESET = Preset(name="survey", npix=32, pixel_scale=0.1, source_npix=32,
                source_pixel_scale=0.05, source_reference_fwhm=0.1, supersampling=1,
                noise=True)


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A family directory with tiny, randomly initialised estimator and reconstructor."""
    from astro_delens.nn import architectures as arch
    from astro_delens.nn.registry import save_model_dir

    root = tmp_path_factory.mktemp("models")
    fam = root / "tinyfam"
    keras.utils.set_random_seed(0)
    for kind, cfg in (("estimator", arch.TINY_ESTIMATOR),
                      ("reconstructor", arch.TINY_RECONSTRUCTOR)):
        cfg = dict(cfg, npix=32)
        save_model_dir(fam / kind, kind, arch.build_model(kind, cfg), cfg, PRESET,
                       card=f"# tiny {kind}\n\nfor tests\n")
    return fam


def _images(n=3):
    rng = np.random.default_rng(0)
    return rng.random((n, 32, 32)), np.full((n, 32, 32), 0.05)


def test_load_and_predict(family):
    from astro_delens.nn import normalization as norm
    from astro_delens.nn.registry import load_estimator, load_reconstructor

    t0 = time.perf_counter()
    est = load_estimator(family / "estimator")
    assert time.perf_counter() - t0 < 2.0
    assert est.name == "tinyfam" and est.preset.npix == 32 and est.version
    assert set(est.sha256) == {"config.json", "model.weights.h5", "card.md"}
    assert est.card["markdown"].startswith("# tiny estimator")
    image, noise = _images()
    mean, std = est.predict(image, noise, batch_size=2)
    assert mean.shape == std.shape == (3, 8) and np.all(std > 0)
    # the same as running the network on the normalised input by hand
    x, _ = norm.normalize_inputs(image, noise)
    raw = keras.ops.convert_to_numpy(est.model(x, training=False))
    np.testing.assert_allclose(mean, norm.denormalize_params(raw[:, :8], est.stats), rtol=1e-5)
    m1, s1 = est.predict(image[0], noise[0])
    assert m1.shape == (1, 8)
    np.testing.assert_allclose(m1[0], mean[0], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="image"):
        est.predict(np.ones((2, 30, 30)), np.ones((2, 30, 30)))
    with pytest.raises(ValueError, match="batch_size"):
        est.predict(image, noise, batch_size=0)

    rec = load_reconstructor(family)  # a family directory works too
    src = rec.predict(image, noise)
    assert src.shape == (3, 32, 32) and src.dtype == np.float32
    # the source scales with the image (the normalisation is undone)
    np.testing.assert_allclose(rec.predict(10 * image, 10 * noise), 10 * src, rtol=1e-3,
                               atol=1e-5 * np.abs(src).max())
    with pytest.raises(ValueError, match="not a estimator|not a reconstructor"):
        load_reconstructor(family / "estimator")


def test_checksum_catches_a_flipped_byte(family, tmp_path):
    import shutil

    from astro_delens.nn.registry import ChecksumError, load_estimator, verify_checksums

    d = tmp_path / "est"
    shutil.copytree(family / "estimator", d)
    verify_checksums(d)
    weights = d / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="model.weights.h5: SHA-256 mismatch"):
        load_estimator(d)
    (d / "SHA256SUMS").unlink()
    with pytest.raises(ChecksumError, match="no SHA256SUMS"):
        load_estimator(d)


def test_shipped_names_and_list_models(family, monkeypatch, capsys):
    from astro_delens.cli import main
    from astro_delens.nn import registry

    monkeypatch.setattr(registry, "MODELS_DIR", family.parent)
    assert registry.shipped_families() == ["tinyfam"]
    est = registry.load_estimator("tinyfam")
    assert est.name == "tinyfam"
    with pytest.raises(registry.ModelNotFoundError, match="tinyfam"):
        registry.load_estimator("nonexistent")
    fams = registry.list_models()
    assert [f["name"] for f in fams] == ["tinyfam"]
    assert set(fams[0]["models"]) == {"estimator", "reconstructor"}
    assert "for tests" in fams[0]["models"]["estimator"]["markdown"]

    assert main(["models", "--full", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "tinyfam" in out and "estimator" in out and "checksums OK" in out
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "tinyfam"

    empty = family.parent / "empty"
    empty.mkdir()
    monkeypatch.setattr(registry, "MODELS_DIR", empty)
    assert registry.list_models() == []
    assert main(["models"]) == 0
    assert "No trained models" in capsys.readouterr().out
    with pytest.raises(registry.ModelNotFoundError, match="none shipped yet"):
        registry.load_estimator("survey")


def test_normalisation_method_is_checked(family, tmp_path):
    import shutil

    from astro_delens.nn.registry import load_estimator
    from astro_delens.files import write_checksums

    d = tmp_path / "est"
    shutil.copytree(family / "estimator", d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["normalization"]["method"] = "something-else"
    (d / "config.json").write_text(json.dumps(cfg))
    write_checksums(d)
    with pytest.raises(ValueError, match="normalisation"):
        load_estimator(d)


def test_preset_round_trip():
    from astro_delens.presets import preset_from_dict

    for name in ("seed", "survey", "sky"):
        p = get_preset(name)
        assert preset_from_dict(json.loads(json.dumps(p.to_dict()))) == p
