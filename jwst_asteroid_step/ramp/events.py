"""Group JUMP_DET cells into events and label each one (DESIGN.md §1).

In (x, y, t) a cosmic ray is a compact cluster at one instant, a shower a large
area at one instant, pixel noise a single pixel (a noisy pixel flagged at several
instants, or a lone false flag), and a mover a cluster whose cells walk across
pixels as time goes on.
"""

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

__all__ = ["EVENT_KINDS", "Events", "cluster_cells", "classify_events"]

#: Event labels, in the order of their integer codes.
EVENT_KINDS = ("cosmic_ray", "shower", "mover_candidate", "pixel_noise")
COSMIC_RAY, SHOWER, MOVER, PIXEL_NOISE = range(4)


@dataclass
class Events:
    """JUMP_DET cells of one integration, grouped into labelled events.

    Attributes
    ----------
    cells : ndarray, int32, shape (n, 3)
        ``(k, y, x)`` of each cell (k: difference index).
    label : ndarray, int, shape (n,)
        Event index of each cell.
    kind : ndarray, int, shape (n_events,)
        Kind code of each event (index into :data:`EVENT_KINDS`).
    """

    cells: np.ndarray
    label: np.ndarray
    kind: np.ndarray

    def counts(self):
        """Number of events of each kind, keyed by name."""
        return {name: int(np.sum(self.kind == code)) for code, name in enumerate(EVENT_KINDS)}

    def cells_of(self, event):
        """Cells ``(k, y, x)`` of one event."""
        return self.cells[self.label == event]

    def mask_of_kinds(self, shape, kinds):
        """Boolean cube marking the cells of events of the given kinds."""
        mask = np.zeros(shape, dtype=bool)
        sel = np.isin(self.kind[self.label], list(kinds))
        k, y, x = self.cells[sel].T
        mask[k, y, x] = True
        return mask


def cluster_cells(cells, link_px=1.5, link_groups=2):
    """Connect cells that lie close in space and time.

    Two cells join when they are within ``link_px`` pixels in x and y and within
    ``link_groups`` differences in time (Chebyshev distance on scaled axes), so a
    mover's track survives a few unflagged differences.

    Parameters
    ----------
    cells : ndarray, int, shape (n, 3)
        ``(k, y, x)`` rows.
    link_px : float
        Spatial linking distance (px).
    link_groups : int
        Temporal linking distance (differences).

    Returns
    -------
    ndarray, int, shape (n,)
        Cluster label of each cell.
    """
    n = len(cells)
    if n == 0:
        return np.zeros(0, dtype=int)
    pts = np.column_stack(
        [cells[:, 0] * (link_px / max(link_groups, 1e-9)), cells[:, 1], cells[:, 2]]
    ).astype(float)
    pairs = cKDTree(pts).query_pairs(link_px + 1e-6, p=np.inf, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def classify_events(cells, labels, shower_min_pixels=30, min_mover_groups=3):
    """Label each cluster as cosmic ray, shower, mover candidate or pixel noise.

    Parameters
    ----------
    cells : ndarray, int, shape (n, 3)
        ``(k, y, x)`` rows.
    labels : ndarray, int, shape (n,)
        Cluster label of each cell, from :func:`cluster_cells`.
    shower_min_pixels : int
        One-instant events touching at least this many pixels are showers.
    min_mover_groups : int
        A mover candidate spans at least this many distinct differences and more
        than one pixel.

    Returns
    -------
    Events
    """
    n_events = int(labels.max()) + 1 if len(labels) else 0
    kind = np.empty(n_events, dtype=int)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_events + 1))
    for ev in range(n_events):
        c = cells[order[bounds[ev] : bounds[ev + 1]]]
        n_times = np.unique(c[:, 0]).size
        n_pix = np.unique(c[:, 1] * 65536 + c[:, 2]).size
        if n_pix == 1:
            # One pixel: a noisy or hot pixel, or a lone false 4-sigma flag (real
            # cosmic rays of jump-flagging size light their neighbours too).
            kind[ev] = PIXEL_NOISE
        elif n_times >= min_mover_groups and _moves(c):
            kind[ev] = MOVER
        elif n_pix >= shower_min_pixels:
            kind[ev] = SHOWER
        else:
            kind[ev] = COSMIC_RAY
    return Events(cells=cells, label=labels, kind=kind)


def _moves(c):
    """Whether the cells' centroid drifts with time by more than a pixel."""
    k = c[:, 0]
    early = k <= np.percentile(k, 25)
    late = k >= np.percentile(k, 75)
    if not early.any() or not late.any():
        return False
    shift = c[late, 1:].mean(axis=0) - c[early, 1:].mean(axis=0)
    return bool(np.hypot(*shift) >= 1.0)
