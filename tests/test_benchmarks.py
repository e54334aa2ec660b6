"""The benchmark bench: its smoke run end to end, and its pieces on known inputs."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from stdatamodels.jwst.datamodels import dqflags

from benchmarks.baselines import rate_baseline, seed_baseline
from benchmarks.recovery import match
from benchmarks.report import depth_gain, snr50

ROOT = Path(__file__).resolve().parents[1]
JUMP = dqflags.group["JUMP_DET"]


def test_smoke_run_writes_results(tmp_path):
    """``python benchmarks/run_all.py --smoke`` runs everything and writes the report."""
    t0 = time.perf_counter()
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--smoke", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )
    seconds = time.perf_counter() - t0
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = (tmp_path / "RESULTS.md").read_text()
    for heading in ("## Key numbers", "## Completeness vs SNR", "## Completeness vs speed",
                    "## False positives per full-frame integration", "## Measurement errors vs SNR",
                    "## Depth", "## The real ground-test ramp", "## Performance"):
        assert heading in text
    assert "Without the fast search (`fast_search=False`" in text  # its time next to the default's
    for name in ("completeness_vs_snr.png", "completeness_vs_speed.png", "errors_vs_snr.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    movers = Table.read(tmp_path / "data" / "recovery_movers.ecsv")
    assert len(movers) > 0 and {"ours_found", "seed_found", "rate_found"} <= set(movers.colnames)
    print(f"\nbenchmark smoke run: {seconds:.0f} s")
    # Rebuilding the report from the saved tables gives the same text.
    again = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--report-only", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "RESULTS.md").read_text() == text


def _tables(det_rows, truth_rows):
    det = Table(rows=det_rows, names=("integration", "x", "y", "t_int", "vx", "vy"))
    truth = Table(rows=truth_rows, names=("integration", "x", "y", "t_ref", "vx", "vy",
                                          "x_start", "y_start", "x_end", "y_end"))
    return det, truth


def test_match_rules():
    # Truth: at (50, 50) at t=10 s moving 1 px/s in x, reads from t=0 to t=40 s.
    truth_rows = [(1, 50.0, 50.0, 10.0, 1.0, 0.0, 40.0, 50.0, 80.0, 50.0)]
    det_rows = [
        (1, 55.5, 50.0, 15.0, 1.1, 0.0),   # right place at its own t_int, speed +10 %: match
        (1, 55.0, 50.0, 15.0, 0.95, 0.0),  # also right: a duplicate
        (1, 50.0, 50.0, 10.0, 2.0, 0.0),   # right place, speed +100 %: position only
        (1, 70.0, 51.0, 10.0, 0.3, 0.0),   # on the track, but at another time: a fragment
        (1, 80.0, 80.0, 10.0, 1.0, 0.0),   # nowhere near: false
        (2, 50.0, 50.0, 10.0, 1.0, 0.0),   # other integration: false
    ]
    truth_det, near, status = match(*_tables(det_rows, truth_rows), tolerance_px=2.0)
    assert truth_det.tolist() == [1]  # the closest matching detection
    assert near.tolist() == [True]
    assert status.tolist() == ["duplicate", "match", "position_only", "on_track", "false", "false"]


def test_snr50_and_depth_gain():
    rng = np.random.default_rng(1)
    snr = np.exp(rng.uniform(np.log(3), np.log(100), 4000))
    p_ours = 1 / (1 + np.exp(-(np.log(snr) - np.log(6.0)) / 0.1))
    p_seed = 1 / (1 + np.exp(-(np.log(snr) - np.log(24.0)) / 0.1))
    ours = rng.uniform(size=snr.size) < p_ours
    seed = rng.uniform(size=snr.size) < p_seed
    assert snr50(snr, ours) == pytest.approx(6.0, rel=0.08)
    assert snr50(snr, seed) == pytest.approx(24.0, rel=0.08)
    assert snr50(snr, np.zeros(snr.size, bool)) == np.inf
    movers = Table({"snr": snr, "ours_found": ours, "seed_found": seed,
                    "ours_ran": np.ones(snr.size, bool), "seed_ran": np.ones(snr.size, bool)})
    g = depth_gain(movers, np.ones(snr.size, bool), n_boot=20)
    assert g["dmag"] == pytest.approx(2.5 * np.log10(4.0), abs=0.15)
    assert not g["bound"] and g["dmag_lo"] <= g["dmag"] <= g["dmag_hi"]


def test_seed_baseline_follows_a_flagged_line():
    ngroups, ny, nx, gt = 30, 40, 40, 2.0
    sci = np.cumsum(np.random.default_rng(2).normal(10, 1, (1, ngroups, ny, nx)), axis=1).astype("f4")
    gdq = np.zeros(sci.shape, dtype=np.uint8)
    for g in range(5, 25):  # 0.5 px/group along x: difference g - 1 at x = 10 + 0.5 (g - 1)
        x = round(10 + 0.5 * (g - 1))
        gdq[0, g, 20, x] = JUMP
        sci[0, g:, 20, x] += 200.0
    det = seed_baseline(sci, gdq, np.zeros((ny, nx), np.uint32), gt)
    assert len(det) == 1
    assert det["vx"][0] == pytest.approx(0.5 / gt, rel=0.1)
    assert abs(det["vy"][0]) < 0.05 / gt
    assert det["y"][0] == pytest.approx(20.0, abs=0.5)
    assert det["flux"][0] > 0 and not det["direction_ambiguous"][0]


def test_rate_baseline_finds_streaks_not_stars():
    ny, nx, fwhm = 128, 128, 2.5
    sigma = fwhm / 2.3548
    yy, xx = np.mgrid[:ny, :nx].astype(float)
    image = np.random.default_rng(3).normal(5.0, 0.1, (ny, nx))
    image += 30 * np.exp(-((xx - 30) ** 2 + (yy - 30) ** 2) / (2 * sigma**2))  # a star
    length, t_span = 30.0, 100.0
    for s in np.linspace(-0.5, 0.5, 300):  # a streak along +x+y at 45 degrees, ramp_fit-weighted
        u = s + 0.5
        cx, cy = 80 + s * length / np.sqrt(2), 80 + s * length / np.sqrt(2)
        image += 0.4 * 6 * u * (1 - u) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    det = rate_baseline(image, np.full((ny, nx), 0.1), np.zeros((ny, nx), np.uint32), fwhm, 0.0, t_span)
    assert len(det) == 1
    row = det[0]
    assert row["direction_ambiguous"]
    assert np.hypot(row["x"] - 80, row["y"] - 80) < 1.0
    assert abs(abs(row["vx"]) - abs(row["vy"])) < 0.1 * abs(row["vx"])
    assert np.hypot(row["vx"], row["vy"]) == pytest.approx(length / t_span, rel=0.2)


def test_subset_runs_the_selected_grid_ramps(capsys):
    from benchmarks import subset

    subset.main(["--select", 's.kind == "empty" and s.ngroups == 10 and s.filter == "F770W" and s.timing == "native"'])
    out = capsys.readouterr().out
    assert out.startswith("1 ramps")
    assert "empty F770W ngroups=10 native" in out
    assert "total: 0/0 movers found" in out


def test_step_time_compares_both_searches_with_jump_and_ramp_fit():
    from benchmarks.step_time import time_step

    (row,) = time_step(10, 1, subarray="SUB64", progress=lambda msg: None)
    assert row["jump"] > 0 and row["ramp_fit"] > 0
    for name in ("default", "no_fast"):
        assert row[f"{name}_ratio"] == pytest.approx(row[name] / (row["jump"] + row["ramp_fit"]))


def test_step_memory_reports_one_call_in_cubes(capsys):
    from benchmarks import step_memory

    assert step_memory.main(["--ngroups", "10", "--subarray", "SUB64"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("10 groups: +") and "cubes of" in out


@pytest.mark.parametrize("beta", [2.0, 4.0])
def test_psf_families_moffat_has_its_fwhm_and_its_light(beta):
    """The bench's Moffat family: the asked-for FWHM, broadened a little by the pixel, and the
    light its 49-px grid holds of a profile normalised to infinity (between the inscribed and
    the circumscribed circles)."""
    from benchmarks.psf_families import moffat_psf

    psf = moffat_psf(2.45, beta)
    assert 2.45 < psf.fwhm < 2.9
    alpha = 2.45 / (2 * np.sqrt(2 ** (1 / beta) - 1))

    def ee(r):
        return 1 - (1 + r**2 / alpha**2) ** (1 - beta)

    assert ee(24.5) < psf.enclosed < ee(24.5 * np.sqrt(2))


def test_psf_families_brighter_fatter_broadens_and_keeps_the_light():
    from benchmarks.psf_families import broadened
    from jwst_asteroid_step.psf import instrument_psf

    psf = instrument_psf("F770W")
    wider = broadened(psf, 0.2)
    assert wider.fwhm / psf.fwhm - 1 == pytest.approx(0.2, abs=0.03)
    assert wider.enclosed == pytest.approx(psf.enclosed, rel=0.01)


def test_psf_families_summary_pools_every_family_and_gives_standard_errors():
    """A row of ~15 movers cannot pin a pull width to 0.8-1.25 (its scatter is ~0.3): each row
    carries bootstrap errors, and a pooled row per filter and model measures them all."""
    from benchmarks.psf_families import markdown, summarise

    rng = np.random.default_rng(3)

    def result(family, n=16):
        movers = [{"family": family, "filter": "F770W", "model": "refined", "ramp": 0, "snr": 30.0,
                   "found": True, "dflux": 0.01 * p, "pull_flux": p, "dpos": 0.01, "dspeed": 0.001}
                  for p in rng.normal(size=n)]
        return {"movers": movers, "ghosts": 0, "wrong_velocity": 0, "false": 0, "bright": 0,
                "seconds": 1.0, "family": family, "filter": "F770W", "model": "refined"}

    table = summarise([result("gaussian"), result("moffat")])
    assert [r["family"] for r in table] == ["gaussian", "moffat", "every family"]
    pooled = table[-1]
    assert pooled["n"] == 32 and pooled["flux pull width se"] < table[0]["flux pull width se"]
    assert 0.1 < table[0]["flux pull width se"] < 0.5 and 0 < table[0]["flux bias se"] < 0.01
    assert "| every family | F770W | refined | 32/32 |" in markdown(table, 1)


def test_crowded_scene_holds_galaxies_saturating_stars_and_movers_crossing_stars():
    """The crowded bench's sky: Sérsic galaxies with their flux, stars bright enough to
    saturate in 50 FULL groups, and the first movers on bright stars."""
    from benchmarks import crowded
    from jwst_asteroid_step.psf import instrument_psf
    from jwst_asteroid_step.simulate.metadata import group_time_for

    one = crowded.galaxy_image(np.random.default_rng(1), instrument_psf("F770W"), 1)
    assert crowded.GALAXY_FLUX[0] * 0.95 < one.sum() < crowded.GALAXY_FLUX[1]
    sky, movers, psf = crowded.scene(0)
    ramp_charge = (sky.max() - 0) * crowded.NGROUPS * group_time_for("FULL")
    assert ramp_charge > 40000  # the brightest stars saturate
    for m in movers[:crowded.N_CROSSING]:
        assert sky[round(m.y0), round(m.x0)] > 5 * float(np.median(sky))
    assert crowded.upper_limit(0) / 12 < 0.2


def test_long_trails_ramps_hold_long_fast_trails_one_off_the_array():
    """The long-trail bench's movers run 1-3 px/group, their trails tens to hundreds of px, and
    the fourth starts near a corner: its trail enters or leaves the array."""
    from benchmarks.long_trails import FILTERS, SIZE, bench_ramp

    _, truth, psf = bench_ramp("moffat", "F2100W", 0)
    assert len(truth) == 4 and "Moffat" in psf.name
    assert np.all((truth["speed_px_per_group"] >= 1.0) & (truth["speed_px_per_group"] <= 3.0))
    trail = np.hypot(truth["x_end"] - truth["x_start"], truth["y_end"] - truth["y_start"])
    assert np.all(trail >= 0.9 * (FILTERS["F2100W"] - 1))
    corner = truth[3]
    t = np.linspace(0.0, 1.0, 50)
    xs = corner["x_start"] + t * (corner["x_end"] - corner["x_start"])
    ys = corner["y_start"] + t * (corner["y_end"] - corner["y_start"])
    assert np.any((xs < 0) | (ys < 0) | (xs > SIZE - 1) | (ys > SIZE - 1))
