"""``jwst-asteroids demo``: what it prints (the README's main job, run in CI at full size)."""

import re

from jwst_asteroid_step import cli


def test_demo_prints_rounded_catalog_truth_and_whether_kernels_compiled(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--subarray", "SUB256", "--ngroups", "20", "--stars", "3",
                     "--output-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    truth, catalog = out.split("\nTruth:")[1].split("\nCatalog (")
    catalog = catalog.split("\nWall time")[0]
    # Digits the measurements carry, not float noise: no number with more than four decimals.
    assert not re.search(r"\d\.\d{5,}", truth + catalog)
    assert "flux_err" in catalog
    assert re.search(r"asteroid_detect / \(jump \+ ramp_fit\) = \d+\.\d\d, (numba kernels loaded from the cache"
                     r"|\d+ numba kernel specialisation\(s\) compiled in this run)", out)
    assert (tmp_path / "out" / "jw_asteroid_demo_asteroids.asdf").exists()
