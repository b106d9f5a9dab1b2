"""Tests of ``astro-delens simulate``."""

import shlex

import h5py
import pytest

from astro_delens.cli import main
from astro_delens.training import dataset
from astro_delens.training.dataset import open_dataset



def run(capsys, *words):
    code = main(["simulate", *map(str, words)])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--preset", "-n", "--split", "--output", "--seed", "--workers", "--overwrite",
                   "--source-catalog", "--psf-file", "--no-progress", ".partial", "resume"):
        assert option in text, option


def test_simulate_writes_a_complete_file(tmp_path, capsys):
    out = tmp_path / "train.h5"
    code, stdout, err = run(capsys, "--preset", "seed", "-n", 2, "--split", "val", "-o", out,
                            "--seed", 4, "--no-progress")
    assert code == 0, err
    assert err == "" and "wrote 2 val lenses" in stdout
    with open_dataset(out) as data:
        assert len(data) == 2 and data.split == "val" and data.seed == 4
        words = shlex.split(data.attrs["command"])
    assert words[:2] == ["astro-delens", "simulate"]
    assert words[words.index("-n") + 1] == "2" and words[words.index("--seed") + 1] == "4"
    assert not (tmp_path / "train.h5.partial").exists()
    # an existing output needs --overwrite ...
    before = out.read_bytes()
    code, _, err = run(capsys, "--preset", "seed", "-n", 1, "-o", out)
    assert code == 2 and len(err.splitlines()) == 1 and "--overwrite" in err
    assert out.read_bytes() == before
    # ... which replaces it
    code, _, err = run(capsys, "--preset", "seed", "-n", 1, "-o", out, "--overwrite",
                       "--no-progress")
    assert code == 0, err
    assert len(open_dataset(out)) == 1


BAD = {
    "unknown preset": (["--preset", "hubble", "-n", 2], "preset"),
    "n zero": (["--preset", "seed", "-n", 0], "-n"),
    "n negative": (["--preset", "seed", "-n", -5], "-n"),
    "n not a number": (["--preset", "seed", "-n", "many"], "-n"),
    "bad split": (["--preset", "seed", "-n", 2, "--split", "training"], "split"),
    "bad seed": (["--preset", "seed", "-n", 2, "--seed", "x"], "--seed"),
    "bad workers": (["--preset", "seed", "-n", 2, "--workers", 0], "--workers"),
    "missing catalog": (["--preset", "seed", "-n", 2, "--source-catalog", "nope.fits"],
                        "source_catalog"),
    "missing psf file": (["--preset", "seed", "-n", 2, "--psf-file", "nope.fits"], "psf_files"),
}


@pytest.mark.parametrize("words, name", BAD.values(), ids=list(BAD))
def test_bad_input_one_line_and_no_file(tmp_path, capsys, words, name):
    words = [w if w != "nope.fits" else tmp_path / w for w in words]
    code, out, err = run(capsys, *words, "-o", tmp_path / "d.h5")
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("astro-delens simulate: error: ")
    assert name in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_malformed_catalog(tmp_path, capsys):
    catalog = tmp_path / "real_galaxy_catalog.fits"
    catalog.write_text("SIMPLE = nonsense")
    code, _, err = run(capsys, "--preset", "seed", "-n", 2, "-o", tmp_path / "d.h5",
                       "--source-catalog", catalog)
    assert code == 2 and len(err.splitlines()) == 1 and "source_catalog" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [catalog.name]


def test_unwritable_output(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    for target in (tmp_path / "file" / "d.h5", tmp_path / "no" / "d.h5", tmp_path):
        code, _, err = run(capsys, "--preset", "seed", "-n", 1, "-o", target)
        assert code == 2 and len(err.splitlines()) == 1 and "output" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_interrupt_then_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "d.h5"
    words = ["--preset", "seed", "-n", 6, "-o", out, "--seed", 2, "--no-progress"]
    real = dataset.simulate_sample

    def interrupted(sim, seed, split, i, subset=None):
        if i == 5:  # in the second block of 4
            raise KeyboardInterrupt
        return real(sim, seed, split, i, subset)

    with monkeypatch.context() as m:
        m.setattr(dataset, "simulate_sample", interrupted)
        code, _, err = run(capsys, *words)
    assert code == 130 and len(err.splitlines()) == 1
    assert "4 of 6 samples written" in err and "again to resume" in err
    assert not out.exists()
    code, _, err = run(capsys, *words[:-3], "--seed", 5)  # other options: refused
    assert code == 2 and len(err.splitlines()) == 1 and "--overwrite" in err
    code, _, err = run(capsys, *words)
    assert code == 0, err
    with h5py.File(out, "r") as h5:
        assert h5.attrs["complete"] and h5.attrs["n_written"] == 6


def test_simulation_failure_is_one_line(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the simulator\nbroke")

    monkeypatch.setattr(dataset, "simulate_sample", broken)
    code, _, err = run(capsys, "--preset", "seed", "-n", 2, "-o", tmp_path / "d.h5")
    assert code == 1 and len(err.splitlines()) == 1 and "the simulator broke" in err
    assert not (tmp_path / "d.h5").exists()
