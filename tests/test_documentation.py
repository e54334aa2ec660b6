"""Every command and code block of README.md and docs/ runs as written.

The blocks are found in the documents themselves (``tests/doc_blocks.py``), so a block added
to a document is run without touching this file. What is changed before a block runs is
listed in ``tests/doc_blocks.py``: the offline reference overrides, and a few names that stand
for the user's own things. Blocks of one document run in order in one folder, which holds the
simulated exposure ``jw01234001001_01101_00001_mirimage`` and its Stage 1 products, so a
block may use what an earlier block of its document wrote.

``python -m tests.doc_blocks`` prints the lists of blocks run and not run.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from jwst_asteroid_step import AsteroidCatalogModel
from jwst_asteroid_step.simulate import save_simulation, simulate_ramp

from . import doc_blocks
from .doc_blocks import ROOT, all_blocks, logical_lines, offline_command, offline_python

BLOCKS = all_blocks()
RUNNABLE = [b for b in BLOCKS if b.kind != "text" and b.not_run is None]

#: Blocks that are not run here, by document and first command; each gives its reason in the
#: document, shown by test_documented_block_not_run_here. A block marked not-run must be
#: listed here too, so that no block leaves the suite without review.
NOT_RUN = {
    ("README.md", 'pip install -e ".[test]" && jwst-asteroids demo'),
    ("README.md", "pytest"),
    ("README.md", "python benchmarks/run_all.py"),
    ("docs/getting_started.rst", 'pip install -e ".[test]" && jwst-asteroids demo'),
    ("docs/getting_started.rst", "pytest"),
    ("docs/getting_started.rst", 'pip install -e ".[docs]"'),
    ("docs/parameter_files.rst", "python -m jwst_asteroid_step.crds_params.make_pars"),
    ("docs/survey.rst", 'pip install -e ".[online]"'),
}


def _id(block):
    return block.where


# ---- the folder each document's blocks run in ----

@pytest.fixture(scope="session")
def docs_exposure(offline_refs, bright_mover, tmp_path_factory):
    """A folder with the documents' example exposure and every product they name.

    ``<ROOT>_uncal.fits`` (simulated, raw), and from one offline
    ``calwebb_detector1_asteroid`` run its ``_jump``, ``_fitopt``, ``_rate``, ``_rateints``
    and ``_asteroids`` files; ``horizons_jwst.csv``, an ephemeris of a known object at the
    detected mover; and ``demo_output/``, the same products under the demo's names (for
    docs/figures/README.md, which regenerates the demo's figures).
    """
    from jwst_asteroid_step import AsteroidDetector1Pipeline

    mover, kwargs = bright_mover
    folder = tmp_path_factory.mktemp("docs_exposure")
    ramp, truth = simulate_ramp(movers=[mover], **{**kwargs, "ngroups": 40,
                                                   "filename": f"{ROOT}_uncal.fits"},
                                flag_edges=False)
    uncal = save_simulation(ramp, truth, folder / ROOT)["ramp"]
    steps = doc_blocks.pipeline_overrides(offline_refs)
    steps["jump"]["save_results"] = True
    steps["ramp_fit"]["save_opt"] = True
    AsteroidDetector1Pipeline.call(str(uncal), steps=steps, save_results=True, output_dir=str(folder))
    with AsteroidCatalogModel(folder / f"{ROOT}_asteroids.asdf") as cat:
        assert len(cat.catalog) == 1, "the documents' example exposure should give one detection"
        det = cat.catalog[0]
    jd = det["mjd"] + 2400000.5 + np.array([-1.0, 0.0, 1.0]) / 24
    ephemeris = Table({
        "targetname": ["2026 XA (example)"] * 3, "datetime_jd": jd,
        "RA": det["ra"] + det["ra_rate"] / 3600 / np.cos(np.radians(det["dec"])) * (jd - jd[1]) * 24,
        "DEC": det["dec"] + det["dec_rate"] / 3600 * (jd - jd[1]) * 24,
        "RA_rate": [det["ra_rate"]] * 3, "DEC_rate": [det["dec_rate"]] * 3,
    })
    ephemeris.write(folder / "horizons_jwst.csv", format="ascii.csv")
    demo = folder / "demo_output"
    demo.mkdir()
    for suffix in ("asteroids.asdf", "jump.fits", "rate.fits"):
        shutil.copy(folder / f"{ROOT}_{suffix}", demo / f"jw_asteroid_demo_{suffix}")
    return folder


@pytest.fixture(scope="session")
def scheduler_address():
    """A running Dask scheduler, standing for the user's ``tcp://scheduler:8786``."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
    yield cluster.scheduler_address
    cluster.close()


class DocumentRun:
    """The blocks of one document, run in order in one folder; each at most once."""

    def __init__(self, folder, refs, values):
        self.folder, self.refs, self.values = folder, refs, values
        self.results = {}

    def run(self, block):
        """Run ``block`` after every earlier runnable block of its document.

        Returns
        -------
        list of (str, CompletedProcess)
            The commands as run (after substitution) and their results.
        """
        for earlier in RUNNABLE:
            if earlier.path == block.path and earlier.line <= block.line \
                    and earlier.where not in self.results:
                self.results[earlier.where] = self._run_one(earlier)
        return self.results[block.where]

    def _env(self):
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["MPLBACKEND"] = "Agg"
        return env

    def _run_one(self, block):
        text = doc_blocks.substitute_names(block.text, **self.values())
        if block.kind == "file":
            (self.folder / block.file).write_text(text)
            return [(f"(wrote {block.file})", None)]
        if block.kind == "python":
            script = self.folder / f"_block_{block.line}.py"
            script.write_text(offline_python(text, self.refs))
            return [(f"python {script.name}", self._call([sys.executable, str(script)]))]
        runs = []
        for line in logical_lines(text):
            command = offline_command(line, self.refs, self.folder)
            run = self._call(["bash", "-e", "-o", "pipefail", "-c", command])
            runs.append((command, run))
            if run.returncode:
                break
        return runs

    def _call(self, argv):
        return subprocess.run(argv, check=False, cwd=self.folder, env=self._env(), capture_output=True,
                              text=True, timeout=900)


@pytest.fixture(scope="session")
def document_runs(docs_exposure, offline_refs, tmp_path_factory, request):
    """One :class:`DocumentRun` per document, made when its first block is run."""
    runs = {}

    def values():
        needs_scheduler = any("tcp://scheduler:8786" in b.text for b in RUNNABLE)
        address = request.getfixturevalue("scheduler_address") if needs_scheduler else ""
        return {"scheduler": address, "repo": str(doc_blocks.REPO)}

    def get(path):
        if path not in runs:
            folder = tmp_path_factory.mktemp(path.stem)
            shutil.copytree(docs_exposure, folder, dirs_exist_ok=True)
            runs[path] = DocumentRun(folder, offline_refs, values)
        return runs[path]

    return get


# ---- the tests ----

@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=_id)
def test_documented_block_runs_as_written(block, document_runs):
    runs = document_runs(block.path).run(block)
    for command, run in runs:
        if run is None:
            continue
        assert run.returncode == 0, (
            f"{block.where}: `{command}` exited {run.returncode}\n"
            f"--- stdout (end)\n{run.stdout[-3000:]}\n--- stderr (end)\n{run.stderr[-5000:]}")


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.not_run is not None], ids=_id)
def test_documented_block_not_run_here(block):
    """Shown in every run's summary (-ra) with the reason the document gives."""
    pytest.skip(f"not run here: {block.first_line!r}: {block.not_run}")


def test_every_block_not_run_is_listed_with_its_reason():
    """Blocks marked not-run are exactly those listed above, each with a reason."""
    marked = {(doc_blocks.shown(b.path), doc_blocks.strip_comment(b.first_line)): b.not_run
              for b in BLOCKS if b.not_run is not None}
    assert set(marked) == NOT_RUN, (
        f"marked not-run in the documents but not listed here: {set(marked) - NOT_RUN}; "
        f"listed here but no longer marked: {NOT_RUN - set(marked)}")
    assert all(reason.strip() for reason in marked.values())


def test_every_command_block_is_run():
    """Only text blocks (layouts, output) are neither run nor listed, and none holds a command."""
    unlisted = [b for b in BLOCKS if b.kind == "text"]
    for block in unlisted:
        assert not block.first_line.startswith(doc_blocks.COMMANDS), (
            f"{block.where} is a text block that starts with a command: give it a language")
    # The documents show commands for each way of running the step.
    texts = "\n".join(b.text for b in RUNNABLE)
    for needed in ("strun asteroid_detect", "strun calwebb_detector1_asteroid",
                   "pre_hooks=jwst_asteroid_step.hooks.AsteroidDetectHook,",
                   "--save-parameters", "--steps.asteroid_detect.", "export_config",
                   "strun asteroid_detect --help", "strun calwebb_detector1_asteroid --help",
                   "sphinx-build -W"):
        assert needed in texts, f"no block that runs {needed!r}"


def test_block_parser_finds_markers_and_rejects_unrunnable_blocks(tmp_path):
    page = tmp_path / "page.rst"
    page.write_text(
        "Title\n=====\n\n.. docs-test: not-run needs a GPU\n.. code-block:: bash\n\n"
        "   strun asteroid_detect x_jump.fits --search_backend=cupy\n\n"
        ".. docs-test: file=p.asdf\n.. code-block:: yaml\n   :caption: pars\n\n   a: 1\n   b: 2\n")
    first, second = doc_blocks.rst_blocks(page)
    assert first.not_run == "needs a GPU" and first.kind == "shell"
    assert second.file == "p.asdf" and second.text == "a: 1\nb: 2\n"
    literal = tmp_path / "literal.rst"
    literal.write_text("Run this::\n\n   strun asteroid_detect x_jump.fits\n")
    with pytest.raises(ValueError, match="literal"):
        doc_blocks.rst_blocks(literal)
    unnamed = tmp_path / "unnamed.md"
    unnamed.write_text("```yaml\na: 1\n```\n")
    with pytest.raises(ValueError, match="must name its file"):
        doc_blocks.markdown_blocks(unnamed)


def test_offline_substitution_only_appends_overrides(offline_refs, tmp_path):
    line = "strun asteroid_detect x_jump.fits --fitopt x_fitopt.fits   # a comment"
    out = offline_command(line, offline_refs, tmp_path)
    assert out.startswith("strun asteroid_detect x_jump.fits --fitopt x_fitopt.fits --override_gain=")
    assert "# a comment" not in out
    assert offline_command("strun asteroid_detect --help", offline_refs, tmp_path) == \
        "strun asteroid_detect --help"
    assert offline_command("ls *.fits > files.txt", offline_refs, tmp_path) == "ls *.fits > files.txt"
    pipe = offline_command("strun calwebb_detector1 x_uncal.fits", offline_refs, tmp_path)
    assert "--steps.jump.override_readnoise=" in pipe and "--steps.ipc.skip=True" in pipe
    source = offline_python('AsteroidDetector1Pipeline.call("x", steps={"jump": {"a": 1}})',
                            offline_refs)
    assert "steps=_offline_steps({'jump': {'a': 1}}, _OFFLINE_ASTEROID_PIPELINE)" in source
    plain = offline_python('Detector1Pipeline.call("x")', offline_refs)
    assert "steps=_offline_steps({}, _OFFLINE_PIPELINE)" in plain
    assert "--steps.asteroid_detect." not in pipe  # jwst's calwebb_detector1 has no such step


@pytest.mark.slow
def test_documented_parameter_files_carry_their_values(document_runs):
    """--save-parameters and export_config keep the values given, and strun <pars> uses them."""
    import asdf

    page = doc_blocks.REPO / "docs" / "parameter_files.rst"
    run = document_runs(page)
    for block in (b for b in RUNNABLE if b.path == page):
        assert all(r is None or r.returncode == 0 for _, r in run.run(block)), block.where
    with asdf.open(run.folder / "my_pars.asdf") as saved:
        assert saved.tree["class"] == "jwst_asteroid_step.step.AsteroidDetectStep"
        assert saved.tree["parameters"]["snr_threshold"] == 9
    with asdf.open(run.folder / "my_deep_pars.asdf") as exported:
        assert exported.tree["parameters"]["deep_search"] is True
    with AsteroidCatalogModel(run.folder / "deep" / f"{ROOT}_asteroids.asdf") as cat:
        parameters = json.loads(cat.meta.asteroid_detect.parameters)
        assert parameters["deep_search"] is True and parameters["snr_threshold"] == 9
    with AsteroidCatalogModel(run.folder / "second_run" / f"{ROOT}_asteroids.asdf") as cat:
        assert json.loads(cat.meta.asteroid_detect.parameters)["snr_threshold"] == 9


@pytest.mark.slow
def test_documented_match_finds_the_known_object(document_runs):
    page = doc_blocks.REPO / "docs" / "survey.rst"
    last = [b for b in RUNNABLE if b.path == page][-1]
    (command, result), *_ = [r for r in document_runs(page).run(last) if "survey_detections" in r[0]]
    assert result.returncode == 0 and "1 of 1 row(s) match a known object" in result.stdout, command
