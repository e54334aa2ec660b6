"""Sphinx configuration of the jwst-asteroid-step documentation.

Build it with ``sphinx-build -W -b html docs docs/_build/html`` (the tests do, with
warnings as errors: ``tests/test_documentation.py``).
"""

import sys
from importlib.metadata import version as _version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "jwst-asteroid-step"
author = "jwst-asteroid-step developers"
copyright = "2026, jwst-asteroid-step developers"
release = _version("jwst-asteroid-step")
version = release

extensions = [
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx_automodapi.automodapi",
    "numpydoc",
    "myst_parser",
    "asteroid_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# automodapi documents each public name on its own page; numpydoc renders the sections.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False

# No network here: intersphinx inventories are not fetched, so none are listed.
intersphinx_mapping = {}

myst_heading_anchors = 3
nitpicky = False
# `name` in these pages is a cross-reference, as in the docstrings.
default_role = "obj"

html_theme = "sphinx_rtd_theme"
html_title = f"jwst-asteroid-step {release}"
html_static_path = []
