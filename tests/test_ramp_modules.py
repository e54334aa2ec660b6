"""Tests of the ramp modules: differences, events and the fitopt check.

Modules: jwst_asteroid_step.ramp.differences, jwst_asteroid_step.ramp.events,
jwst_asteroid_step.ramp.segments.
"""

import numpy as np
import pytest
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from jwst_asteroid_step.ramp.differences import (
    IntegrationDifferences,
    group_differences,
    jump_cells,
    pixel_background,
)
from jwst_asteroid_step.ramp.events import (
    COSMIC_RAY,
    EVENT_KINDS,
    MOVER,
    PIXEL_NOISE,
    SHOWER,
    Events,
    classify_events,
    cluster_cells,
    link_instants,
)
from jwst_asteroid_step.ramp.segments import check_fitopt
from jwst_asteroid_step.ramp.usable import usable_groupdq

G_DNU = dqflags.group["DO_NOT_USE"]
G_SAT = dqflags.group["SATURATED"]
G_JUMP = dqflags.group["JUMP_DET"]
P_DNU = dqflags.pixel["DO_NOT_USE"]
P_REF = dqflags.pixel["REFERENCE_PIXEL"]
P_HOT = dqflags.pixel["HOT"]

NG, NY, NX = 6, 3, 4


def ramp(seed=0):
    """A small random ramp (NG, NY, NX) with clean DQ arrays."""
    rng = np.random.default_rng(seed)
    sci = np.cumsum(rng.uniform(0, 50, (NG, NY, NX)), axis=0).astype(np.float32)
    return sci, np.zeros((NG, NY, NX), np.uint8), np.zeros((NY, NX), np.uint32)


# --- group differences -------------------------------------------------------------


def test_clean_differences_are_successive_read_differences():
    sci, gdq, pdq = ramp()
    diff = group_differences(sci, gdq, pdq)
    assert diff.shape == (NG - 1, NY, NX)
    assert diff.dtype == np.float32
    np.testing.assert_allclose(diff, np.diff(sci, axis=0), rtol=1e-6)


@pytest.mark.parametrize("flag", [G_DNU, G_SAT])
def test_bad_group_masks_both_differences_it_touches(flag):
    sci, gdq, pdq = ramp()
    gdq[3, 1, 2] = flag
    diff = group_differences(sci, gdq, pdq)
    bad = np.zeros(diff.shape, bool)
    bad[2:4, 1, 2] = True  # differences 2 (reads 2-3) and 3 (reads 3-4)
    assert np.all(np.isnan(diff[bad]))
    assert np.all(np.isfinite(diff[~bad]))


def test_do_not_use_first_group_masks_first_difference_only():
    sci, gdq, pdq = ramp()
    gdq[0] |= G_DNU
    gdq[-1] |= G_DNU
    diff = group_differences(sci, gdq, pdq)
    assert np.all(np.isnan(diff[0])) and np.all(np.isnan(diff[-1]))
    assert np.all(np.isfinite(diff[1:-1]))


def test_saturation_to_end_of_ramp_masks_remaining_differences():
    sci, gdq, pdq = ramp()
    gdq[4:, 0, 0] |= G_SAT
    diff = group_differences(sci, gdq, pdq)
    assert np.all(np.isfinite(diff[:3, 0, 0]))
    assert np.all(np.isnan(diff[3:, 0, 0]))


@pytest.mark.parametrize("flag", [P_DNU, P_REF, P_DNU | P_HOT])
def test_bad_pixel_masks_every_difference(flag):
    sci, gdq, pdq = ramp()
    pdq[2, 3] = flag
    diff = group_differences(sci, gdq, pdq)
    assert np.all(np.isnan(diff[:, 2, 3]))
    diff[:, 2, 3] = 0
    assert np.all(np.isfinite(diff))


def test_other_flags_do_not_mask():
    sci, gdq, pdq = ramp()
    pdq[:] = P_HOT
    gdq[:] = G_JUMP
    assert np.all(np.isfinite(group_differences(sci, gdq, pdq)))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_read_masks_its_differences(value):
    sci, gdq, pdq = ramp()
    sci[2, 0, 1] = value
    diff = group_differences(sci, gdq, pdq)
    assert np.all(np.isnan(diff[1:3, 0, 1]))
    assert np.isfinite(diff[0, 0, 1]) and np.all(np.isfinite(diff[3:, 0, 1]))


# --- jump cells --------------------------------------------------------------------


def test_jump_on_group_k_plus_one_labels_difference_k():
    sci, gdq, pdq = ramp()
    gdq[3, 1, 2] |= G_JUMP
    d = IntegrationDifferences(sci, gdq, pdq)
    assert d.n_diffs == NG - 1
    expected = np.zeros((NG - 1, NY, NX), bool)
    expected[2, 1, 2] = True
    np.testing.assert_array_equal(d.jump, expected)
    np.testing.assert_array_equal(jump_cells(d.jump), [[2, 1, 2]])


def test_jump_on_unusable_difference_is_dropped():
    sci, gdq, pdq = ramp()
    gdq[3, 1, 2] |= G_JUMP | G_SAT
    gdq[2, 0, 0] |= G_JUMP
    pdq[0, 0] = P_DNU
    d = IntegrationDifferences(sci, gdq, pdq)
    assert not d.jump.any()


def test_jump_on_first_group_labels_no_difference():
    sci, gdq, pdq = ramp()
    gdq[0, 1, 1] |= G_JUMP
    assert not IntegrationDifferences(sci, gdq, pdq).jump.any()


def test_jump_cells_are_k_y_x_int32_rows():
    jump = np.zeros((4, 5, 6), bool)
    jump[1, 2, 3] = jump[3, 0, 5] = True
    cells = jump_cells(jump)
    assert cells.dtype == np.int32
    np.testing.assert_array_equal(cells, [[1, 2, 3], [3, 0, 5]])


def test_jump_cells_of_no_jumps_is_empty_n_by_3():
    assert jump_cells(np.zeros((4, 5, 6), bool)).shape == (0, 3)


# --- pixel background --------------------------------------------------------------


def test_background_is_median_difference():
    diff = np.zeros((5, 1, 2), np.float32)
    diff[:, 0, 0] = [3, 1, 100, 2, 4]  # a cosmic ray does not move the median
    diff[:, 0, 1] = [1, 2, 3, 4, np.nan]
    med, n = pixel_background(diff)
    np.testing.assert_allclose(med, [[3.0, 2.5]])
    np.testing.assert_array_equal(n, [[5, 4]])
    assert med.dtype == np.float32 and n.dtype == np.int32


def test_background_leaves_out_excluded_differences():
    diff = np.array([1, 2, 3, 50, 60], np.float32).reshape(5, 1, 1)
    exclude = np.zeros(diff.shape, bool)
    exclude[3:] = True
    med, n = pixel_background(diff, exclude)
    assert med[0, 0] == 2.0 and n[0, 0] == 3


def test_background_is_nan_for_fully_masked_pixel():
    diff = np.ones((4, 2, 2), np.float32)
    diff[:, 0, 0] = np.nan
    exclude = np.zeros(diff.shape, bool)
    exclude[:, 1, 1] = True
    med, n = pixel_background(diff, exclude)
    assert np.isnan(med[0, 0]) and np.isnan(med[1, 1])
    assert n[0, 0] == 0 and n[1, 1] == 0
    assert med[0, 1] == 1.0 and n[0, 1] == 4


def test_background_matches_numpy_nanmedian_on_random_data():
    rng = np.random.default_rng(42)
    diff = rng.normal(10, 3, (37, 20, 23)).astype(np.float32)
    diff[rng.random(diff.shape) < 0.2] = np.nan
    diff[:, 4, 5] = np.nan
    exclude = rng.random(diff.shape) < 0.1
    med, n = pixel_background(diff, exclude)
    masked = np.where(exclude, np.nan, diff)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):
        expected = np.nanmedian(masked, axis=0)
    np.testing.assert_allclose(med, expected, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(n, np.sum(np.isfinite(masked), axis=0))


def test_background_without_exclusions_matches_numpy_nanmedian():
    rng = np.random.default_rng(3)
    diff = rng.exponential(5, (16, 9, 11)).astype(np.float32)  # even count: mean of middle two
    diff[rng.random(diff.shape) < 0.1] = np.nan
    med, _ = pixel_background(diff)
    np.testing.assert_allclose(med, np.nanmedian(diff, axis=0), rtol=1e-6)


def noisy_sky_medians(level=13.9, n=30, shape=(40, 50), seed=0):
    """Per-pixel medians of n differences on a flat sky, with their real scatter."""
    rng = np.random.default_rng(seed)
    sigma_median = 1.2533 * np.sqrt(7.0**2 + level / 4.0) / np.sqrt(n)
    median = (level + rng.normal(0, sigma_median, shape)).astype(np.float32)
    return median, np.full(shape, n)


def cells(*rows):
    return np.array(rows, dtype=np.int32).reshape(-1, 3)


def same_cluster(labels, i, j):
    return labels[i] == labels[j]


def test_cluster_of_no_cells_is_empty():
    assert cluster_cells(cells()).shape == (0,)


@pytest.mark.parametrize("dy, dx", [(0, 1), (1, 1), (1, 0), (-1, 1)])
def test_neighbouring_pixels_at_one_instant_link(dy, dx):
    labels = cluster_cells(cells((5, 10, 10), (5, 10 + dy, 10 + dx)))
    assert same_cluster(labels, 0, 1)


@pytest.mark.parametrize("dy, dx", [(0, 2), (2, 0), (2, 2)])
def test_pixels_two_apart_do_not_link(dy, dx):
    labels = cluster_cells(cells((5, 10, 10), (5, 10 + dy, 10 + dx)), link_px=1.5)
    assert not same_cluster(labels, 0, 1)


def test_wider_link_px_links_farther_pixels():
    labels = cluster_cells(cells((5, 10, 10), (5, 10, 13)), link_px=3.0)
    assert same_cluster(labels, 0, 1)


@pytest.mark.parametrize("gap, linked", [(1, True), (2, True), (3, False)])
def test_time_linking_within_link_groups(gap, linked):
    labels = cluster_cells(cells((4, 7, 7), (4 + gap, 7, 7)), link_px=1.5, link_groups=2)
    assert same_cluster(labels, 0, 1) == linked


def test_time_and_space_limits_apply_together():
    # Two differences apart in time and one pixel apart in space: linked.
    # Two differences and two pixels apart: not.
    labels = cluster_cells(cells((4, 7, 7), (6, 7, 8), (8, 7, 10)), link_px=1.5, link_groups=2)
    assert same_cluster(labels, 0, 1)
    assert not same_cluster(labels, 1, 2)


def test_linking_is_transitive_along_a_chain():
    chain = cells(*[(k, 20, 10 + k) for k in range(8)])
    assert np.unique(cluster_cells(chain)).size == 1


# --- classification ----------------------------------------------------------------


def classify(c, **kwargs):
    return classify_events(c, cluster_cells(c), **kwargs)


def block(k, y0, x0, h, w):
    return [(k, y, x) for y in range(y0, y0 + h) for x in range(x0, x0 + w)]


def test_compact_one_instant_cluster_is_cosmic_ray():
    ev = classify(cells(*block(7, 10, 10, 2, 2)))
    assert list(ev.kind) == [COSMIC_RAY]


def test_lone_single_cell_flag_is_pixel_noise():
    # A real cosmic ray big enough to flag lights its neighbours too.
    assert list(classify(cells((3, 4, 5))).kind) == [PIXEL_NOISE]


def test_three_pixel_one_instant_cluster_is_cosmic_ray():
    assert list(classify(cells((3, 4, 5), (3, 4, 6), (3, 5, 5))).kind) == [COSMIC_RAY]


def test_large_one_instant_cluster_is_shower():
    ev = classify(cells(*block(7, 10, 10, 6, 6)), shower_min_pixels=30)
    assert list(ev.kind) == [SHOWER]


def test_shower_threshold_is_inclusive():
    c = cells(*block(7, 10, 10, 5, 6))  # 30 pixels
    assert list(classify(c, shower_min_pixels=30).kind) == [SHOWER]
    assert list(classify(c, shower_min_pixels=31).kind) == [COSMIC_RAY]


def test_cosmic_ray_with_afterglow_in_next_difference_is_cosmic_ray():
    c = cells(*block(7, 10, 10, 2, 2), *block(8, 10, 10, 2, 2))
    assert list(classify(c).kind) == [COSMIC_RAY]


def test_one_pixel_at_many_instants_is_pixel_noise():
    c = cells(*[(k, 30, 40) for k in (2, 3, 5, 6, 8)])
    assert list(classify(c).kind) == [PIXEL_NOISE]


def test_diagonal_walk_over_three_differences_is_mover_candidate():
    c = cells((10, 20, 20), (11, 21, 21), (12, 22, 22))
    assert list(classify(c).kind) == [MOVER]


def test_long_walk_with_wide_footprint_is_mover_candidate():
    # A bright mover: 2x2 pixels flagged per difference, moving 0.5 px per difference.
    c = cells(*[cell for k in range(16) for cell in block(k, 10 + k // 2, 5 + k // 2, 2, 2)])
    assert list(classify(c).kind) == [MOVER]


def test_walk_over_two_differences_is_not_mover_candidate():
    c = cells((10, 20, 20), (11, 21, 21))
    assert classify(c).kind[0] != MOVER


def test_min_mover_groups_sets_required_duration():
    c = cells(*[(k, 20 + k, 20 + k) for k in range(4)])
    assert list(classify(c, min_mover_groups=4).kind) == [MOVER]
    assert classify(c, min_mover_groups=5).kind[0] != MOVER


def test_stationary_blob_at_many_instants_is_not_mover_candidate():
    c = cells(*[cell for k in range(6) for cell in block(k, 10, 10, 2, 2)])
    assert classify(c).kind[0] != MOVER


def test_mixed_scene_is_labelled_event_by_event():
    cr = block(3, 5, 5, 2, 2)
    shower = block(9, 40, 40, 6, 6)
    noise = [(k, 60, 2) for k in (1, 3, 5)]
    mover = [(k, 20 + k, 30 + k) for k in range(10, 16)]
    c = cells(*cr, *shower, *noise, *mover)
    ev = classify(c)
    assert len(ev.kind) == 4
    kind_of_cell = ev.kind[ev.label]
    n_cr, n_sh, n_no = len(cr), len(shower), len(noise)
    assert np.all(kind_of_cell[:n_cr] == COSMIC_RAY)
    assert np.all(kind_of_cell[n_cr : n_cr + n_sh] == SHOWER)
    assert np.all(kind_of_cell[n_cr + n_sh : n_cr + n_sh + n_no] == PIXEL_NOISE)
    assert np.all(kind_of_cell[n_cr + n_sh + n_no :] == MOVER)
    assert ev.counts() == {"cosmic_ray": 1, "shower": 1, "mover_candidate": 1, "pixel_noise": 1}


def test_classify_no_cells_gives_no_events():
    ev = classify(cells())
    assert ev.kind.size == 0
    assert ev.counts() == dict.fromkeys(EVENT_KINDS, 0)


# --- rows of one-instant events ------------------------------------------------------


def fast_row(ks, x0=20.0, y0=100.0, step=(3.3, -1.2)):
    """A 2 x 2 block of flags at each difference in ks, stepping ``step`` px per difference."""
    out = []
    for k in ks:
        x, y = round(x0 + step[0] * k), round(y0 + step[1] * k)
        out += block(k, y, x, 2, 2)
    return out


def scattered_cosmic_rays(n, n_diff, size, seed, away_from=()):
    """Two-pixel cosmic rays at random, none touching the cells ``away_from`` (in space and time)."""
    rng = np.random.default_rng(seed)
    avoid = np.array(away_from, dtype=float).reshape(-1, 3)
    out = []
    for k, y, x in zip(rng.integers(0, n_diff, n), rng.integers(2, size - 2, n), rng.integers(2, size - 2, n)):
        if len(avoid) and np.any(np.max(np.abs(avoid - [k, y, x]), axis=1) <= 3):
            continue
        out += [(k, y, x), (k, y, x + 1)]
    return out


def linked(c, **kwargs):
    return link_instants(classify(c), **kwargs)


def test_a_fast_movers_row_of_cosmic_ray_like_events_becomes_one_mover_candidate():
    # 3.3 px per difference: each difference's flags are a separate compact event,
    # which classify_events calls a cosmic ray; a few differences are unflagged.
    row = fast_row([k for k in range(2, 40) if k % 7 != 3])
    noise = scattered_cosmic_rays(300, 45, 200, seed=5, away_from=row)
    c = cells(*row, *noise)
    before = classify(c)
    assert set(before.kind[before.label[: len(row)]]) == {COSMIC_RAY}
    ev = link_instants(before)
    row_labels = np.unique(ev.label[: len(row)])
    assert row_labels.size == 1 and ev.kind[row_labels[0]] == MOVER
    # Nothing else joined the row, and the scattered cosmic rays keep their kind.
    assert np.sum(ev.label == row_labels[0]) == len(row)
    assert ev.counts()["mover_candidate"] == 1
    assert ev.counts()["cosmic_ray"] == before.counts()["cosmic_ray"] - (len(before.kind) - len(ev.kind)) - 1
    # Labels stay compact: every event has cells.
    assert np.array_equal(np.unique(ev.label), np.arange(ev.kind.size))


def test_a_row_shorter_than_min_events_is_left_alone():
    c = cells(*fast_row([3, 4, 5, 6]))
    assert list(linked(c).kind) == [COSMIC_RAY] * 4
    assert list(linked(c, min_events=4).kind) == [MOVER]


@pytest.mark.parametrize("step, linked_row", [((3.3, -1.2), True), ((12.0, 0.0), False), ((0.0, 0.0), False)])
def test_only_steps_within_the_speed_range_link(step, linked_row):
    ev = linked(cells(*fast_row(range(10, 18), step=step)), max_speed=10.0)
    assert (list(ev.kind) == [MOVER]) == linked_row


def test_events_off_a_straight_path_do_not_link():
    # 3.3 px per difference, turning by 30 degrees at each: a circle of 6.4 px radius.
    turn = np.radians(30.0) * np.arange(12)
    circle = [c for k, a in zip(range(10, 22), turn)
              for c in block(k, round(100 + 6.4 * np.sin(a)), round(100 + 6.4 * np.cos(a)), 2, 2)]
    before = classify(cells(*circle))
    assert list(before.kind) == [COSMIC_RAY] * 12
    assert MOVER not in link_instants(before).kind


def test_events_lasting_several_differences_are_not_linked():
    # A pixel flagged at many instants (hot pixel) along a fast row stays what it was.
    row = fast_row(range(10, 20))
    hot = [(k, 100 - 2, 20 + 33) for k in range(0, 40, 4)]  # near the row's place at k = 11..12
    ev = linked(cells(*row, *hot))
    assert ev.kind[ev.label[len(row)]] == PIXEL_NOISE
    assert ev.kind[ev.label[0]] == MOVER


def test_link_instants_without_events():
    ev = linked(cells())
    assert ev.kind.size == 0


# --- Events ------------------------------------------------------------------------


def test_counts_name_every_kind():
    ev = Events(cells=cells((0, 0, 0), (5, 5, 5)), label=np.array([0, 1]), kind=np.array([0, 0]))
    assert ev.counts() == {"cosmic_ray": 2, "shower": 0, "mover_candidate": 0, "pixel_noise": 0}


def test_cells_of_returns_one_event():
    c = cells((0, 0, 0), (5, 5, 5), (6, 5, 5))
    ev = Events(cells=c, label=np.array([0, 1, 1]), kind=np.array([COSMIC_RAY, PIXEL_NOISE]))
    np.testing.assert_array_equal(ev.cells_of(1), c[1:])


def test_mask_of_kinds_marks_only_cells_of_those_kinds():
    c = cells((0, 1, 1), (2, 3, 3), (4, 0, 2))
    ev = Events(cells=c, label=np.array([0, 1, 2]), kind=np.array([COSMIC_RAY, MOVER, SHOWER]))
    mask = ev.mask_of_kinds((5, 4, 4), (COSMIC_RAY, SHOWER))
    assert mask.shape == (5, 4, 4) and mask.dtype == bool
    assert mask.sum() == 2
    assert mask[0, 1, 1] and mask[4, 0, 2] and not mask[2, 3, 3]


def test_mask_of_no_matching_kinds_is_empty():
    ev = Events(cells=cells((0, 1, 1)), label=np.array([0]), kind=np.array([MOVER]))
    assert not ev.mask_of_kinds((2, 3, 3), (COSMIC_RAY,)).any()


# --- fitopt check ------------------------------------------------------------------


def ramp_and_fitopt(nints=2, ny=8, nx=10, fit_shape=None):
    r = datamodels.RampModel(data=np.zeros((nints, 5, ny, nx), np.float32))
    f = datamodels.RampFitOutputModel(
        slope=np.zeros(fit_shape or (nints, 3, ny, nx), np.float32)
    )
    for m in (r, f):
        m.meta.exposure.start_time = 60000.5
        m.meta.instrument.detector = "MIRIMAGE"
        m.meta.instrument.filter = "F770W"
        m.meta.observation.program_number = "01234"
    return r, f


def test_matching_fitopt_passes():
    check_fitopt(*ramp_and_fitopt())


@pytest.mark.parametrize("fit_shape", [(2, 3, 8, 9), (2, 3, 7, 10), (1, 3, 8, 10), (3, 1, 8, 10)])
def test_fitopt_of_other_shape_raises_naming_shape(fit_shape):
    r, f = ramp_and_fitopt(fit_shape=fit_shape)
    with pytest.raises(ValueError, match="shape") as err:
        check_fitopt(r, f)
    assert str(fit_shape) in str(err.value)
    assert "_fitopt" in str(err.value)


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("instrument", "filter", "F1000W"),
        ("exposure", "start_time", 60001.5),
        ("observation", "program_number", "04321"),
        ("instrument", "detector", "MIRIFULONG"),
    ],
)
def test_fitopt_from_other_exposure_raises_naming_metadata(section, key, value):
    r, f = ramp_and_fitopt()
    setattr(getattr(f.meta, section), key, value)
    with pytest.raises(ValueError, match=rf"meta\.{section}\.{key}") as err:
        check_fitopt(r, f)
    assert repr(value) in str(err.value)


def test_metadata_missing_on_one_side_is_not_a_mismatch():
    r, f = ramp_and_fitopt()
    f.meta.instrument.filter = None
    check_fitopt(r, f)


# --- usable flags (ramp/usable.py) -------------------------------------------------


def _flags_case():
    data = np.zeros((2, 6, 10, 10), np.float32)
    groupdq = np.zeros(data.shape, np.uint8)
    return data, groupdq, np.zeros((10, 10), np.uint32)


def test_usable_flags_unchanged_input_is_returned_as_is():
    data, groupdq, pixeldq = _flags_case()
    flags = usable_groupdq(data, groupdq, pixeldq, 0.01)
    assert flags.groupdq is groupdq and flags.n_bad_reads == 0 and not flags.storms
    assert flags.n_usable == 2 * 5 * 100


@pytest.mark.parametrize("value", [np.nan, np.inf, 2e9])
def test_unreadable_read_becomes_do_not_use_in_a_copy(value):
    data, groupdq, pixeldq = _flags_case()
    data[1, 3, 4, 5] = value
    flags = usable_groupdq(data, groupdq, pixeldq, 0.01)
    assert flags.n_bad_reads == 1 and flags.groupdq is not groupdq and not groupdq.any()
    assert flags.groupdq[1, 3, 4, 5] & G_DNU


def test_storm_integration_loses_its_jump_flags():
    data, groupdq, pixeldq = _flags_case()
    groupdq[0, 2, :5] = G_JUMP  # 50 of 500 usable differences: a storm at 1 %
    groupdq[1, 2, 0, 0] = G_JUMP  # one flag: no storm
    flags = usable_groupdq(data, groupdq, pixeldq, 0.01)
    assert flags.storms == [(0, 50, 500)]
    assert not (flags.groupdq[0] & G_JUMP).any() and (flags.groupdq[0, 2, :5] & G_DNU).all()
    assert flags.groupdq[1, 2, 0, 0] == G_JUMP
    assert (groupdq[0, 2, :5] == G_JUMP).all()  # the input is untouched


def test_usable_counts_count_finite_unexcluded_differences():
    from jwst_asteroid_step.ramp.differences import usable_counts

    rng = np.random.default_rng(2)
    diff = rng.normal(size=(7, 5, 6)).astype(np.float32)
    diff[rng.random(diff.shape) < 0.2] = np.nan
    exclude = rng.random(diff.shape) < 0.3
    usable = np.isfinite(diff) & ~exclude
    per_pixel, per_diff = usable_counts(diff, exclude)
    np.testing.assert_array_equal(per_pixel, usable.sum(axis=0))
    np.testing.assert_array_equal(per_diff, usable.sum(axis=(1, 2)))
