"""Figures of detections (matplotlib, Agg canvas: no display needed).

:func:`plot_detections` writes one PNG per detection and a summary PNG; the command
line front-end is ``jwst-asteroids plot <asteroids.asdf> --ramp <jump.fits>``.
"""

from .figures import approximate_rate, plot_detection, plot_detections, plot_summary

__all__ = ["approximate_rate", "plot_detection", "plot_detections", "plot_summary"]
