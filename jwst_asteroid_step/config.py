"""The one configuration object of the detection algorithms, with its validation."""

from dataclasses import asdict, dataclass, fields

__all__ = ["BACKENDS", "DetectionConfig"]

#: Values of ``search_backend``: the numba kernel, or CuPy on a CUDA GPU.
BACKENDS = ("cpu", "cupy")


@dataclass
class DetectionConfig:
    """Parameters of :func:`jwst_asteroid_step.detect.find_movers`.

    The step's ``spec`` exposes each of them under the same name.

    Attributes
    ----------
    snr_threshold : float
        Minimum matched-filter SNR of a reported detection.
    min_groups : int
        Minimum number of distinct group differences with JUMP_DET cells on a
        candidate track.
    link_px : float
        Distance (px) within which JUMP_DET cells join one event.
    link_groups : int
        Gap (group differences) within which JUMP_DET cells join one event.
    shower_min_pixels : int
        One-instant events touching at least this many pixels count as showers.
    min_motion_sigma : float
        Minimum significance of a single-integration fit's speed.  Each pixel's
        static level is profiled out of the fit, so a static source carries no
        signal and the fit's SNR already measures the motion; this cut only
        keeps reported velocities meaningful.
    multi_int_min_motion_sigma : float
        Minimum significance of a multi-integration fit's speed: across rate
        images the motion is what tells a mover from a star's residual.
    min_consistency : float
        Minimum median per-difference flux relative to the fit; rejects chance
        alignments of cosmic rays, whose flux sits in a few differences.
    max_chi2_dof : float
        Largest reduced chi-square of an accepted moving-PSF fit.
    max_candidates : int
        Upper bound on candidate tracks from jump flags fitted per integration;
        beyond it the most populated candidates are kept and a warning is issued.
    search : bool
        Run the matched-filter (shift-and-stack) search below the jump threshold.
    search_max_speed : float
        Top speed (px/group) of the default search; faster movers are reached
        through their jump flags.
    deep_search : bool
        Search up to ``deep_search_max_speed`` instead (slower).
    deep_search_max_speed : float
        Top speed (px/group) of the deep search, and of the fast search.
    fast_search : bool
        Without ``deep_search``, also search ``search_max_speed`` to
        ``deep_search_max_speed`` the cheap way: windows of
        ``fast_search_window`` differences, each on its own coarse velocity grid,
        whose peaks are confirmed along the whole ramp.  On by default; off, the
        search stops at ``search_max_speed`` and faster movers are found only
        through their jump flags.
    fast_search_window : int
        Differences per window of the fast search.
    fast_search_snr_threshold : float
        SNR within one window that makes a fast-search peak a candidate.
    search_snr_threshold : float
        Coarse shift-and-stack SNR for a grid point to become a candidate.
    grid_loss : float
        Largest fraction of SNR lost to the velocity grid's spacing.
    search_max_candidates : int
        Most search candidates refined per integration.
    multi_int : bool
        With three or more integrations, also search the per-integration rate
        images for movers too slow to show within one integration
        (:mod:`~jwst_asteroid_step.search.multi_int`, ``method="multi-int"``).
    trend_order : int or "auto"
        Per-pixel trends of the difference rate (0: constant only; 1: plus a
        drift; 2: plus a curvature) profiled out of the search and the fit, for
        ramps with residual non-linearity, reset anomaly or drifts.  A profiled
        drift also absorbs most of the signal of a mover that crosses less than
        a PSF width, so ``"auto"`` measures the drifts first
        (:func:`~jwst_asteroid_step.ramp.systematics.drift_excess`) and profiles
        them only when their spread exceeds ``drift_threshold``.
    drift_threshold : float
        Spread of the per-pixel drift statistic (1 under the noise model) above
        which ``trend_order="auto"`` profiles a drift.
    residual_flux_ratio : float
        A detection with at most this fraction of a brighter detection's flux,
        within ``residual_radius_fwhm`` of its track, is taken for the light that
        the brighter one's PSF model leaves unexplained, and dropped (0 keeps every
        detection).  A model that misses 5-20 % of a bright source's light leaves
        residuals that the search and the fit measure as faint movers beside it.
    residual_radius_fwhm : float
        Reach, in PSF FWHMs, of a bright detection's unexplained light.
    search_backend : {"cpu", "cupy"}
        Where the matched-filter scan runs: the numba kernel, or CuPy on a CUDA
        GPU (:mod:`~jwst_asteroid_step.search.backends`); without one,
        :func:`~jwst_asteroid_step.detect.find_movers` warns and uses the CPU.
    """

    snr_threshold: float = 8.0
    min_groups: int = 3
    link_px: float = 1.5
    link_groups: int = 2
    shower_min_pixels: int = 30
    min_motion_sigma: float = 2.0
    multi_int_min_motion_sigma: float = 5.0
    min_consistency: float = 0.4
    max_chi2_dof: float = 3.0
    max_candidates: int = 500
    search: bool = True
    search_max_speed: float = 0.5
    deep_search: bool = False
    deep_search_max_speed: float = 3.0
    fast_search: bool = True
    fast_search_window: int = 12
    fast_search_snr_threshold: float = 5.5
    search_snr_threshold: float = 6.0
    grid_loss: float = 0.1
    search_max_candidates: int = 200
    multi_int: bool = True
    trend_order: int | str = "auto"
    drift_threshold: float = 1.1
    residual_flux_ratio: float = 0.15
    residual_radius_fwhm: float = 4.0
    search_backend: str = "cpu"

    def __post_init__(self):
        positive = ("snr_threshold", "link_px", "min_motion_sigma", "multi_int_min_motion_sigma", "max_chi2_dof",
                    "search_max_speed", "deep_search_max_speed", "search_snr_threshold", "drift_threshold",
                    "fast_search_snr_threshold")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if isinstance(self.trend_order, str) and self.trend_order.strip().isdigit():
            self.trend_order = int(self.trend_order)  # stpipe hands options over as strings
        if self.trend_order not in (0, 1, 2, "auto"):
            raise ValueError(f"trend_order must be 0, 1, 2 or 'auto', got {self.trend_order!r}")
        if self.search_backend not in BACKENDS:
            raise ValueError(f"search_backend must be one of {BACKENDS}, got {self.search_backend!r}")
        if not 0 <= self.residual_flux_ratio <= 1 or not self.residual_radius_fwhm >= 0:
            raise ValueError("residual_flux_ratio must be in [0, 1] and residual_radius_fwhm >= 0, got "
                             f"{self.residual_flux_ratio!r}, {self.residual_radius_fwhm!r}")
        if not 0 < self.grid_loss < 0.5:
            raise ValueError(f"grid_loss must be in (0, 0.5), got {self.grid_loss!r}")
        for name in ("min_groups", "link_groups", "shower_min_pixels", "max_candidates",
                     "search_max_candidates", "fast_search_window"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.min_groups < 3:
            raise ValueError("min_groups must be at least 3: two points always fit a line")

    @classmethod
    def from_mapping(cls, mapping):
        """Build from any mapping (e.g. step parameters), ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in mapping.items() if k in names})

    def to_dict(self):
        """Plain-dict copy."""
        return asdict(self)
