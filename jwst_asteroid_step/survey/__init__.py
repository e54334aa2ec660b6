"""Survey scale: many exposures on Dask, tracklets across exposures, known objects.

The data's path through this subpackage:

- :mod:`.inputs`: which files a run processes (directories, globs, associations, lists);
- :mod:`.manifest`: the resumable SQLite record of each file's status;
- :mod:`.mine`: one Dask task per exposure (``asteroid_detect`` on ``_jump`` files,
  ``calwebb_detector1_asteroid`` on ``_uncal`` files) and the merged catalog;
- :mod:`.tables`: survey detection tables (catalog columns plus their exposure);
- :mod:`.tracklets`: linking detections of a visit into tracklets (χ² test of uniform
  motion fitted to positions and rates);
- :mod:`.known`: matching against known asteroids from an ephemeris table (or online).

Only :mod:`.mine`'s task function imports the stpipe step and pipeline; the rest is
numpy / astropy / sqlite.  The command line is ``jwst-asteroids mine | link | match``.
"""
