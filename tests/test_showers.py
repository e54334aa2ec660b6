"""Showers the jump flags missed (ramp/showers.py)."""

import numpy as np

from jwst_asteroid_step.psf import psf_for_filter
from jwst_asteroid_step.ramp.showers import find_showers

RN, SKY, GT = 7.0, 20.0, 2.775
SIGMA = np.sqrt(RN**2 + SKY / 4.0)
SHAPE = (30, 128, 128)


def noise(seed=0, shape=SHAPE):
    rng = np.random.default_rng(seed)
    return (SKY + rng.normal(0.0, SIGMA, shape)).astype(np.float32)


def run(diff, exclude=None, sources=None):
    """The cells ``find_showers`` sets aside, as a cube, and the number of showers."""
    exclude = np.zeros(diff.shape, bool) if exclude is None else exclude
    areas, n = find_showers(diff, exclude, np.full(diff.shape[1:], SKY), np.full(diff.shape[1:], SIGMA), GT,
                            sources=sources)
    mask = np.zeros(diff.shape, bool)
    for k_first, k_stop, area in areas:
        mask[k_first:k_stop] |= area
    return mask, n


def add_shower(diff, k, x, y, radius=10.0, peak=8.0, leak=0.5, tau=6.0):
    """A MIRI-like shower: a disc of ~read-noise charge, then an exponential leak."""
    yy, xx = np.mgrid[:diff.shape[1], :diff.shape[2]]
    prompt = peak * np.clip(1 - ((xx - x) ** 2 + (yy - y) ** 2) / radius**2, 0, None)
    diff[k] += prompt
    for j in range(k + 1, diff.shape[0]):
        diff[j] += leak * prompt * (np.exp(-(j - k - 1) * GT / tau) - np.exp(-(j - k) * GT / tau))


def test_pure_noise_has_no_shower():
    mask, n = run(noise())
    assert n == 0 and not mask.any()


def test_faint_shower_is_found_with_its_afterglow():
    diff = noise(1)
    add_shower(diff, 12, 60.0, 70.0)
    mask, n = run(diff)
    assert n == 1
    assert not mask[:12].any()
    n_after = int(np.ceil(20.0 / GT))
    assert mask[12:13 + n_after, 70, 60].all()  # the shower and 20 s of afterglow
    assert not mask[13 + n_after:].any()
    assert not mask[12, 5, 5]  # far from it


def test_per_pixel_it_stays_below_a_jump_threshold():
    """The case the mask is for: no pixel of the shower is a 4-sigma jump on its own."""
    diff = np.zeros(SHAPE, np.float32)
    add_shower(diff, 12, 60.0, 70.0)
    assert diff[12].max() < 4 * SIGMA


def test_point_sources_are_not_showers():
    """Stars and movers are clipped pixel by pixel: even a bright one is no shower."""
    diff = noise(2)
    psf = psf_for_filter("F770W")
    yy, xx = np.mgrid[:SHAPE[1], :SHAPE[2]]
    for k in range(SHAPE[0]):
        x = 30.0 + 2.0 * k  # a bright mover, 2 px/group
        diff[k] += 5000.0 * psf.pixel_fraction(xx - x, yy - 64.0).astype(np.float32)
    mask, n = run(diff)
    assert n == 0 and not mask.any()


def test_a_bright_mover_flagged_by_jump_is_no_shower():
    """At F2100W (FWHM 6 px) a bright slow mover stays below 10 sigma in every pixel, and its
    box average passes the threshold in every difference. Alone, its first difference is an
    onset like a shower's (the box averages before it were quiet), and 20 s of its path go.
    Its jump-flagged cells, a few per difference, say what it is; a shower beside it is found."""
    diff = noise(5)
    psf = psf_for_filter("F2100W")
    yy, xx = np.mgrid[:SHAPE[1], :SHAPE[2]]
    light = np.stack([2500.0 * psf.pixel_fraction(xx - 40.0 - 0.3 * k, yy - 40.0) for k in range(SHAPE[0])])
    assert light.max() < 6 * SIGMA
    diff += light.astype(np.float32)
    mask, n = run(diff)
    assert n == 1 and mask[:8, 40, 40].all()
    add_shower(diff, 12, 95.0, 95.0)
    flagged = np.argwhere(light > 4 * SIGMA)[::3]  # (k, y, x): the jump step flags some
    mask, n = run(diff, sources=flagged)
    assert n == 1 and mask[12, 95, 95] and not mask[:, 40, 40:50].any()


def test_a_fast_bright_mover_the_jump_flags_missed_is_no_shower():
    """At 1.8 px/group a bright F2100W mover lights each pixel for a few differences: the jump
    step flags almost none of them, and its box average passes the threshold wherever it is.
    A shower starts at one instant, from quiet; the mover's light goes on from difference to
    difference. Only its first difference is an onset (it was 165 showers, the whole path
    masked, when every hot area was one); a shower it passes is still found."""
    diff = noise(6)
    psf = psf_for_filter("F2100W")
    yy, xx = np.mgrid[:SHAPE[1], :SHAPE[2]]
    light = np.stack([3000.0 * psf.pixel_fraction(xx - 20.0 - 1.6 * k, yy - 30.0 - 0.8 * k)
                      for k in range(SHAPE[0])])
    assert light.max() < 10 * SIGMA
    diff += light.astype(np.float32)
    add_shower(diff, 12, 95.0, 100.0)
    mask, n = run(diff)
    path = np.array([mask[k, round(30 + 0.8 * k), round(20 + 1.6 * k)] for k in range(SHAPE[0])])
    assert n == 2 and mask[12, 100, 95]
    assert path[:int(20 / GT)].all() and not path[int(20 / GT) + 2:].any()


def test_excluded_cells_do_not_count():
    diff = noise(3)
    add_shower(diff, 5, 60.0, 60.0, leak=0.0)
    exclude = np.zeros(SHAPE, bool)
    exclude[5] = True  # e.g. the jump step's own shower flags
    mask, n = run(diff, exclude)
    assert n == 0


def test_small_arrays_are_left_alone():
    """SUB64: too few boxes to measure the sky's spread (one bright source would set it)."""
    diff = noise(4, (20, 64, 72))
    add_shower(diff, 5, 30.0, 30.0)
    mask, n = run(diff)
    assert n == 0 and not mask.any()
