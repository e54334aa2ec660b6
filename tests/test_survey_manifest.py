"""Survey bookkeeping without running any step: inputs, options, cluster shape, manifest."""

import json

import pytest

from jwst_asteroid_step.survey.inputs import Exposure, discover_exposures
from jwst_asteroid_step.survey.manifest import Manifest, read_counts
from jwst_asteroid_step.survey.mine import local_cluster_shape, parse_options


def _touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_discover_directory_glob_association_and_list(tmp_path):
    d = tmp_path / "data"
    _touch(d / "jw_a_jump.fits")
    _touch(d / "jw_a_fitopt.fits")
    _touch(d / "jw_a_uncal.fits")  # superseded by the _jump file of the same root
    _touch(d / "jw_b_uncal.fits")
    _touch(d / "jw_c_rate.fits")  # not an input
    _touch(d / "notes.txt")
    found = discover_exposures(d)
    assert [(e.root, e.kind) for e in found] == [("jw_a", "jump"), ("jw_b", "uncal")]
    assert found[0].fitopt.endswith("jw_a_fitopt.fits") and found[1].fitopt is None

    assert [e.root for e in discover_exposures(str(d / "*_uncal.fits"))] == ["jw_a", "jw_b"]

    asn = {"asn_type": "image2", "products": [{"name": "p", "members": [
        {"expname": "jw_b_uncal.fits", "exptype": "science"},
        {"expname": "jw_a_jump.fits", "exptype": "background"}]}]}
    _touch(d / "asn.json", json.dumps(asn))
    assert [e.root for e in discover_exposures(d / "asn.json")] == ["jw_b"]

    _touch(tmp_path / "list.txt", "# my files\ndata/jw_a_jump.fits\n\ndata/jw_b_uncal.fits\n")
    assert [e.root for e in discover_exposures(str(tmp_path / "list.txt"))] == ["jw_a", "jw_b"]
    with pytest.raises(FileNotFoundError):
        discover_exposures(str(tmp_path / "missing_jump.fits"))


def test_parse_options():
    opts = parse_options(["snr_threshold=7", "search=false", "override_gain=/a/g.fits",
                          "steps.jump.rejection_threshold=5.5", "steps.ramp_fit.skip=True"])
    assert opts == {"snr_threshold": 7, "search": False, "override_gain": "/a/g.fits",
                    "steps": {"jump": {"rejection_threshold": 5.5}, "ramp_fit": {"skip": True}}}
    with pytest.raises(ValueError):
        parse_options(["no_equals_sign"])


def test_local_cluster_shape():
    gb = 1e9
    # Enough memory: one worker per core, each with its share.
    assert local_cluster_shape(2 * gb, cores=4, memory=16 * gb) == (4, 4 * gb)
    # Short of memory: fewer workers, each able to hold one task.
    n, limit = local_cluster_shape(6 * gb, cores=4, memory=16 * gb)
    assert n == 2 and limit >= 6 * gb
    # Asked for more workers than fit: still never below one task's memory each.
    n, limit = local_cluster_shape(6 * gb, workers=4, cores=4, memory=16 * gb)
    assert n == 4 and limit == 6 * gb


def _exposures(tmp_path, n):
    return [Exposure(str(tmp_path / f"jw_{i}_jump.fits"), "jump", f"jw_{i}") for i in range(n)]


def test_manifest_resume_semantics(tmp_path):
    exposures = _exposures(tmp_path, 4)
    out = [_touch(tmp_path / "out" / f"jw_{i}_asteroids.asdf") for i in range(4)]
    path = tmp_path / "m.sqlite"
    with Manifest(path) as book:
        assert book.add(exposures) == 4
        assert book.add(exposures) == 0  # known files keep their status
        for e in exposures:
            book.mark_running(e.path)
        book.mark_done(exposures[0].path, out[0], started=1.0, finished=3.0, step_s=1.5)
        book.mark_done(exposures[1].path, out[1], started=1.0, finished=2.0)
        book.mark_failed(exposures[2].path, "ValueError: bad file")
        # "done" only with the catalog on disk.
        with pytest.raises(FileNotFoundError):
            book.mark_done(exposures[3].path, tmp_path / "nowhere.asdf")
        assert read_counts(path) == {"pending": 0, "running": 1, "done": 2, "failed": 1}
    # The run is killed here.  A catalog of a done file is then lost as well.
    out[1].unlink()
    with Manifest(path) as book:
        reset = book.prepare_resume()
        assert reset == {"running": 1, "missing_output": 1, "failed": 0}
        assert [r["root"] for r in book.rows("pending")] == ["jw_1", "jw_3"]
        done = book.rows("done")[0]
        assert done["root"] == "jw_0" and done["wall_s"] == 2.0 and done["step_s"] == 1.5
        assert book.rows("failed")[0]["error"] == "ValueError: bad file"
        assert book.prepare_resume(retry_failed=True)["failed"] == 1
        assert book.counts() == {"pending": 3, "running": 0, "done": 1, "failed": 0}
        run = book.start_run({"pars": None})
        book.finish_run(run)
        assert book.previous_config() == {"pars": None}
