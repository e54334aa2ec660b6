"""How often cosmic rays line up by chance into a row that ``link_instants`` takes for a mover.

A mover faster than ``link_px`` per difference leaves one compact event of JUMP_DET
cells per difference; :func:`~jwst_asteroid_step.ramp.events.link_instants` joins
such rows into mover candidates once they hold ``min_events`` events.  Cosmic rays
and lone false flags can line up so too.  This scatters them over a full frame at
the density of the recovery bench's ramps (~90 cosmic rays of 2-3 pixels and ~100
one-pixel flags per difference, counted on grid ramp 28: 258 cosmic rays and 297
pixel-noise events in 50 differences of 256 x 256 px), and counts the chance rows
per full-frame integration for each ``min_events``, with the time the linking takes::

    python -m benchmarks.chance_chains --ngroups 100 --seeds 10

A chance row is only a candidate: the moving-PSF fit still has to accept it.
"""

import argparse
import time

import numpy as np

from jwst_asteroid_step.ramp.events import MOVER, classify_events, cluster_cells, link_instants

#: Events per difference in a full frame (1024 x 1032 px) at L2.
COSMIC_RAYS_PER_DIFF, LONE_FLAGS_PER_DIFF = 90, 100


def scattered_cells(n_diff, seed):
    """JUMP_DET cells ``(k, y, x)`` of random cosmic rays (3 px) and lone flags (1 px), full frame."""
    rng = np.random.default_rng(seed)
    n_cr, n_lone = COSMIC_RAYS_PER_DIFF * n_diff, LONE_FLAGS_PER_DIFF * n_diff
    k, y, x = rng.integers(0, n_diff, n_cr), rng.integers(0, 1023, n_cr), rng.integers(4, 1027, n_cr)
    rays = [np.stack([k, y, x], 1), np.stack([k, y, x + 1], 1), np.stack([k, y + 1, x], 1)]
    lone = np.stack([rng.integers(0, n_diff, n_lone), rng.integers(0, 1024, n_lone),
                     rng.integers(4, 1028, n_lone)], 1)
    return np.concatenate(rays + [lone]).astype(np.int32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ngroups", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args(argv)
    sizes = (3, 4, 5)
    rows = dict.fromkeys(sizes, 0)
    seconds = []
    for seed in range(args.seeds):
        cells = scattered_cells(args.ngroups - 1, seed)
        events = classify_events(cells, cluster_cells(cells))
        before = int(np.sum(events.kind == MOVER))
        for n in sizes:
            t0 = time.perf_counter()
            linked = link_instants(events, min_events=n)
            seconds.append(time.perf_counter() - t0)
            rows[n] += int(np.sum(linked.kind == MOVER)) - before
    print(f"{args.seeds} full-frame integrations of {args.ngroups} groups, "
          f"{COSMIC_RAYS_PER_DIFF} cosmic rays and {LONE_FLAGS_PER_DIFF} lone flags per difference")
    for n in sizes:
        print(f"min_events={n}: {rows[n] / args.seeds:.2f} chance rows per integration ({rows[n]} in all)")
    print(f"link_instants: {np.median(seconds):.2f} s per integration (median)")


if __name__ == "__main__":
    main()
