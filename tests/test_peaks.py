import numpy as np
from scipy import ndimage

from jwst_asteroid_step.search.peaks import local_maxima


def test_local_maxima_equal_a_maximum_filter():
    snr = np.random.default_rng(4).normal(size=(50, 60)).astype(np.float32)
    ys, xs = np.nonzero(snr >= 1.0)
    keep = local_maxima(snr, ys, xs, 3)
    expected = (snr >= 1.0) & (snr == ndimage.maximum_filter(snr, size=7))
    np.testing.assert_array_equal(keep, expected[ys, xs])
