"""Fixtures of the weft pytest suite: the project folder (.weft, made by
scripts/setup-ort.sh and models/build.sh), the weft CLI for comparison, and
one collection of the sample photos indexed once."""

import os
import pathlib

import pytest

import weft

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def project() -> pathlib.Path:
    p = pathlib.Path(os.environ.get("WEFT_PROJECT", ROOT / ".weft"))
    assert (p / "models" / "starter-vl" / "bundle.toml").is_file(), (
        f"{p}: no starter bundles; run scripts/setup-ort.sh and models/build.sh"
    )
    return p


@pytest.fixture(scope="session")
def engine(project) -> weft.Engine:
    return weft.Engine(project, threads=1)


@pytest.fixture(scope="session")
def photos_dir(project) -> pathlib.Path:
    return project / "data" / "photos"


@pytest.fixture(scope="session")
def photos(engine, photos_dir, tmp_path_factory) -> weft.Collection:
    c = engine.open(tmp_path_factory.mktemp("py") / "photos", bundle="starter-vl")
    report = c.index(str(photos_dir))
    assert report["items_added"] == 14, report
    return c


def pytest_runtest_logreport(report):
    # The suite runs whole or fails: a skipped test is a failure here.
    if report.skipped:
        report.outcome = "failed"
