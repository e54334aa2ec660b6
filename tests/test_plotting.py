"""Detection figures (jwst_asteroid_step.plotting), on real jwst jump/ramp_fit products."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.image import imread

from jwst_asteroid_step.cli import main
from jwst_asteroid_step.datamodels import AsteroidCatalogModel, empty_catalog
from jwst_asteroid_step.plotting import approximate_rate, plot_detections
from jwst_asteroid_step.plotting.figures import _Detection, _stacks
from jwst_asteroid_step.ramp.differences import IntegrationDifferences


@pytest.fixture(scope="module")
def truth_catalog(bright_mover_products):
    """A catalog holding the simulated mover's true track (no detection run needed)."""
    jump, truth = bright_mover_products["jump"], bright_mover_products["truth"]
    t_int = 8.0
    cat = empty_catalog(1)
    cat["id"], cat["integration"], cat["t_int"] = 1, 1, t_int
    cat["x"] = truth["x"][0] + truth["vx"][0] * (t_int - truth["t_ref"][0])
    cat["y"] = truth["y"][0] + truth["vy"][0] * (t_int - truth["t_ref"][0])
    cat["vx"], cat["vy"] = truth["vx"][0], truth["vy"][0]
    cat["flux"], cat["snr"], cat["method"] = truth["flux"][0], truth["snr"][0], b"jump"
    model = AsteroidCatalogModel()
    model.update(jump)
    model.meta.filename = "jw_bright_mover_asteroids.asdf"
    model.catalog = cat
    return model


def _is_png(path, min_bytes=20_000):
    image = imread(path)
    return path.stat().st_size > min_bytes and image.ndim == 3 and image.shape[0] > 300


def test_plot_detections_writes_one_png_per_detection_and_a_summary(
        truth_catalog, bright_mover_products, tmp_path):
    paths = plot_detections(truth_catalog, bright_mover_products["jump"],
                            rate_image=bright_mover_products["rate"], output_dir=tmp_path / "figs")
    assert [p.name for p in paths] == ["jw_bright_mover_det1.png", "jw_bright_mover_summary.png"]
    assert all(_is_png(p) for p in paths)


def test_shift_and_stack_puts_the_mover_at_the_catalog_position(truth_catalog,
                                                                bright_mover_products):
    jump = bright_mover_products["jump"]
    group_time = jump.meta.exposure.group_time
    row = truth_catalog.catalog[0]
    t_end = (jump.meta.exposure.ngroups - 1) * group_time
    det = _Detection(row, 0.0, t_end, jump.data.shape[-2:], fwhm=2.45)
    box = (slice(None),) + det.box
    diffs = IntegrationDifferences(jump.data[0][box], jump.groupdq[0][box], jump.pixeldq[det.box])
    plain, stacked = _stacks(det, diffs.diff, group_time)
    iy, ix = np.unravel_index(np.nanargmax(stacked), stacked.shape)
    assert abs(ix + det.x0 - row["x"]) <= 1 and abs(iy + det.y0 - row["y"]) <= 1
    # Stacking along the motion concentrates the flux; without shifting it is a streak.
    assert np.nanmax(stacked) > 3 * np.nanmax(plain)


def test_approximate_rate_matches_ramp_fit_away_from_sources(bright_mover_products):
    jump, rate = bright_mover_products["jump"], bright_mover_products["rate"]
    approx = approximate_rate(jump.data[0], jump.groupdq[0], jump.meta.exposure.group_time)
    sky = np.isfinite(rate.data) & (rate.dq == 0)
    assert np.nanmedian(approx[sky]) == pytest.approx(np.nanmedian(rate.data[sky]), rel=0.05)


def test_plots_without_ramp_or_rate(truth_catalog, bright_mover_products, tmp_path):
    paths = plot_detections(truth_catalog, rate_image=bright_mover_products["rate"],
                            output_dir=tmp_path, root="rate_only")
    assert all(_is_png(p, 10_000) for p in paths)
    paths = plot_detections(truth_catalog.catalog, output_dir=tmp_path, root="bare")
    assert [p.name for p in paths] == ["bare_det1.png", "bare_summary.png"]


def test_cli_plot(truth_catalog, bright_mover_products, tmp_path):
    catalog = tmp_path / "jw_bright_mover_asteroids.asdf"
    truth_catalog.save(catalog)
    rate = bright_mover_products["dir"] / "jw_bright_mover_rate.fits"
    assert main(["plot", str(catalog), "--ramp", str(bright_mover_products["jump_path"]),
                 "--rate", str(rate), "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "jw_bright_mover_det1.png", "jw_bright_mover_summary.png"]
