"""Tests of astro_delens.training.dataset: HDF5 layout, determinism, splits, resuming, reading."""

import json

import h5py
import numpy as np
import pytest

from astro_delens import lensmodel
from astro_delens.training import dataset
from astro_delens.training.dataset import (
    FIELDS, STRING_FIELDS, DatasetWarning, H5Dataset, assign_split, generate_dataset,
    open_dataset, sample_seed, split_indices,
)


N = 4
SEED = 3


def make(path, n=N, split="train", seed=SEED, **kwargs):
    kwargs.setdefault("progress", False)
    return generate_dataset(path, "seed", n, split, seed, **kwargs)


def read_all(path):
    with open_dataset(path) as data:
        return data.read(slice(None))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A train file of N samples made in this process (workers=1)."""
    return make(tmp_path_factory.mktemp("ref") / "train.h5")


def assert_same_samples(a, b):
    assert set(a) == set(b) == set(FIELDS)
    for name in FIELDS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# --------------------------------------------------------------------------- seeds and splits
def test_sample_seed_depends_on_seed_split_and_index():
    s = sample_seed(1, "train", 0)
    assert s == sample_seed(1, "train", 0)
    assert isinstance(s, int) and 0 <= s < 2**63
    others = {sample_seed(2, "train", 0), sample_seed(1, "val", 0), sample_seed(1, "test", 0),
              sample_seed(1, "train", 1), sample_seed(1, "train", 0, attempt=1)}
    assert s not in others and len(others) == 5


@pytest.mark.parametrize("args, name", [((1, "validation", 0), "split"), ((-1, "train", 0), "seed"),
                                        ((1.5, "train", 0), "seed")])
def test_sample_seed_rejects_bad_input(args, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        sample_seed(*args)


def test_assign_split_is_stable_with_80_10_10_fractions():
    ids = [f"cosmos:{i}" for i in range(20000)]
    splits = np.array([assign_split(i) for i in ids])
    assert [assign_split(i) for i in ids[:50]] == list(splits[:50])
    fractions = {s: np.mean(splits == s) for s in ("train", "val", "test")}
    assert fractions["train"] == pytest.approx(0.8, abs=0.015)
    assert fractions["val"] == pytest.approx(0.1, abs=0.01)
    assert fractions["test"] == pytest.approx(0.1, abs=0.01)


class FakeCatalog:
    """A source provider with a repeated galaxy (rows 3 and 4)."""

    idents = [str(i) for i in range(60)] + ["7"]

    def __len__(self):
        return len(self.idents)

    def source_id(self, index):
        return f"fake:{self.idents[index]}:{index}"

    def split_key(self, index):
        return f"fake:{self.idents[index]}"


def test_split_indices_partition_the_catalog():
    cat = FakeCatalog()
    parts = {s: set(split_indices(cat, s).tolist()) for s in ("train", "val", "test")}
    assert parts["train"] and parts["val"] and parts["test"]
    assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"]
                or parts["val"] & parts["test"])
    assert set().union(*parts.values()) == set(range(len(cat)))
    # the same galaxy listed twice lands in one split
    assert any({7, 60} <= p for p in parts.values())


# --------------------------------------------------------------------------- the file
def test_layout_and_attributes(reference):
    with h5py.File(reference, "r") as h5:
        assert set(h5) == set(FIELDS)
        assert h5["image"].shape == (N, 64, 64) and h5["image"].dtype == np.float32
        assert h5["source"].shape == (N, 64, 64)
        assert h5["params"].shape == (N, 8) and h5["params"].dtype == np.float64
        assert h5["psf"].ndim == 3 and h5["psf"].shape[1] % 2 == 1
        assert h5["snr"].dtype == np.float64 and h5["sample_seed"].dtype == np.int64
        for name in FIELDS:
            assert h5[name].chunks == (1,) + h5[name].shape[1:], name
            assert h5[name].compression == "gzip", name
        for name in STRING_FIELDS:
            assert h5py.check_string_dtype(h5[name].dtype).encoding == "utf-8"
        attrs = dict(h5.attrs)
    assert attrs["preset"] == "seed" and attrs["split"] == "train"
    assert attrs["seed"] == SEED and attrs["n"] == N and attrs["n_written"] == N
    assert bool(attrs["complete"]) is True
    assert json.loads(attrs["parameter_names"]) == list(lensmodel.PARAMETER_NAMES)
    assert json.loads(attrs["preset_json"])["npix"] == 64
    assert attrs["package_version"] and attrs["created"] and "generate_dataset" in attrs["command"]
    assert not reference.with_name(reference.name + ".partial").exists()


def test_samples_match_the_simulator(reference):
    from astro_delens.training.simulate import LensSimulator

    data = read_all(reference)
    assert list(data["sample_seed"]) == [sample_seed(SEED, "train", i) for i in range(N)]
    sample = LensSimulator("seed").simulate(int(data["sample_seed"][2]))
    np.testing.assert_array_equal(sample["image"], data["image"][2])
    np.testing.assert_array_equal(sample["params"], data["params"][2])
    assert list(data["source_id"]) == [f"procedural:train:{SEED}:{i}" for i in range(N)]


def test_same_file_whatever_the_number_of_workers(reference, tmp_path):
    path = make(tmp_path / "parallel.h5", workers=2, block_size=1)
    assert_same_samples(read_all(reference), read_all(path))


def test_splits_never_share_a_source(reference, tmp_path):
    val = read_all(make(tmp_path / "val.h5", n=2, split="val"))
    train = read_all(reference)
    assert not set(val["source_id"]) & set(train["source_id"])
    assert all(s.startswith("procedural:val:") for s in val["source_id"])
    assert not set(val["sample_seed"]) & set(train["sample_seed"])
    for target in val["source"]:
        assert not any(np.allclose(target, t) for t in train["source"])


def _interrupt_at(monkeypatch, index):
    real = dataset.simulate_sample

    def fake(sim, seed, split, i, subset=None):
        if i == index:
            raise KeyboardInterrupt
        return real(sim, seed, split, i, subset)

    monkeypatch.setattr(dataset, "simulate_sample", fake)


def test_resume_after_interruption_gives_the_same_file(reference, tmp_path, monkeypatch):
    path = tmp_path / "train.h5"
    partial = tmp_path / "train.h5.partial"
    with monkeypatch.context() as m:
        _interrupt_at(m, 2)
        with pytest.raises(KeyboardInterrupt):
            make(path, block_size=1)
    assert not path.exists()
    with h5py.File(partial, "r") as h5:
        assert h5.attrs["n_written"] == 2 and not h5.attrs["complete"]
    with pytest.raises(ValueError, match="unfinished"):
        open_dataset(partial)
    with pytest.raises(ValueError, match="overwrite"):
        make(path, seed=SEED + 1)  # a different run cannot resume it
    make(path)
    assert not partial.exists()
    assert_same_samples(read_all(reference), read_all(path))


def test_overwrite_discards_an_unfinished_file(tmp_path, monkeypatch):
    path = tmp_path / "d.h5"
    with monkeypatch.context() as m:
        _interrupt_at(m, 1)
        with pytest.raises(KeyboardInterrupt):
            make(path, n=2)
    make(path, n=1, seed=9, overwrite=True)
    with open_dataset(path) as data:
        assert len(data) == 1 and data.seed == 9


def test_unreadable_partial_file_is_restarted(tmp_path):
    path = tmp_path / "d.h5"
    (tmp_path / "d.h5.partial").write_bytes(b"not hdf5")
    with pytest.warns(DatasetWarning, match="unreadable"):
        make(path, n=1)
    assert len(open_dataset(path)) == 1


def test_existing_output_needs_overwrite(tmp_path):
    path = tmp_path / "d.h5"
    path.write_bytes(b"old")
    with pytest.raises(ValueError, match="^output: .*exists"):
        make(path, n=1)
    assert path.read_bytes() == b"old"
    assert not (tmp_path / "d.h5.partial").exists()


@pytest.mark.parametrize("kwargs, name", [
    ({"n": 0}, "n"), ({"n": 2.5}, "n"), ({"split": "training"}, "split"), ({"seed": -2}, "seed"),
    ({"workers": 0}, "workers"), ({"psf_files": ["/no/such/psf.fits"]}, "psf_files"),
    ({"source_catalog": "/no/such/catalog.fits"}, "source_catalog"),
])
def test_bad_arguments_create_no_file(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        make(tmp_path / "d.h5", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_preset_and_folder(tmp_path):
    with pytest.raises(ValueError, match="^preset:"):
        generate_dataset(tmp_path / "d.h5", "hubble", 1, "train", 0)
    with pytest.raises(ValueError, match="^output:"):
        make(tmp_path / "missing" / "d.h5")
    with pytest.raises(ValueError, match="^output:.*folder"):
        make(tmp_path)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- reading
def test_read_any_order_and_fields(reference):
    data = open_dataset(reference)
    assert isinstance(data, H5Dataset) and len(data) == N
    assert data.preset.name == "seed" and data.split == "train" and data.seed == SEED
    everything = data.read(np.arange(N))
    batch = data.read([3, 0, 3, -1], fields=["params", "source_id"])
    assert set(batch) == {"params", "source_id"}
    np.testing.assert_array_equal(batch["params"], everything["params"][[3, 0, 3, 3]])
    assert list(batch["source_id"]) == [everything["source_id"][i] for i in (3, 0, 3, 3)]
    one = data.read(1, fields=["image", "psf_kind"])
    assert one["image"].shape == (64, 64) and isinstance(one["psf_kind"], str)
    assert data.read([], fields=["image"])["image"].shape == (0, 64, 64)
    with pytest.raises(ValueError, match="^fields:"):
        data.read([0], fields=["pixels"])
    with pytest.raises(IndexError):
        data.read([N])
    data.close()


def test_batches_cover_the_file(reference):
    import pickle

    with open_dataset(reference) as data:
        seen = [b["sample_seed"] for b in data.batches(3, fields=["sample_seed"], shuffle=True,
                                                         seed=1)]
        assert [len(s) for s in seen] == [3, 1]
        assert sorted(np.concatenate(seen)) == sorted(data.read(slice(None))["sample_seed"])
        assert len(list(data.batches(3, drop_last=True))) == 1
        clone = pickle.loads(pickle.dumps(data))
        np.testing.assert_array_equal(clone.read([2])["image"], data.read([2])["image"])
        clone.close()


def test_open_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="^path: no such file"):
        open_dataset(tmp_path / "none.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(ValueError, match="^path: cannot read"):
        open_dataset(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5.attrs["complete"] = True
        h5["image"] = np.zeros((1, 2, 2))
    with pytest.raises(ValueError, match="lacks dataset"):
        open_dataset(tmp_path / "other.h5")
