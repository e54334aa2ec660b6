"""``jwst-asteroids mine`` on small simulated exposures: Dask tasks, resume, failures, merge.

Exposures are SUB64 ramps of 20 groups (jwst jump + ramp_fit run offline), six
repeats two seconds apart of one field with one fast mover, so that the same
files also exercise the linking end to end.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asdf
import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

from jwst_asteroid_step.offline import run_jump_and_ramp_fit, write_detector1_pars
from jwst_asteroid_step.simulate import Mover, save_simulation, simulate_ramp
from jwst_asteroid_step.survey.manifest import Manifest, read_counts
from jwst_asteroid_step.survey.mine import run_mine
from jwst_asteroid_step.survey.tables import read_detections
from jwst_asteroid_step.survey.tracklets import link_tracklets

CLI = str(Path(sys.executable).parent / "jwst-asteroids")
GROUP_TIME = 0.08512  # SUB64 FAST
N_EXPOSURES = 6
SPACING_S = 2.0
VX = 0.25 / GROUP_TIME  # px/s


def _ramp(i, **kw):
    # The mover keeps moving between exposures: x advances VX * SPACING_S each time.
    mover = Mover(x0=14.0 + VX * SPACING_S * i, y0=32.0, vx=VX, vy=0.0, flux=20000.0)
    return simulate_ramp(subarray="SUB64", ngroups=20, movers=[mover], seed=100 + i,
                         start_mjd=60400.5 + i * SPACING_S / 86400.0,
                         filename=f"jw_survey_{i:02d}_uncal.fits", **kw)


@pytest.fixture(scope="module")
def survey_inputs(offline_refs, tmp_path_factory):
    """Six _jump (+ _fitopt) files and a step parameter file with offline references."""
    data = tmp_path_factory.mktemp("survey_inputs")
    for i in range(N_EXPOSURES):
        ramp, _ = _ramp(i)
        run_jump_and_ramp_fit(ramp, offline_refs, output_dir=data, save=True)
        for suffix in ("rate", "rateints"):
            (data / f"jw_survey_{i:02d}_{suffix}.fits").unlink()
    pars = tmp_path_factory.mktemp("survey_pars") / "asteroid_detect_offline.asdf"
    asdf.AsdfFile({"class": "jwst_asteroid_step.step.AsteroidDetectStep",
                   "name": "asteroid_detect",
                   "parameters": offline_refs.step_overrides()}).write_to(pars)
    return data, pars


@pytest.fixture(scope="module")
def reference_run(survey_inputs, tmp_path_factory):
    """An uninterrupted run, in process, with a one-worker threaded cluster."""
    from dask.distributed import Client

    data, pars = survey_inputs
    out = tmp_path_factory.mktemp("survey_reference")
    with Client(processes=False, n_workers=1, threads_per_worker=1,
                dashboard_address=None) as client:
        result = run_mine(data, out, pars=pars, client=client)
    return result, out


def _comparable(table):
    """The merged catalog without run-specific columns, sorted."""
    table = QTable(table)
    table.remove_columns([c for c in ("catalog_file",) if c in table.colnames])
    table.sort(["exposure", "integration", "id"])
    return table


def _assert_same_tables(a, b):
    assert a.colnames == b.colnames and len(a) == len(b)
    for name in a.colnames:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=0, equal_nan=True, err_msg=name)
        else:
            assert list(x) == list(y), name


def test_reference_run_finds_the_mover_everywhere(reference_run):
    result, out = reference_run
    assert result.counts["done"] == N_EXPOSURES and result.counts["failed"] == 0
    merged = read_detections(out / "survey_detections.parquet")
    assert set(merged["exposure"]) == {f"jw_survey_{i:02d}" for i in range(N_EXPOSURES)}
    assert len(merged) == result.n_detections >= N_EXPOSURES
    assert np.all(np.isfinite(merged["ra"])) and np.all(merged["source_file"] != "")
    ecsv = QTable.read(out / "survey_detections.ecsv", format="ascii.ecsv")
    _assert_same_tables(_comparable(ecsv), _comparable(merged))
    # Each exposure has its log; the step's chatter stayed out of the terminal.
    assert len(list((out / "logs").glob("*.log"))) == N_EXPOSURES


def test_killed_run_resumes_and_merges_like_an_uninterrupted_one(survey_inputs, reference_run,
                                                                  tmp_path):
    data, pars = survey_inputs
    out = tmp_path / "out"
    manifest = out / "survey_manifest.sqlite"
    cmd = [CLI, "mine", str(data), "--pars", str(pars), "-o", str(out), "--workers", "2"]
    # Its own process group, so the kill takes the LocalCluster's workers down too.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and read_counts(manifest)["done"] >= 1:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    counts = read_counts(manifest)
    assert 1 <= counts["done"] < N_EXPOSURES, (counts, proc.stdout.read().decode()[-3000:])
    with Manifest(manifest) as book:
        done_before = {r["path"]: (r["output"], Path(r["output"]).stat().st_mtime_ns)
                       for r in book.rows("done")}

    run = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{N_EXPOSURES - len(done_before)} exposure(s) processed" in run.stdout
    with Manifest(manifest) as book:
        assert book.counts()["done"] == N_EXPOSURES
        # Files finished before the kill were neither redone nor rewritten.
        for output, mtime in done_before.values():
            assert Path(output).stat().st_mtime_ns == mtime
    resumed = read_detections(out / "survey_detections.parquet")
    reference = read_detections(reference_run[1] / "survey_detections.parquet")
    _assert_same_tables(_comparable(resumed), _comparable(reference))


def test_existing_cluster_through_scheduler_option(survey_inputs, reference_run, tmp_path):
    """``--scheduler`` hands the work to a running cluster (here a LocalCluster of
    worker processes started by the test, as dask-jobqueue or Kubernetes would)."""
    from dask.distributed import LocalCluster

    data, pars = survey_inputs
    out = tmp_path / "out"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run = subprocess.run([CLI, "mine", str(data), "--pars", str(pars), "-o", str(out),
                              "--scheduler", cluster.scheduler_address],
                             check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    _assert_same_tables(_comparable(read_detections(out / "survey_detections.parquet")),
                        _comparable(read_detections(reference_run[1] / "survey_detections.parquet")))


def test_corrupt_file_is_recorded_failed_and_the_rest_succeed(survey_inputs, offline_refs,
                                                              tmp_path):
    from dask.distributed import Client

    data, pars = survey_inputs
    batch = tmp_path / "batch"
    batch.mkdir()
    for name in ("jw_survey_00_jump.fits", "jw_survey_00_fitopt.fits"):
        os.symlink(data / name, batch / name)
    (batch / "jw_broken_jump.fits").write_bytes(b"SIMPLE  = not really a FITS file" * 50)
    # An _uncal file runs the whole calwebb_detector1_asteroid (pipeline parameter file).
    ramp, truth = _ramp(1, flag_edges=False)
    save_simulation(ramp, truth, batch / "jw_survey_raw")
    pipeline_pars = write_detector1_pars(tmp_path / "detector1_offline.asdf", offline_refs)
    out = tmp_path / "out"
    with Client(processes=False, n_workers=1, threads_per_worker=1,
                dashboard_address=None) as client:
        result = run_mine(batch, out, pars=[pars, pipeline_pars], client=client)
        assert result.counts == {"pending": 0, "running": 0, "done": 2, "failed": 1}
        assert [Path(p).name for p, _ in result.failed] == ["jw_broken_jump.fits"]
        with Manifest(result.manifest) as book:
            failed = book.rows("failed")[0]
            assert failed["error"] and failed["output"] is None
            done = {r["root"]: r for r in book.rows("done")}
        assert set(done) == {"jw_survey_00", "jw_survey_raw"}
        assert (out / "jw_survey_raw_rate.fits").exists()  # the pipeline's products too
        assert all(r["step_s"] > 0 and r["wall_s"] >= r["step_s"] for r in done.values())
        merged = read_detections(out / "survey_detections.parquet")
        assert set(merged["exposure"]) <= {"jw_survey_00", "jw_survey_raw"}
        assert "jw_survey_00" in set(merged["exposure"])

        # A rerun does nothing; asking to retry runs (and fails) only the broken file.
        again = run_mine(batch, out, pars=[pars, pipeline_pars], client=client)
        assert again.processed == 0 and again.counts["done"] == 2
        retry = run_mine(batch, out, pars=[pars, pipeline_pars], client=client,
                         retry_failed=True)
        assert retry.processed == 1 and retry.counts["failed"] == 1


def test_link_and_match_end_to_end(reference_run, tmp_path):
    _, out = reference_run
    merged = read_detections(out)
    result = link_tracklets(merged)
    # One mover in six repeats: one tracklet holding each exposure once.
    best = result.tracklets[np.argmax(result.tracklets["n_members"])]
    assert best["n_members"] == N_EXPOSURES and best["n_exposures"] == N_EXPOSURES

    # The CLI: link (with ADES) and match against an ephemeris made from the fit.
    root = tmp_path / "visit"
    run = subprocess.run([CLI, "link", str(out), "-o", str(root), "--ades",
                          str(tmp_path / "visit.psv"), "--submitter", "T", "--measurer", "T"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    from jwst_asteroid_step.export.ades import read_ades_psv, validate_ades_psv

    text = (tmp_path / "visit.psv").read_text()
    assert validate_ades_psv(text) == []
    records = read_ades_psv(text)[1]
    assert sum(r["trkSub"] == "T1" for r in records) >= N_EXPOSURES
    assert all(r.get("exp") for r in records)  # exposure metadata from each catalog's header

    eph = QTable({"designation": ["2024 JW1", "Elsewhere"],
                  "mjd": [best["mjd_ref"].to_value(u.d)] * 2,
                  "ra": [best["ra"].to_value(u.deg), best["ra"].to_value(u.deg) + 0.1],
                  "dec": [best["dec"].to_value(u.deg) + 1.0 / 3600, best["dec"].to_value(u.deg)],
                  "ra_rate": [best["ra_rate"].to_value(u.arcsec / u.h)] * 2,
                  "dec_rate": [best["dec_rate"].to_value(u.arcsec / u.h)] * 2})
    eph.write(tmp_path / "eph.ecsv", format="ascii.ecsv")
    run = subprocess.run([CLI, "match", str(root) + "_tracklets.ecsv", "--ephemeris",
                          str(tmp_path / "eph.ecsv"), "-o", str(tmp_path / "known.ecsv")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    known = QTable.read(tmp_path / "known.ecsv", format="ascii.ecsv")
    row = known[np.argmax(known["n_members"])]
    assert row["known_designation"] == "2024 JW1"
    assert row["known_offset"].to_value(u.arcsec) == pytest.approx(1.0, abs=0.05)
