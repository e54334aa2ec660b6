"""Which exposures a survey run processes: directories, globs, associations, file lists.

An *exposure* here is one unit of work: a jump-flagged ramp (``<root>_jump.fits``,
searched by ``asteroid_detect``, with ``<root>_fitopt.fits`` when it lies beside
it) or an uncalibrated ramp (``<root>_uncal.fits``, run through
``calwebb_detector1_asteroid``).  Pure file-system logic; no stpipe.
"""

import glob
import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Exposure", "catalog_path", "discover_exposures", "exposure_from_path"]

#: Suffixes of the files a run accepts, and the kind of work each means.
_KINDS = {"_jump": "jump", "_uncal": "uncal"}
_EXTENSIONS = (".fits", ".fits.gz")


@dataclass(frozen=True)
class Exposure:
    """One file to process.

    Attributes
    ----------
    path : str
        Absolute path of the ramp.
    kind : {"jump", "uncal"}
        ``jump``: run ``asteroid_detect``; ``uncal``: run ``calwebb_detector1_asteroid``.
    root : str
        File name without suffix and extension (``jw..._mirimage``).
    fitopt : str or None
        The ramp_fit segments beside a ``_jump`` file, when present.
    """

    path: str
    kind: str
    root: str
    fitopt: str | None = None


def _split_name(name):
    """(root, suffix, extension) of a jwst product name, or None if not ours."""
    for ext in _EXTENSIONS:
        if name.endswith(ext):
            stem = name[: -len(ext)]
            for suffix in _KINDS:
                if stem.endswith(suffix):
                    return stem[: -len(suffix)], suffix, ext
    return None


def exposure_from_path(path):
    """The :class:`Exposure` for one ``_jump`` / ``_uncal`` file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Exposure or None
        None when the name is not ``<root>_jump.fits`` or ``<root>_uncal.fits``
        (optionally ``.gz``).
    """
    path = Path(path).expanduser().absolute()
    parts = _split_name(path.name)
    if parts is None:
        return None
    root, suffix, ext = parts
    fitopt = None
    if suffix == "_jump":
        candidate = path.with_name(f"{root}_fitopt{ext}")
        fitopt = str(candidate) if candidate.exists() else None
    return Exposure(path=str(path), kind=_KINDS[suffix], root=root, fitopt=fitopt)


def _association_members(path):
    """Science members of a jwst association (``*_asn.json``), resolved beside it."""
    asn = json.loads(Path(path).read_text())
    base = Path(path).parent
    names = []
    for product in asn.get("products", []):
        for member in product.get("members", []):
            if str(member.get("exptype", "science")).lower() == "science":
                names.append(str(base / member["expname"]))
    return names


def _list_file_members(path):
    """Non-blank, non-comment lines of a text file list, relative to the list."""
    base = Path(path).parent
    names = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(str(base / Path(line).expanduser()))
    return names


def _expand(spec):
    """File names named by one input spec (see :func:`discover_exposures`)."""
    p = Path(spec).expanduser()
    if p.is_dir():
        return sorted(str(q) for q in p.iterdir() if q.is_file())
    if any(c in spec for c in "*?["):
        return sorted(glob.glob(str(p)))
    if not p.exists():
        raise FileNotFoundError(f"input not found: {spec}")
    if p.suffix == ".json":
        return _association_members(p)
    if _split_name(p.name) is not None:
        return [str(p)]
    # Anything else that exists is read as a list of files, one per line.
    return _list_file_members(p)


def discover_exposures(specs):
    """Exposures named by directories, globs, association files or file lists.

    Parameters
    ----------
    specs : str or sequence of str
        Each one a directory (its ``_jump`` / ``_uncal`` files), a glob pattern,
        a jwst association ``.json`` (its science members), a ``_jump``/``_uncal``
        file, or a text file listing files one per line (``#`` comments).

    Returns
    -------
    list of Exposure
        Unique by path, sorted by path.  Where both ``<root>_uncal`` and
        ``<root>_jump`` are present, only the ``_jump`` file is kept (Detector1
        has already run).  Other files are ignored.
    """
    if isinstance(specs, (str, Path)):
        specs = [specs]
    found = {}
    for spec in specs:
        for name in _expand(str(spec)):
            exposure = exposure_from_path(name)
            if exposure is not None:
                found[exposure.path] = exposure
    by_root = {}
    for exposure in found.values():
        key = (str(Path(exposure.path).parent), exposure.root)
        if key not in by_root or exposure.kind == "jump":
            by_root[key] = exposure
    return sorted(by_root.values(), key=lambda e: e.path)


def catalog_path(exposure, output_dir):
    """Where the catalog of ``exposure`` is written: ``<output_dir>/<root>_asteroids.asdf``."""
    return str(Path(output_dir).absolute() / f"{exposure.root}_asteroids.asdf")
