"""What real ramps add to the noise model: transients, excess noise, drifts (ramp/systematics.py)."""

import numpy as np
import pytest

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import _trend_order
from jwst_asteroid_step.ramp import systematics
from jwst_asteroid_step.ramp.systematics import drift_excess, edge_transients, noise_scale, trend_basis

RN, GAIN, SKY = 7.0, 4.0, 20.0  # CDS read noise (DN), e/DN, sky per difference (DN)
SHAPE = (40, 96, 96)


def model_noise(shape=SHAPE, seed=0):
    """Differences drawn from the package's noise model: read noise per read, sky shot noise."""
    rng = np.random.default_rng(seed)
    reads = rng.normal(0.0, RN / np.sqrt(2.0), (shape[0] + 1,) + shape[1:])
    return (rng.poisson(SKY * GAIN, shape) / GAIN + np.diff(reads, axis=0)).astype(np.float32)


def scale_of(diff, **kw):
    return noise_scale(diff, np.zeros(diff.shape, bool), np.full(diff.shape[1:], SKY), RN, GAIN, **kw)


def test_trend_basis_columns_are_powers_of_centred_time():
    b = trend_basis(11, 2)
    assert b.shape == (11, 3)
    np.testing.assert_allclose(b[:, 0], 1.0)
    np.testing.assert_allclose(b[:, 1], -b[::-1, 1])  # odd about mid-ramp
    np.testing.assert_allclose(b[:, 2], b[:, 1] ** 2)


@pytest.mark.parametrize("length", [5, 20])
def test_noise_scale_of_model_noise_is_one_everywhere(length):
    """Rows and columns are rarely raised by chance: a track crosses many, and the
    largest of many raw estimates (+0.44 here before shrinking) would cost it SNR."""
    scale = scale_of(model_noise(), length=length)
    assert np.median(scale) < 1.03
    assert np.percentile(scale, 95) < 1.05
    assert scale.max() < 1.25


def test_noise_scale_raises_a_noisy_row_only():
    diff = model_noise()
    rng = np.random.default_rng(3)
    diff[:, 30] += rng.normal(0.0, 2.0 * np.sqrt(RN**2 + SKY / GAIN), diff[:, 30].shape).astype(np.float32)
    scale = scale_of(diff, length=10)
    assert np.median(scale[30]) > 1.5
    assert np.median(np.delete(scale, 30, axis=0)) < 1.08


def test_noise_scale_follows_frame_wide_excess():
    scale = scale_of(1.5 * model_noise(seed=1), length=10)
    assert np.median(scale) == pytest.approx(1.5, rel=0.08)


def test_drift_excess_of_model_noise_is_one():
    diff = model_noise(seed=2)
    assert drift_excess(diff, np.zeros(diff.shape, bool), np.full(diff.shape[1:], SKY), RN, GAIN) \
        == pytest.approx(1.0, abs=0.05)


def test_drift_excess_sees_drifts_in_every_pixel():
    """Residual non-linearity or reset-anomaly tails: each pixel's rate drifts."""
    diff = model_noise(seed=3)
    rng = np.random.default_rng(4)
    slope = rng.normal(0.0, 0.1, diff.shape[1:])  # DN per difference per difference
    diff += (slope[None] * (np.arange(diff.shape[0]) - diff.shape[0] / 2)[:, None, None]).astype(np.float32)
    assert drift_excess(diff, np.zeros(diff.shape, bool), np.full(diff.shape[1:], SKY), RN, GAIN) > 1.5


def test_drift_excess_ignores_excluded_cells_and_short_ramps():
    diff = model_noise((5, 20, 20))
    assert np.isnan(drift_excess(diff, np.zeros(diff.shape, bool), np.full((20, 20), SKY), RN, GAIN))


@pytest.mark.parametrize("drift, expected", [(0.0, 0), (0.1, 1)])
def test_auto_trend_order_profiles_a_drift_only_where_the_ramp_drifts(drift, expected):
    diff = model_noise(seed=5)
    slope = np.random.default_rng(6).normal(0.0, drift, diff.shape[1:]) if drift else 0.0
    diff += (np.asarray(slope)[None] * (np.arange(diff.shape[0]) - 20.0)[:, None, None]).astype(np.float32)
    order, measured = _trend_order(diff, np.zeros(diff.shape, bool), np.full(diff.shape[1:], SKY), RN, GAIN,
                                   DetectionConfig())
    assert order == expected
    assert np.isfinite(measured)


def test_fixed_trend_order_is_used_as_given():
    diff = model_noise(seed=7)
    order, measured = _trend_order(diff, np.zeros(diff.shape, bool), np.full(diff.shape[1:], SKY), RN, GAIN,
                                   DetectionConfig(trend_order="2"))
    assert order == 2 and np.isnan(measured)


def test_edge_transients_finds_offset_leading_and_trailing_differences():
    diff = model_noise(seed=8)
    sigma = np.full(diff.shape[1:], np.sqrt(RN**2 + SKY / GAIN))
    diff[:3] += 0.5 * sigma  # reset-anomaly-like leading offset, frame-wide
    diff[-1] -= 0.5 * sigma
    assert edge_transients(diff, np.zeros(diff.shape, bool), sigma) == (3, 1)


def test_edge_transients_of_model_noise_is_none():
    diff = model_noise(seed=9)
    sigma = np.full(diff.shape[1:], np.sqrt(RN**2 + SKY / GAIN))
    assert edge_transients(diff, np.zeros(diff.shape, bool), sigma) == (0, 0)


def test_grouped_mad_sigma_equals_mad_sigma_of_each_group():
    rng = np.random.default_rng(3)
    group = rng.integers(0, 40, 2000)
    values = rng.standard_t(3, 2000)
    sigma, counts = systematics.grouped_mad_sigma(group, values, 45)
    for i in range(45):
        sel = values[group == i]
        assert counts[i] == sel.size
        if sel.size:
            assert sigma[i] == pytest.approx(systematics.mad_sigma(sel), rel=1e-12)
        else:
            assert np.isnan(sigma[i])
