"""Every call of the Python package, its bad-input errors, and threads."""

import json
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

import weft

CAT = "a photo of a cat"


def test_runtime_and_version(engine):
    assert weft.__version__
    assert engine.ort_version.count(".") >= 1
    assert os.path.isfile(engine.ort_library)


def test_top5_equals_the_cli(photos, photos_dir, tmp_path):
    cli = os.environ.get("WEFT_CLI")
    assert cli and os.path.isfile(cli), "WEFT_CLI must name the weft binary"
    root = pathlib.Path(__file__).resolve().parents[2]

    def run(*args):
        out = subprocess.run(
            [cli, "--collections-dir", str(tmp_path), *args],
            cwd=root, check=True, capture_output=True, text=True,
        )
        return out.stdout

    run("index", str(photos_dir), "-c", "photos")
    cli_ids = [h["id"] for h in json.loads(run("search", CAT, "-c", "photos", "-k", "5", "--json"))]
    ids = [h.id for h in photos.search(CAT, k=5)]
    assert ids == cli_ids
    assert ids[0].endswith("chelsea.png")


def test_search_by_image_id_scorer_filter_explain(photos, photos_dir):
    cat = photos_dir / "chelsea.png"
    by_bytes = photos.search(cat.read_bytes(), k=3)
    by_path = photos.search(cat, k=3)
    by_image = photos.search(weft.Image(str(cat)), k=3)
    assert by_bytes[0].id.endswith("chelsea.png")
    assert [h.id for h in by_path] == [h.id for h in by_bytes] == [h.id for h in by_image]
    like = photos.search(id=by_bytes[0].id, k=3)
    assert by_bytes[0].id not in [h.id for h in like]
    filip = photos.search(CAT, k=3, scorer="filip", explain=True)
    assert filip[0].id.endswith("chelsea.png")
    assert filip[0].explanation and "similarity" in filip[0].explanation[0]
    assert filip[0].modality == "image"
    assert len(photos.search(CAT, k=14)) == 14


def test_add_filter_delete(engine, photos_dir, tmp_path):
    c = engine.open(tmp_path / "mixed", bundle="starter-vl")
    stats = c.add([
        ("cat", weft.Image(str(photos_dir / "chelsea.png")), {"kind": "photo", "year": 2020}),
        ("coffee", (photos_dir / "coffee.png").read_bytes(), {"kind": "photo", "year": 2024}),
        ("note", "a note about a sleepy cat", {"kind": "note"}),
        ("plain", "no payload at all"),
    ])
    assert stats["added"] == 4 and len(c) == 4
    hits = c.search(CAT, k=4, filter={"kind": "photo"})
    assert [h.id for h in hits][0] == "cat" and {h.id for h in hits} == {"cat", "coffee"}
    assert hits[0].payload == {"kind": "photo", "year": 2020}
    assert [h.id for h in c.search(CAT, filter='{"year": {"gte": 2021}}')] == ["coffee"]
    with pytest.raises(weft.InvalidInput, match="`cat` already exists"):
        c.add([("cat", "again")])
    with pytest.raises(weft.InvalidInput, match="item `junk`"):
        c.add([("ok", "fine"), ("junk", b"\x89PNG\r\n\x1a\n truncated")])
    assert len(c) == 4, "a failed add stages nothing"
    assert c.delete(["note", "nope"]) == 1 and len(c) == 3
    c.flush()
    c.verify()
    again = engine.open(tmp_path / "mixed", read_only=True)
    assert len(again) == 3 and again.bundle == "starter-vl"


def test_molecules(engine, tmp_path):
    m = engine.open(tmp_path / "mol", bundle="starter-mol")
    m.add([
        ("ethanol", weft.Smiles("CCO"), {"name": "ethanol"}),
        ("benzene", weft.Smiles("c1ccccc1")),
        ("aspirin", weft.Smiles("CC(=O)Oc1ccccc1C(=O)O")),
    ])
    hits = m.search(weft.Smiles("CCO"), k=3)
    assert hits[0].id == "ethanol" and hits[0].modality == "molecule"
    multi = m.search("an aromatic ring", k=3, scorer="multi")
    assert len(multi) == 3
    assert {h.id: h.payload for h in multi}["ethanol"] == {"name": "ethanol", "smiles": "CCO"}
    with pytest.raises(weft.InvalidInput, match="item `bad`"):
        m.add([("bad", weft.Smiles("C1CC(((("))])


def test_classify(engine, photos, photos_dir):
    labels = ["cat", "dog", "cup of coffee", "rocket"]
    c = engine.classify(photos_dir / "chelsea.png", labels, bundle="starter-vl")
    assert c.best == "cat"
    assert list(c.probabilities)[0] == "cat"
    assert abs(sum(c.probabilities.values()) - 1) < 1e-3
    assert set(c.scores) == set(labels)
    top2 = photos.classify((photos_dir / "coffee.png").read_bytes(), labels, top_k=2)
    assert top2.best == "cup of coffee" and len(top2.probabilities) == 2
    with pytest.raises(ValueError, match="labels"):
        engine.classify("x", [], bundle="starter-vl")


def test_embed(engine, photos, photos_dir):
    e = engine.embed(["a cat", "a dog"], bundle="starter-vl")
    assert e.dtype == np.float32 and e.shape[0] == 2 and e.ndim == 2
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    g, toks = engine.embed([CAT, photos_dir / "chelsea.png"], bundle="starter-vl", tokens=True)
    assert g.shape == (2, e.shape[1]) and len(toks) == 2
    assert toks[0].shape[1] == e.shape[1] and toks[0].shape[0] >= 4
    assert toks[1].shape[0] > toks[0].shape[0], "image patches outnumber the query's tokens"
    one = photos.embed(CAT)
    np.testing.assert_allclose(one[0], g[0], atol=1e-5)
    one[0, 0] = 0  # arrays are writable and owned by the caller


def test_errors_are_typed(engine, photos, tmp_path):
    assert issubclass(weft.InvalidInput, weft.WeftError)
    with pytest.raises(weft.InvalidConfig, match="scorer"):
        photos.search(CAT, scorer="best")
    with pytest.raises(weft.InvalidInput, match="filter: field `year`"):
        photos.search(CAT, filter={"year": {"near": 3}})
    with pytest.raises(weft.NotFound, match="nope"):
        photos.search(id="nope")
    with pytest.raises(weft.NotFound, match="no-such-bundle"):
        engine.open(tmp_path / "x", bundle="no-such-bundle")
    with pytest.raises(weft.InvalidConfig, match="device"):
        weft.Engine(device="tpu")
    with pytest.raises(TypeError, match="query"):
        photos.search(3.5)
    with pytest.raises(ValueError):
        photos.search()
    with pytest.raises(weft.Locked):
        engine.open(photos.path)
    with pytest.raises(weft.InvalidInput, match="molecule"):
        photos.search(weft.Smiles("CCO"))


def test_corrupted_data(engine, tmp_path):
    c = engine.open(tmp_path / "c", bundle="starter-vl")
    c.add([("a", "one"), ("b", "two")])
    c.flush()
    del c
    seg = sorted(p for p in (tmp_path / "c").rglob("*") if p.is_file() and "seg" in p.name)
    assert seg, list((tmp_path / "c").rglob("*"))
    data = bytearray(seg[0].read_bytes())
    data[len(data) // 2] ^= 0x40
    seg[0].write_bytes(bytes(data))
    with pytest.raises(weft.CorruptedData):
        engine.open(tmp_path / "c", read_only=True).verify()


def test_two_threads_search_at_once(photos):
    """The GIL is released during search, checked by who holds it, not by timing.

    With a switch interval of 10 s, a thread that holds the GIL keeps it until
    it releases it itself. The main thread starts a worker that runs 20
    searches and waits for it to start. If a search held the GIL, the main
    thread could only continue once the worker had finished all 20; since
    search releases it, the main thread continues during the first.
    """
    done = []

    def worker():
        for _ in range(20):
            photos.search(CAT, k=5, scorer="filip")
            done.append(1)

    before = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    try:
        t = threading.Thread(target=worker)
        t.start()
        at_wake = len(done)
        t.join()
    finally:
        sys.setswitchinterval(before)
    assert len(done) == 20
    assert at_wake < 20, "the main thread waited for every search: search holds the GIL"
    first = [h.id for h in photos.search(CAT, k=5)]
    results = []

    def same():
        results.append([h.id for h in photos.search(CAT, k=5)])

    ts = [threading.Thread(target=same) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results == [first] * 4
