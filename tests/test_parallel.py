"""Tests of the Dask scale-out (astro_delens.parallel and ``astro-delens predict --workers``).

Tiny untrained models: these tests check that the distributed path gives the
one-process answers row for row, stores and resumes its partitions and reports
failures, not the accuracy of the networks.
"""

import shutil
import warnings

import numpy as np
import pytest

from astropy.io import fits
from astropy.table import QTable

from astro_delens.cli import main
from astro_delens.data import example_path
from astro_delens.exceptions import AstroDelensWarning

pytest.importorskip("keras")
distributed = pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
    # the cluster's own chatter when it shuts down
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore:.*[Pp]ort.*:UserWarning"),
]


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    from astro_delens.data._devtools import make_untrained_family

    return str(make_untrained_family(tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture
def files(tmp_path):
    """Seven copies of the example, one of them binned (another geometry), and a broken file."""
    paths = []
    for k in range(7):
        path = tmp_path / f"lens_{k}.fits"
        shutil.copy(example_path(), path)
        paths.append(str(path))
    with fits.open(paths[3], mode="update") as hdul:  # a second geometry
        hdul["SCI"].data = hdul["SCI"].data[4:-4, 4:-4]
    broken = tmp_path / "broken.fits"
    broken.write_bytes(b"\x00not fits" * 500)
    paths.insert(2, str(broken))
    return paths


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_dask_frame_matches_one_process(family, files, client):
    from astro_delens import LensParameterEstimator
    from astro_delens.parallel import predict_frame

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroDelensWarning)
        serial = LensParameterEstimator(family).predict_many(files, on_error="warn")
    frame = predict_frame(files, family, partition_size=3).compute()
    assert list(frame["input"]) == files
    assert frame["error"].iloc[2].startswith("OSError") and frame["flags"].iloc[2] == "error"
    for col in ("theta_E", "theta_E_err", "e1", "position_angle", "shear_err"):
        np.testing.assert_allclose(frame[col].to_numpy(), np.asarray(serial[col]), rtol=1e-6,
                                   equal_nan=True)
    np.testing.assert_allclose(frame["center_ra"].to_numpy(), serial["center"].ra.deg,
                               equal_nan=True)


def test_partitions_keep_every_worker_busy(client):
    from astro_delens.parallel import balanced_partition_size

    assert balanced_partition_size(100, client) == 13  # 2 one-thread workers: 8 partitions
    assert balanced_partition_size(100_000, client) == 256  # conf.partition_size
    assert balanced_partition_size(100_000, client, 64) == 64
    assert balanced_partition_size(3, client) == 1


def test_predict_to_table_resumes_from_stored_parts(family, files, client, tmp_path):
    from astro_delens.parallel import predict_to_table

    parts = tmp_path / "parts"
    table, failed = predict_to_table(files, client=client, parts_dir=parts, model=family,
                                     partition_size=3)
    assert list(failed["input"]) == [files[2]] and failed["error"][0].startswith("OSError")
    assert list(table["input"]) == [f for f in files if f != files[2]]
    stored = sorted(parts.glob("part-*.parquet"))
    assert len(stored) == 3
    # a killed run: one part lost; the rerun computes only that one
    stored[1].unlink()
    before = {p: p.stat().st_mtime_ns for p in (stored[0], stored[2])}
    counted = []
    again, _ = predict_to_table(files, client=client, parts_dir=parts, model=family,
                                partition_size=3,
                                on_part=lambda n, messages, failures: counted.append(n))
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert sorted(counted) == [2, 3, 3]  # parts found done count too (progress bars)
    np.testing.assert_array_equal(np.asarray(again["theta_E"]), np.asarray(table["theta_E"]))


def test_cli_workers_give_the_serial_table(family, files, tmp_path, capsys):
    serial, parallel = tmp_path / "serial.ecsv", tmp_path / "parallel.ecsv"
    assert main(["predict", *files, "--model", family, "-o", str(serial)]) == 1
    assert main(["predict", *files, "--model", family, "-o", str(parallel), "--workers", "2",
                 "--partition-size", "3"]) == 1
    err = capsys.readouterr().err
    assert err.count(f"{files[2]}: error:") == 2  # the broken file, reported by both runs
    a, b = QTable.read(serial), QTable.read(parallel)
    assert list(a["input"]) == list(b["input"])
    for col in a.colnames:
        if col == "center":
            np.testing.assert_allclose(a[col].ra.deg, b[col].ra.deg, equal_nan=True)
        elif a[col].dtype.kind == "f":
            np.testing.assert_allclose(np.asarray(a[col]), np.asarray(b[col]), rtol=1e-6,
                                       equal_nan=True)
        else:
            assert list(a[col]) == list(b[col])
    assert a.meta["model"] == b.meta["model"]
    assert set(a.meta["preprocessing"]) == set(b.meta["preprocessing"])
    assert not (tmp_path / "parallel.ecsv.parts").exists()  # merged, then removed


def test_cli_dask_usage_errors(family, files, tmp_path, capsys):
    out = str(tmp_path / "t.ecsv")
    for argv in (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
                 ["--workers", "0"],
                 ["--partition-size", "5"]):
        assert main(["predict", files[0], "--model", family, "-o", out, *argv]) == 2, argv
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("astro-delens predict: error: --")
                                 for line in err)


def test_cli_reconstruct_on_workers_writes_the_serial_sources(family, files, tmp_path,
                                                              capsys):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    good = [f for f in files if f != files[2]][:3]
    assert main(["reconstruct", *good, files[2], "--model", family, "--outdir", str(serial),
                 "--no-check"]) == 1
    assert main(["reconstruct", *good, files[2], "--model", family, "--outdir", str(parallel),
                 "--no-check", "--workers", "2", "--partition-size", "2"]) == 1
    assert capsys.readouterr().err.count(f"{files[2]}: error:") == 2
    names = sorted(p.name for p in serial.glob("*.fits"))
    assert names == sorted(p.name for p in parallel.glob("*.fits")) and len(names) == 3
    for name in names:
        np.testing.assert_allclose(fits.getdata(parallel / name), fits.getdata(serial / name),
                                   rtol=1e-5, atol=1e-12)


def test_cli_reconstruct_skips_what_is_done(family, files, tmp_path, capsys):
    out = tmp_path / "sources"
    assert main(["reconstruct", files[0], "--model", family, "--outdir", str(out),
                 "--no-check"]) == 0
    first = (out / "lens_0_source.fits").stat().st_mtime_ns
    assert main(["reconstruct", files[0], files[1], "--model", family, "--outdir", str(out),
                 "--no-check"]) == 2  # exists: refused without an option
    assert main(["reconstruct", files[0], files[1], "--model", family, "--outdir", str(out),
                 "--no-check", "--skip-existing"]) == 0
    err = capsys.readouterr().err
    assert "--skip-existing" in err and "1 file(s) already reconstructed" in err
    assert (out / "lens_0_source.fits").stat().st_mtime_ns == first
    assert (out / "lens_1_source.fits").exists()
