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

__all__ = ["EVENT_KINDS", "Events", "classify_events", "cluster_cells", "link_instants"]

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
    order, bounds = _by_event(labels, n_events)
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


def _by_event(labels, n_events):
    """Cell order grouping the cells by event, and each event's slice bounds in it."""
    order = np.argsort(labels, kind="stable")
    return order, np.searchsorted(labels[order], np.arange(n_events + 1))


def _moves(c):
    """Whether the cells' centroid drifts with time by more than a pixel."""
    k = c[:, 0]
    early = k <= np.percentile(k, 25)
    late = k >= np.percentile(k, 75)
    if not early.any() or not late.any():
        return False
    shift = c[late, 1:].mean(axis=0) - c[early, 1:].mean(axis=0)
    return bool(np.hypot(*shift) >= 1.0)


def link_instants(events, min_speed=1.0, max_speed=10.0, max_gap=3, tolerance_px=1.5, min_events=5):
    """Join one-instant events that line up in (x, y, t) into mover candidates.

    A mover faster than ``link_px`` per difference lights new pixels at each
    difference, so :func:`cluster_cells` leaves it as a row of compact one-instant
    clusters, each labelled a cosmic ray or pixel noise and set aside: the brighter
    the mover, the more of its light goes.  Pairs of such events a few differences
    apart seed a straight path at a constant step; a path is followed from event to
    event while the next one lies within ``tolerance_px`` of it, and becomes one
    mover candidate when it gathers ``min_events`` events.  Cosmic rays line up so
    by chance rarely: at L2's density each further event a path needs divides the
    chance rows by ~150 (``benchmarks/chance_chains.py``, docs/defaults.md).

    Parameters
    ----------
    events : Events
        From :func:`classify_events`.
    min_speed, max_speed : float
        Range of the step between events, px per difference.
    max_gap : int
        Most differences between successive events of a path.
    tolerance_px : float
        Largest distance (px, in x and in y) of an event's centroid from its path.
    min_events : int
        Events a path needs to become a mover candidate.

    Returns
    -------
    Events
        ``events`` with each path's events merged into one mover candidate
        (labels renumbered); ``events`` itself when no path was found.
    """
    order, bounds = _by_event(events.label, events.kind.size)
    first = np.minimum.reduceat(events.cells[order, 0], bounds[:-1]) if len(order) else np.zeros(0, int)
    last = np.maximum.reduceat(events.cells[order, 0], bounds[:-1]) if len(order) else np.zeros(0, int)
    cand = np.flatnonzero(np.isin(events.kind, (COSMIC_RAY, PIXEL_NOISE)) & (last - first <= 1))
    if cand.size < min_events:
        return events
    by_event = events.cells[order]
    centre = np.array([by_event[bounds[e]:bounds[e + 1]].mean(axis=0) for e in cand])  # (k, y, x)
    # Chebyshev distances on (k / scale, y, x): a query of radius tolerance_px
    # around a predicted (k, y, x) returns events at that difference (to within
    # half a difference for events spanning two) and place.
    k_scale = tolerance_px / 0.6
    tree = cKDTree(centre * [k_scale, 1.0, 1.0])
    reach = max_speed * max_gap
    seeds = cKDTree(centre * [reach / max_gap, 1.0, 1.0]).query_pairs(reach, p=np.inf, output_type="ndarray")
    if len(seeds) == 0:
        return events
    a, b = seeds.T
    swap = centre[a, 0] > centre[b, 0]
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    dk = centre[b, 0] - centre[a, 0]
    step = np.hypot(*(centre[b, 1:] - centre[a, 1:]).T) / np.maximum(dk, 1e-9)
    ok = (dk >= 0.5) & (step >= min_speed) & (step <= max_speed)
    a, b, dk = a[ok], b[ok], dk[ok]
    # A seed is followed only when a third event lies ahead of it on its path.
    velocity = (centre[b] - centre[a]) / dk[:, None]
    ahead = np.concatenate([centre[b] + d * velocity for d in range(1, max_gap + 1)])  # velocity[:, 0] is 1
    hits = tree.query_ball_point(ahead * [k_scale, 1.0, 1.0], tolerance_px, p=np.inf, return_length=True)
    promising = np.flatnonzero(hits.reshape(max_gap, -1).sum(axis=0) > 0)

    used = np.zeros(cand.size, dtype=bool)
    paths = []
    for s in promising:
        if used[a[s]] or used[b[s]]:
            continue
        path = _follow(tree, centre, [a[s], b[s]], used, k_scale, tolerance_px, max_gap)
        if len(path) >= min_events:
            used[path] = True
            paths.append(cand[path])
    if not paths:
        return events
    merged = np.arange(events.kind.size)
    for path in paths:
        merged[path] = path[0]
    keep, label = np.unique(merged[events.label], return_inverse=True)
    kind = events.kind[keep].copy()
    kind[np.isin(keep, [p[0] for p in paths])] = MOVER
    return Events(cells=events.cells, label=label, kind=kind)


def _follow(tree, centre, path, used, k_scale, tolerance_px, max_gap):
    """Grow a path of event indices both ways, one nearest event at a time."""
    path = list(path)
    for sense in (1, -1):
        while True:
            k, pos = centre[path, 0], centre[path, 1:]
            dk = k - k.mean()
            slope = (dk @ (pos - pos.mean(axis=0))) / max(dk @ dk, 1e-9)
            end = k.max() if sense > 0 else k.min()
            best = None
            for d in range(1, max_gap + 1):
                kk = end + sense * d
                guess = np.concatenate([[kk], pos.mean(axis=0) + slope * (kk - k.mean())])
                near = [i for i in tree.query_ball_point(guess * [k_scale, 1.0, 1.0], tolerance_px, p=np.inf)
                        if not used[i] and i not in path]
                if near:
                    best = min(near, key=lambda i: np.hypot(*(centre[i, 1:] - guess[1:])))
                    break
            if best is None:
                break
            path.append(best)
    return np.array(sorted(path, key=lambda i: centre[i, 0]))
