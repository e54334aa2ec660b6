"""Property-based tests (hypothesis) of the pure algorithm, :func:`jwst_asteroid_step.detect.find_movers`.

The detector has no preferred direction and no clock of its own, so:

- flipping or transposing the frame moves and turns the detections with it;
- reversing the order of the group differences reverses every velocity;
- a constant added to every read (a bias) changes nothing at all, and a
  constant sky rate changes no detection;
- a cube of zeros or of pure noise holds nothing.

Cubes are 48 x 48 pixels x 20 groups.  Each property runs a few examples in
the default suite (``CI``, derandomized so CI is reproducible) and many in the
nightly run (``NIGHTLY``), which is deselected unless asked for::

    pytest -m nightly tests/test_properties.py
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import find_movers
from jwst_asteroid_step.mover_model import mover_differences
from jwst_asteroid_step.psf import psf_for_filter
from jwst_asteroid_step.timebase import difference_intervals

CI_EXAMPLES, NIGHTLY_EXAMPLES = 5, 200
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CI = settings(max_examples=CI_EXAMPLES, derandomize=True, **_COMMON)
NIGHTLY = settings(max_examples=NIGHTLY_EXAMPLES, **_COMMON)

NY = NX = 48
NGROUPS = 20
GROUP_TIME = 0.1  # s
READ_NOISE = 7.0  # DN, CDS
GAIN = 4.0  # e/DN
SKY = 20.0  # DN/s
PSF = psf_for_filter("F770W")
#: Detections compared between two cubes: clearly above the reporting threshold,
#: so that none sits where noise decides whether it is reported.
COMPARED_SNR = 12.0


@pytest.fixture(scope="module", autouse=True)
def _numba_warm():
    """Compile (or load) the numba kernels once, outside every example's time."""
    _find(_cube(0, None))


def _cube(seed, mover):
    """One integration (1, NGROUPS, NY, NX) of reads in DN, quantised to 1/16 DN.

    Shot noise of sky and mover per difference, read noise per read (so
    adjacent differences anti-correlate, as in MIRI ramps).  The quantisation
    keeps a constant added to the reads exact in float32.
    """
    rng = np.random.default_rng(seed)
    t0, t1 = difference_intervals(NGROUPS, GROUP_TIME)
    charge = np.full((NGROUPS - 1, NY, NX), SKY * GROUP_TIME)
    if mover is not None:
        x, y, vx, vy, flux = mover
        charge += mover_differences(x, y, vx, vy, flux, 0.5 * t1[-1], t0, t1, PSF,
                                    np.arange(NX, dtype=float), np.arange(NY, dtype=float))
    collected = rng.poisson(charge * GAIN) / GAIN
    reads = np.concatenate([np.zeros((1, NY, NX)), np.cumsum(collected, axis=0)])
    reads += 1000.0 + rng.normal(0.0, READ_NOISE / np.sqrt(2.0), reads.shape)
    return (np.round(reads * 16) / 16).astype(np.float32)[None]


def _find(sci, flags=False):
    """find_movers on a cube; with ``flags``, JUMP_DET where a difference is 5 sigma high."""
    groupdq = np.zeros(sci.shape, np.uint8)
    if flags:
        diff = np.diff(sci[0], axis=0)
        groupdq[0, 1:][diff - np.median(diff, axis=0) > 5 * READ_NOISE] = 4
    table, _ = find_movers(sci, groupdq, np.zeros(sci.shape[2:], np.uint32), GROUP_TIME, PSF,
                           READ_NOISE, GAIN, DetectionConfig())
    return table


movers = st.tuples(
    st.floats(16.0, 31.0), st.floats(16.0, 31.0),  # position (px) mid-integration
    st.floats(0.1, 0.45), st.floats(0.0, 2 * np.pi),  # speed (px/group) and direction
    st.floats(1500.0, 4000.0),  # flux (DN/s): SNR ~30-80
).map(lambda m: (m[0], m[1], m[2] / GROUP_TIME * np.cos(m[3]), m[2] / GROUP_TIME * np.sin(m[3]), m[4]))
seeds = st.integers(0, 2**32 - 1)


def _at(row, t):
    """Position (x, y) of a detection's track at time ``t``."""
    return row["x"] + row["vx"] * (t - row["t_int"]), row["y"] + row["vy"] * (t - row["t_int"])


def _same(row, x, y, vx, vy, t):
    """Whether a detection agrees with a track (x, y at t; vx, vy) within its errors."""
    px, py = _at(row, t)
    pos_tol = max(0.05, 2 * max(row["x_err"], row["y_err"]))
    vel_tol = max(0.02 * np.hypot(row["vx"], row["vy"]), 2 * max(row["vx_err"], row["vy_err"]))
    return np.hypot(px - x, py - y) < pos_tol and np.hypot(row["vx"] - vx, row["vy"] - vy) < vel_tol


def _assert_maps(before, after, transform, both_ways=True):
    """Strong detections of each cube, transformed, are found in the other.

    Every transform here is its own inverse, so one ``transform`` maps both ways.
    Whether the mover is detected at all is not this property (a faint, slow
    one may not be); that it is detected the same way in both cubes is.
    """
    for one, other in ((before, after), (after, before))[: 2 if both_ways else 1]:
        for row in one[one["snr"] >= COMPARED_SNR]:
            x, y, vx, vy, t = transform(row)
            assert any(_same(match, x, y, vx, vy, t) for match in other), (row, other)


TRANSFORMS = {
    # name: (cube transform, detection transform -> x, y, vx, vy, t)
    "flip_x": (lambda c: c[..., ::-1], lambda r: (NX - 1 - r["x"], r["y"], -r["vx"], r["vy"], r["t_int"])),
    "flip_y": (lambda c: c[..., ::-1, :], lambda r: (r["x"], NY - 1 - r["y"], r["vx"], -r["vy"], r["t_int"])),
    "transpose": (lambda c: np.swapaxes(c, -1, -2),
                  lambda r: (r["y"], r["x"], r["vy"], r["vx"], r["t_int"])),
    "rotate_180": (lambda c: c[..., ::-1, ::-1],
                   lambda r: (NX - 1 - r["x"], NY - 1 - r["y"], -r["vx"], -r["vy"], r["t_int"])),
}


def _check_geometry(seed, mover, name, flags):
    cube_transform, detection_transform = TRANSFORMS[name]
    sci = _cube(seed, mover)
    _assert_maps(_find(sci, flags), _find(np.ascontiguousarray(cube_transform(sci)), flags),
                 detection_transform)


def _check_time_reversal(seed, mover, flags):
    # Reads in reverse order, negated: difference k becomes difference n-2-k,
    # with its sign, so the same charge arrives in the opposite order.
    sci = _cube(seed, mover)
    reversed_sci = np.ascontiguousarray(-sci[:, ::-1])
    span = (NGROUPS - 1) * GROUP_TIME

    def transform(r):
        # The reversed clock is t' = span - t: the object is at (x, y) at t' = span - t_int.
        return r["x"], r["y"], -r["vx"], -r["vy"], span - r["t_int"]

    _assert_maps(_find(sci, flags), _find(reversed_sci, flags), transform)


def _check_bias(seed, mover, bias):
    sci = _cube(seed, mover)
    before, after = _find(sci), _find(sci + np.float32(bias))
    assert before.as_array().tobytes() == after.as_array().tobytes()


def _clear(table):
    """Detections well clear of every threshold: SNR and the significance of the motion.

    More sky means more shot noise in the noise model: SNRs fall a little (for a
    slow mover, whose read noise cancels along the ramp, by several per cent), so
    a detection sitting near the motion-significance cut may rightly go.
    """
    speed = np.hypot(table["vx"], table["vy"])
    speed_err = np.hypot(table["vx"] * table["vx_err"], table["vy"] * table["vy_err"]) / np.maximum(speed, 1e-30)
    return table[speed >= 1.5 * DetectionConfig().min_motion_sigma * speed_err]


def _check_sky(seed, mover, rate):
    # Noise-free extra sky: every difference grows by rate * group_time.
    sci = _cube(seed, mover)
    brighter = sci + (np.arange(NGROUPS) * rate * GROUP_TIME).astype(np.float32)[None, :, None, None]
    before, after = _find(sci), _find(brighter)
    same = lambda r: (r["x"], r["y"], r["vx"], r["vy"], r["t_int"])  # noqa: E731
    for one, other in ((_clear(before), after), (_clear(after), before)):
        _assert_maps(one, other, same, both_ways=False)


def _check_empty(seed, zeros):
    sci = np.zeros((1, NGROUPS, NY, NX), np.float32) if zeros else _cube(seed, None)
    assert len(_find(sci, flags=True)) == 0


_geometry = dict(seed=seeds, mover=movers, name=st.sampled_from(sorted(TRANSFORMS)), flags=st.booleans())
_reversal = dict(seed=seeds, mover=movers, flags=st.booleans())
_bias = dict(seed=seeds, mover=movers, bias=st.integers(-20000, 20000))
_sky = dict(seed=seeds, mover=movers, rate=st.floats(1.0, 200.0))
_empty = dict(seed=seeds, zeros=st.booleans())

test_flips_and_transposes = CI(given(**_geometry)(_check_geometry))
test_time_reversal_negates_velocity = CI(given(**_reversal)(_check_time_reversal))
test_bias_changes_nothing = CI(given(**_bias)(_check_bias))
test_constant_sky_changes_no_detection = CI(given(**_sky)(_check_sky))
test_empty_cube_has_no_detections = CI(given(**_empty)(_check_empty))

test_flips_and_transposes_nightly = pytest.mark.nightly(NIGHTLY(given(**_geometry)(_check_geometry)))
test_time_reversal_negates_velocity_nightly = pytest.mark.nightly(NIGHTLY(given(**_reversal)(_check_time_reversal)))
test_bias_changes_nothing_nightly = pytest.mark.nightly(NIGHTLY(given(**_bias)(_check_bias)))
test_constant_sky_changes_no_detection_nightly = pytest.mark.nightly(NIGHTLY(given(**_sky)(_check_sky)))
test_empty_cube_has_no_detections_nightly = pytest.mark.nightly(NIGHTLY(given(**_empty)(_check_empty)))
