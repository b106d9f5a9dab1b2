"""Tests of astro_delens.training.train / evaluate and the train / evaluate commands.

They train tiny networks for a few epochs on tiny HDF5 files written here in the
layout of CONTRACTS.md (a ring whose radius follows theta_E and whose centre
follows the lens centre; a Gaussian source whose width follows theta_E).
"""

import csv
import json

import numpy as np
import pytest

from astro_delens import lensmodel
from astro_delens.presets import Preset

keras = pytest.importorskip("keras")

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

NPIX = 32


def write_toy_h5(path, n, seed=0, npix=NPIX, name="toy"):
    """A tiny dataset file in the CONTRACTS.md layout, with a learnable signal."""
    import h5py

    preset = Preset(name=name, npix=npix, pixel_scale=0.1, source_npix=npix,
                    source_pixel_scale=0.05, source_reference_fwhm=0.1, supersampling=1,
                    noise=True, snr_range=(10.0, 10.0))
    rng = np.random.default_rng(seed)
    p = lensmodel.sample_parameters("survey", rng, n)
    j, i = np.mgrid[0:npix, 0:npix]
    x, y = lensmodel.pixel_to_angle(i, j, npix, 0.1)
    xs, ys = lensmodel.pixel_to_angle(i, j, npix, 0.05)
    image = np.empty((n, npix, npix), np.float32)
    source = np.empty_like(image)
    for k in range(n):
        r = np.hypot(x - p[k, 4], y - p[k, 5])
        amp = 10.0 ** rng.uniform(-1, 1)
        image[k] = amp * np.exp(-0.5 * ((r - 0.5 * p[k, 0]) / 0.12) ** 2)
        source[k] = amp * np.exp(-0.5 * (xs ** 2 + ys ** 2) / (0.1 + 0.1 * p[k, 0]) ** 2)
    noise = (0.05 * image.max(axis=(1, 2)))[:, None, None] * np.ones_like(image)
    image += (rng.normal(size=image.shape) * noise).astype(np.float32)
    with h5py.File(path, "w") as f:
        kw = dict(chunks=(1, npix, npix), compression="gzip")
        f.create_dataset("image", data=image, **kw)
        f.create_dataset("noise_map", data=noise.astype(np.float32), **kw)
        f.create_dataset("source", data=source, **kw)
        f.create_dataset("params", data=p, chunks=(1, 8))
        f.attrs.update(preset=name, preset_json=json.dumps(preset.to_dict()), split="train",
                       seed=seed, n=n, complete=True,
                       parameter_names=json.dumps(list(lensmodel.PARAMETER_NAMES)))
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    return {"train": write_toy_h5(d / "train.h5", 64, seed=1),
            "val": write_toy_h5(d / "val.h5", 32, seed=2),
            "test": write_toy_h5(d / "test.h5", 24, seed=3),
            "dir": d}


def _history(model_dir):
    with open(model_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(toy):
    """A tiny estimator and reconstructor trained through the command line."""
    from astro_delens.cli import main

    from astro_delens.nn.architectures import TINY_RECONSTRUCTOR

    # the reconstructor with the energy-normalised loss the shipped ones use (the plain loss
    # first learns the empty image, which a 4-epoch run cannot get past reliably)
    configs = {"estimator": "tiny",
               "reconstructor": json.dumps(dict(TINY_RECONSTRUCTOR, loss={"energy": True}))}
    out = {}
    for kind in ("estimator", "reconstructor"):
        d = toy["dir"] / kind
        rc = main(["train", kind, "--train", str(toy["train"]), "--val", str(toy["val"]),
                   "--out", str(d), "--config", configs[kind], "--epochs", "4",
                   "--batch-size", "8", "--lr", "3e-3", "--seed", "1", "--quiet"])
        assert rc == 0
        out[kind] = d
    return out


def test_training_lowers_the_loss_and_writes_a_model_dir(trained):
    from astro_delens.nn.registry import verify_checksums

    for kind, d in trained.items():
        rows = _history(d)
        assert len(rows) == 4
        loss = [float(r["loss"]) for r in rows]
        val = [float(r["val_loss"]) for r in rows]
        assert loss[-1] < loss[0], (kind, loss)
        assert min(val) < val[0], (kind, val)
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["kind"] == kind and cfg["status"] == "trained"
        assert cfg["preset"]["npix"] == NPIX
        t = cfg["training"]
        assert t["n_train"] == 64 and t["seed"] == 1 and t["epochs_run"] == 4
        assert [f["path"][-8:] for f in t["train"]] == ["train.h5"] and t["hardware"]["keras"]
        assert len(cfg["normalization"]["params"]["mean"]) == 8
        assert (d / "card.md").read_text().startswith("# astro_delens")
        assert set(verify_checksums(d)) == {"config.json", "model.weights.h5", "card.md"}
        assert not (d / ".training").exists()


def test_warm_start_continues_from_a_model(trained, toy, tmp_path, capsys):
    from astro_delens.cli import main
    from astro_delens.nn.registry import load_estimator
    from astro_delens.files import sha256_file

    init = trained["estimator"]
    out = tmp_path / "continued"
    base = ["train", "estimator", "--train", str(toy["train"]), "--val", str(toy["val"]),
            "--epochs", "1", "--batch-size", "8", "--lr", "1e-9", "--lr-schedule", "constant",
            "--quiet", "--init", str(init)]
    assert main(base + ["--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    first = json.loads((init / "config.json").read_text())
    assert cfg["architecture"] == first["architecture"]
    assert cfg["normalization"]["params"] == first["normalization"]["params"]
    assert cfg["training"]["initialised_from"]["sha256"] == sha256_file(init / "model.weights.h5")
    assert "--init" in cfg["training"]["command"]
    # with a vanishing learning rate the continued model predicts as the initial one (up to
    # the batch-normalisation statistics, which move with the data), unlike a fresh start
    scratch = tmp_path / "scratch"
    assert main(base[:-2] + ["--config", "tiny", "--out", str(scratch)]) == 0
    x = np.random.default_rng(0).normal(size=(3, NPIX, NPIX)).astype(np.float32)
    noise = np.ones_like(x)
    a, b, c = (load_estimator(d).predict(x, noise)[0] for d in (init, out, scratch))
    assert np.max(np.abs(b - a)) < 0.2 * np.max(np.abs(c - a))
    # a warm start keeps the architecture; a reconstructor cannot start an estimator
    assert main(base + ["--out", str(tmp_path / "x"), "--config", '{"head_units": 7}']) == 2
    assert "head_units" in capsys.readouterr().err
    # ... except that the estimator's head may grow a keypoint branch, which starts silent
    grown = tmp_path / "grown"
    assert main(base + ["--out", str(grown), "--config", '{"keypoints": 3}']) == 0
    assert json.loads((grown / "config.json").read_text())["architecture"]["keypoints"] == 3
    d = load_estimator(grown).predict(x, noise)[0]
    assert np.max(np.abs(d - a)) < 0.2 * np.max(np.abs(c - a))
    again = tmp_path / "grown_again"
    assert main(base[:-1] + [str(grown), "--out", str(again),
                             "--config", '{"keypoints": 5}']) == 2
    assert "keypoints" in capsys.readouterr().err
    # ... or a second network, re-centred on the first one's answer, which also starts silent
    cascade = tmp_path / "cascade"
    assert main(base + ["--out", str(cascade), "--config", '{"cascade": true}']) == 0
    geometry = json.loads((cascade / "config.json").read_text())["architecture"]["cascade"]
    assert geometry["index"] == [4, 5]
    e = load_estimator(cascade).predict(x, noise)[0]
    assert np.max(np.abs(e - a)) < 0.2 * np.max(np.abs(c - a))
    assert main(base[:-2] + ["--out", str(tmp_path / "z"), "--config", '{"cascade": true}']) == 2
    assert "cascade grows from a trained estimator" in capsys.readouterr().err
    base[1] = "reconstructor"
    assert main(base + ["--out", str(tmp_path / "y")]) == 2
    assert "is not a reconstructor model" in capsys.readouterr().err


def test_every_epoch_kept_and_another_one_selected(trained, toy, tmp_path):
    import h5py

    from astro_delens.cli import main
    from astro_delens.nn.registry import load_estimator, verify_checksums
    from astro_delens.training.train import epoch_weights_path, select_epoch

    val = write_toy_h5(tmp_path / "val100.h5", 100, seed=5)  # enough to calibrate on
    out = tmp_path / "kept"
    assert main(["train", "estimator", "--train", str(toy["train"]), "--val", str(val),
                 "--out", str(out), "--epochs", "3", "--batch-size", "8", "--lr", "3e-3",
                 "--quiet", "--keep-epochs", "--init", str(trained["estimator"]),
                 "--config", '{"freeze_batchnorm": true}']) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert "--keep-epochs" in cfg["training"]["command"]
    for n in (1, 2, 3):  # weights only, as model.weights.h5, no optimizer state
        with h5py.File(epoch_weights_path(out, n)) as f:
            assert "optimizer" not in f and "layers" in f
    x = np.random.default_rng(0).normal(size=(3, NPIX, NPIX)).astype(np.float32)
    noise = np.ones_like(x)
    best = cfg["training"]["best_epoch"]
    at_best = load_estimator(out).predict(x, noise)[0]

    other = 1 if best != 1 else 2
    with open(out / "card.md", "a") as f:
        f.write("\n## Known shortcomings\n\nhand-written\n")
    new = select_epoch(out, other, "the lowest RMS of e1 on the validation set",
                       log=lambda msg: None)
    assert new["training"]["kept_epoch"] == {"epoch": other, "why": "the lowest RMS of e1 on "
                                             "the validation set"}
    assert new["calibration"]["data"]["n"] == 100  # calibrated again, for these weights
    card = (out / "card.md").read_text()
    assert f"weights kept: those after epoch {other}, the lowest RMS of e1" in card
    assert "Not evaluated yet" in card and card.endswith("hand-written\n")
    verify_checksums(out)
    assert not np.allclose(load_estimator(out).predict(x, noise)[0], at_best)
    # the epoch the run kept by its validation loss: the same weights as it wrote
    select_epoch(out, best, "back", calibrate=False)
    assert "calibration" not in json.loads((out / "config.json").read_text())
    np.testing.assert_allclose(load_estimator(out).predict(x, noise)[0], at_best, atol=1e-6)

    with pytest.raises(ValueError, match="epoch: no weights of epoch 4 .*epoch001"):
        select_epoch(out, 4, "why not")
    with pytest.raises(ValueError, match="why: expected a sentence"):
        select_epoch(out, 1, " ")
    with pytest.raises(ValueError, match="train with keep_epochs=True"):
        select_epoch(trained["estimator"], 1, "no epochs kept")


def test_fine_tuning_with_frozen_batchnorm_keeps_its_statistics(trained, toy, tmp_path):
    from astro_delens.cli import main
    from astro_delens.nn.registry import load_estimator

    init = trained["estimator"]
    out = tmp_path / "frozen"
    assert main(["train", "estimator", "--train", str(toy["train"]), "--val", str(toy["val"]),
                 "--epochs", "1", "--batch-size", "8", "--lr", "3e-3", "--quiet",
                 "--init", str(init), "--out", str(out),
                 "--config", '{"freeze_batchnorm": true}']) == 0
    assert json.loads((out / "config.json").read_text())["training_setup"]["freeze_batchnorm"]
    before, after = load_estimator(init).model, load_estimator(out).model
    bn_moved, others_moved = [], []
    for old, new in zip(before.layers, after.layers):
        for a, b in zip(old.weights, new.weights):
            moved = not np.array_equal(keras.ops.convert_to_numpy(a),
                                       keras.ops.convert_to_numpy(b))
            if isinstance(old, keras.layers.BatchNormalization):
                bn_moved.append(moved)
            else:
                others_moved.append(moved)
    assert bn_moved and not any(bn_moved)
    assert any(others_moved)
    # a warm start from the fine-tuned model does not inherit the freeze
    again = tmp_path / "again"
    assert main(["train", "estimator", "--train", str(toy["train"]), "--val", str(toy["val"]),
                 "--epochs", "1", "--batch-size", "8", "--quiet", "--init", str(out),
                 "--out", str(again)]) == 0
    assert not json.loads((again / "config.json").read_text())["training_setup"][
        "freeze_batchnorm"]


def test_batches_are_deterministic_and_augmented_consistently(toy):
    from astro_delens.nn import normalization as norm
    from astro_delens.training.train import BatchMaker

    stats = {"mean": [0.0] * 8, "std": [1.0] * 8}
    a = BatchMaker(toy["train"], "estimator", 64, 8, stats, augment=True, shuffle=True, seed=3)
    b = BatchMaker(toy["train"], "estimator", 64, 8, stats, augment=True, shuffle=True, seed=3)
    x1, y1 = a.get(2)
    x2, y2 = b.get(2)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    a.epoch = 1
    assert not np.array_equal(a.get(2)[0], x1)
    # invariants of the symmetries: theta_E and gamma unchanged, |e|, |shear| and |centre| too
    plain = BatchMaker(toy["train"], "estimator", 64, 8, stats)
    sel = b.indices(2)
    import h5py

    with h5py.File(toy["train"]) as f:
        p = f["params"][sel]
    np.testing.assert_allclose(y1[:, :2], p[:, :2], rtol=1e-6)
    for i, j in ((2, 3), (4, 5), (6, 7)):
        np.testing.assert_allclose(np.hypot(y1[:, i], y1[:, j]), np.hypot(p[:, i], p[:, j]),
                                   rtol=1e-5)
    x0, _ = plain.get(0)
    assert x0.shape == (8, NPIX, NPIX, 2) and x0.dtype == np.float32
    # reconstructor targets are the source divided by the same image scale
    r = BatchMaker(toy["train"], "reconstructor", 64, 8)
    x, y = r.get(0)
    with h5py.File(toy["train"]) as f:
        _, scale = norm.normalize_inputs(f["image"][:8], f["noise_map"][:8])
        np.testing.assert_allclose(y[..., 0], f["source"][:8] / scale[:, None, None], rtol=1e-5)
    for m in (a, b, plain, r):
        m.close()


def test_batches_from_several_files_equal_one_file(toy, tmp_path):
    import h5py

    from astro_delens.training.train import BatchMaker

    halves = [tmp_path / "first.h5", tmp_path / "second.h5"]
    with h5py.File(toy["train"]) as whole:
        for path, part in zip(halves, (slice(0, 40), slice(40, 64))):
            with h5py.File(path, "w") as f:
                f.attrs.update(whole.attrs)
                for name in whole:
                    f.create_dataset(name, data=whole[name][part])
    stats = {"mean": [0.0] * 8, "std": [1.0] * 8}
    kw = dict(augment=True, shuffle=True, mask_probability=0.3, seed=5)
    one = BatchMaker(toy["train"], "estimator", 64, 8, stats, **kw)
    two = BatchMaker(halves, "estimator", 64, 8, stats, **kw)
    assert len(two) == len(one) == 8
    for epoch in (0, 1):
        one.epoch = two.epoch = epoch
        for b in range(len(one)):
            for got, want in zip(two.get(b), one.get(b)):
                np.testing.assert_array_equal(got, want)
    one.close()
    two.close()


def test_lens_light_removal_leaves_arcs_and_noise(toy, tmp_path):
    import shutil

    import h5py

    from astro_delens.nn import normalization as norm
    from astro_delens.training.train import BatchMaker, train_model

    path = shutil.copy(toy["train"], tmp_path / "with_light.h5")
    j, i = np.mgrid[0:NPIX, 0:NPIX]
    blob = np.exp(-0.5 * ((i - NPIX / 2) ** 2 + (j - NPIX / 2) ** 2) / 3.0 ** 2)
    with h5py.File(path, "a") as f:
        light = (blob[None] * np.linspace(1, 5, 64)[:, None, None]).astype(np.float32)
        f["image"][...] = f["image"][...] + light
        f.create_dataset("lens_light", data=light)
        image, noise = f["image"][:8], f["noise_map"][:8]
    stats = {"mean": [0.0] * 8, "std": [1.0] * 8}
    makers = [BatchMaker(path, "estimator", 64, 8, stats, lens_light_removal=p, seed=3)
              for p in (0.0, 1.0, 0.5)]
    (kept, _), (removed, _), (mixed, _) = (m.get(0) for m in makers)
    np.testing.assert_allclose(kept, norm.normalize_inputs(image, noise)[0], rtol=1e-6)
    np.testing.assert_allclose(removed, norm.normalize_inputs(image - light[:8], noise)[0],
                               rtol=1e-5, atol=1e-6)
    same_as_kept = [np.array_equal(mixed[k], kept[k]) for k in range(8)]
    same_as_removed = [np.allclose(mixed[k], removed[k], atol=1e-6) for k in range(8)]
    assert any(same_as_kept) and any(same_as_removed)
    assert all(a != b for a, b in zip(same_as_kept, same_as_removed))
    for m in makers:
        m.close()
    with pytest.raises(ValueError, match="lens_light_removal must be a probability"):
        train_model("estimator", path, toy["val"], tmp_path / "a", epochs=1,
                    config={"lens_light_removal": 1.5})
    with pytest.raises(ValueError, match="no 'lens_light' field"):
        train_model("estimator", toy["train"], toy["val"], tmp_path / "b", epochs=1,
                    config={"lens_light_removal": 0.3})


def test_resume_after_interruption(toy):
    from astro_delens.training.train import train_model

    out = toy["dir"] / "resume"
    calls = []

    def interrupt_after_epoch_2(msg):
        calls.append(msg)
        if msg.startswith("epoch 2/"):
            raise KeyboardInterrupt

    kw = dict(config={"stem_width": 2, "widths": [4], "blocks": [1], "head_units": 8},
              epochs=3, batch_size=16, seed=0, max_samples=32, max_val_samples=16)
    with pytest.raises(KeyboardInterrupt):
        train_model("estimator", toy["train"], toy["val"], out, log=interrupt_after_epoch_2,
                    **kw)
    assert (out / ".training").exists() and not (out / "model.weights.h5").exists()
    assert len(_history(out)) == 2
    # a different configuration may not resume into the same directory
    with pytest.raises(ValueError, match="different configuration"):
        train_model("estimator", toy["train"], toy["val"], out, log=lambda m: None,
                    **dict(kw, config={"stem_width": 3, "widths": [4], "blocks": [1]}))
    msgs = []
    cfg = train_model("estimator", toy["train"], toy["val"], out, log=msgs.append, **kw)
    assert msgs[0].startswith("resuming")
    assert [m for m in msgs if m.startswith("epoch")] == [msgs[1]] and msgs[1].startswith(
        "epoch 3/3")
    assert [int(r["epoch"]) for r in _history(out)] == [0, 1, 2]
    assert cfg["training"]["epochs_run"] == 3 and cfg["training"]["resumed"]
    assert (out / "model.weights.h5").exists() and not (out / ".training").exists()
    # a finished model is not overwritten without --overwrite
    with pytest.raises(ValueError, match="not empty"):
        train_model("estimator", toy["train"], toy["val"], out, log=lambda m: None, **kw)


def test_train_command_errors(toy, tmp_path, capsys):
    from astro_delens.cli import main

    base = ["train", "estimator", "--val", str(toy["val"]), "--out", str(tmp_path / "m")]
    assert main(base + ["--train", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    assert main(base + ["--train", str(toy["train"]), "--config", "{not json"]) == 2
    assert "--config" in capsys.readouterr().err
    assert main(base + ["--train", str(toy["train"]), "--config", '{"bogus": 1}']) == 2
    assert "bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--train", str(toy["train"]), "--epochs", "0"])


def test_reevaluation_keeps_hand_written_card_sections(trained, toy, tmp_path):
    import shutil

    from astro_delens.cli import main
    from astro_delens.nn.registry import verify_checksums
    from astro_delens.files import write_checksums

    model = tmp_path / "est"
    shutil.copytree(trained["estimator"], model)
    note = "## Known shortcomings\n\nToy network: it has learned almost nothing.\n"
    with open(model / "card.md", "a") as fh:
        fh.write("\n" + note)
    write_checksums(model)  # as after any hand edit of a card
    for _ in range(2):  # kept once, not duplicated
        assert main(["evaluate", "--model", str(model), "--data", str(toy["test"]),
                     "--report", str(tmp_path / "rep"), "--symmetries", "1", "--quiet"]) == 0
    card = (model / "card.md").read_text()
    assert card.count("## Known shortcomings") == 1 and "learned almost nothing" in card
    assert "no averaging over symmetries" in card and card.index("## Evaluation") < card.index(note)
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["symmetries"] == 1
    verify_checksums(model)


def test_card_states_a_kept_epoch_and_a_described_warm_start(trained):
    from astro_delens.training.train import _card_stub

    cfg = json.loads((trained["estimator"] / "config.json").read_text())
    assert "weights kept" not in _card_stub(cfg)
    cfg["training"]["kept_epoch"] = {"epoch": 1, "why": "chosen on the validation set"}
    assert "weights kept: those after epoch 1, chosen on the validation set" in _card_stub(cfg)
    cfg["training"]["initialised_from"] = {"path": "runs/a", "sha256": "0" * 64, "command": "x"}
    assert "warm start from `runs/a`" in _card_stub(cfg)
    cfg["training"]["initialised_from"]["description"] = "the model shipped before"
    assert "warm start from the model shipped before (weights" in _card_stub(cfg)


def test_evaluate_estimator_and_reconstructor(trained, toy, tmp_path):
    from astro_delens.cli import main
    from astro_delens.nn.registry import load_estimator, verify_checksums

    rep = tmp_path / "est_report"
    assert main(["evaluate", "--model", str(trained["estimator"]), "--data", str(toy["test"]),
                 "--report", str(rep), "--quiet"]) == 0
    report = json.loads((rep / "report.json").read_text())
    assert report["kind"] == "estimator" and report["n"] == 24
    m = report["metrics"]
    assert set(m) == set(lensmodel.PARAMETER_NAMES)
    for name in lensmodel.PARAMETER_NAMES:
        assert {"rms", "bias", "rms_over_prior_std", "coverage_68", "coverage_95"} <= set(m[name])
        assert 0 <= m[name]["coverage_68"] <= m[name]["coverage_95"] <= 1
    assert "median_abs_fractional_error" in m["theta_E"]
    assert len(report["calibration"]["nominal"]) == 19
    for fig in ("pred_vs_true.png", "calibration.png"):
        assert (rep / fig).stat().st_size > 1000
    # the card was updated and the checksums still hold
    verify_checksums(trained["estimator"])
    est = load_estimator(trained["estimator"])
    assert est.card["evaluation"]["n"] == 24
    assert "| theta_E |" in est.card["markdown"]

    rep = tmp_path / "rec_report"
    assert main(["evaluate", "--model", str(trained["reconstructor"]), "--data",
                 str(toy["test"]), "--report", str(rep), "--examples", "2", "--quiet",
                 "--no-card"]) == 0
    report = json.loads((rep / "report.json").read_text())
    assert report["kind"] == "reconstructor"
    assert {"ssim", "psnr", "mse", "relative_mse", "flux_ratio"} <= set(report["metrics"])
    assert -1 <= report["metrics"]["ssim"]["median"] <= 1
    assert "peak of the true normalised source" in report["data_range"]
    assert (rep / "examples.png").stat().st_size > 1000
    assert json.loads((trained["reconstructor"] / "config.json").read_text())["status"] == \
        "trained"
    # wrong model path
    assert main(["evaluate", "--model", str(tmp_path), "--data", str(toy["test"]),
                 "--report", str(rep)]) == 2


def test_best_scale_recovers_a_known_sigma_error():
    from astro_delens.training.calibrate import best_scale, coverage

    z = np.random.default_rng(5).normal(size=(20000, 8)) * np.arange(1, 9) * 0.5
    scale = best_scale(z)
    np.testing.assert_allclose(scale, np.arange(1, 9) * 0.5, rtol=0.03)
    cov = coverage(z / scale)
    assert np.all(np.abs(np.array(cov["68"]) - 0.683) < 0.01)
    assert np.all(np.abs(np.array(cov["95"]) - 0.95) < 0.01)


def test_calibration_is_stored_applied_and_checksummed(trained, toy, tmp_path, capsys):
    import shutil

    from astro_delens.cli import main
    from astro_delens.nn.registry import load_estimator, verify_checksums

    model = tmp_path / "est"
    shutil.copytree(trained["estimator"], model)
    val = write_toy_h5(tmp_path / "val.h5", 150, seed=9)
    assert main(["calibrate", "--model", str(model), "--data", str(val), "--quiet"]) == 0
    cfg = json.loads((model / "config.json").read_text())
    cal = cfg["calibration"]
    assert cal["data"]["n"] == 150 and set(cal["sigma_scale"]) == {"1", "4", "8"}
    for count in ("1", "4", "8"):
        assert len(cal["sigma_scale"][count]) == 8
        assert all(0.6 <= c <= 0.77 for c in cal["coverage_after"][count]["68"])
    assert "config.json" in verify_checksums(model)
    loaded = load_estimator(model)
    x = write_toy_h5(tmp_path / "x.h5", 4, seed=11)
    import h5py

    with h5py.File(x, "r") as f:
        image, noise = f["image"][:], f["noise_map"][:]
    for count in (1, 8):
        m1, s1 = loaded.predict(image, noise, symmetries=count)
        m0, s0 = loaded.predict(image, noise, calibrated=False, symmetries=count)
        np.testing.assert_allclose(m1, m0)
        np.testing.assert_allclose(s1, s0 * np.array(cal["sigma_scale"][str(count)]))
    # reconstructors have no uncertainties; too few samples cannot calibrate
    assert main(["calibrate", "--model", str(trained["reconstructor"]), "--data", str(val)]) == 2
    assert "only estimators" in capsys.readouterr().err
    assert main(["calibrate", "--model", str(model), "--data", str(toy["val"])]) == 2
    assert "too few" in capsys.readouterr().err
    # the field check alone: the uncertainties' calibration stays as it was
    other = write_toy_h5(tmp_path / "other.h5", 120, seed=13)
    assert main(["calibrate", "--model", str(model), "--data", str(other), "--quiet",
                 "--field-check-only"]) == 0
    after = json.loads((model / "config.json").read_text())
    assert after["calibration"] == cal
    assert after["field_check"]["data"]["n"] == 120
    assert after["field_check"]["threshold"] >= 0 and len(after["field_check"]["fractions"]) == 4
    assert "config.json" in verify_checksums(model)
