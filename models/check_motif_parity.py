"""Parity check: the Python motifs (models/chem_motifs.py) against the Rust ones
(`weft::chem::motifs`, printed by examples/dump_motifs.rs).

    # 1. SMILES for the check (deterministic; from the data build_mol.py uses)
    python3 models/check_motif_parity.py --write-smiles 1000 /tmp/motif_parity/smiles.txt
    # 2. the Rust side
    cargo build --release --example dump_motifs
    target/release/examples/dump_motifs /tmp/motif_parity/smiles.txt > /tmp/motif_parity/rust.jsonl
    # 3. compare (exit 1 on any mismatch)
    python3 models/check_motif_parity.py --smiles /tmp/motif_parity/smiles.txt \
        --rust-json /tmp/motif_parity/rust.jsonl

    # the Rust unit tests of src/chem/{smiles,motif}.rs, ported (exit 1 on a failure)
    python3 models/check_motif_parity.py --self-test

`--write-smiles N FILE` takes N SMILES with a fixed seed from, in fixed shares:
`.weft/data/molecules/test.tsv` and `sample.csv` (RDKit canonical, what the engine sees),
the PubChem `large` table SMILES canonicalised with RDKit as build_mol.py does (when
`--pylib` holds RDKit; otherwise that share goes to the raw rows), and raw (Kekulé,
PubChem-written) SMILES of the `large` and `small` tables, each share stratified over
small/large, aromatic, charged, multi-component, stereo, isotope and `%nn` SMILES.
`--with-test-smiles` appends the SMILES of the Rust unit tests (valid and invalid) and
`--with-mutants K` K seeded edits of the written SMILES (mostly invalid: the error paths;
the data SMILES all parse).

A record matches when Python and Rust agree on error-vs-ok and, for an error, on the
message (`SmilesError` Display), and otherwise on every motif's kind, label, tokens and
atoms, in order.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chem_motifs as cm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261203
TABLE_LARGE = "chemicals/Identifiers/chemical identifiers pubchem large.tsv"
TABLE_SMALL = "chemicals/Identifiers/chemical identifiers pubchem small.tsv"
RDKIT_DIR = "rdkit-2026.9.1"  # build_mol.RDKIT_DIR

# The rxnfp regex (motif.rs docs); tokenize() must equal re.finditer with it.
RXNFP = re.compile(
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|\%[0-9]{2}|[0-9])")


def rust_lines(text: str) -> list[str]:
    """Rust `str::lines`: split at `\\n`, drop the `\\r` of a `\\r\\n`, no empty last line."""
    parts = text.split("\n")
    last = parts.pop()
    out = [p[:-1] if p.endswith("\r") else p for p in parts]
    if last:
        out.append(last)
    return out


def read_text_exact(path: Path) -> str:
    """The file's text without universal-newline translation (as Rust reads it)."""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def python_record(smiles: str) -> dict:
    """The record dump_motifs.rs prints, computed in Python."""
    try:
        ms = cm.motifs(smiles)
    except cm.SmilesError as e:
        return {"smiles": smiles, "error": str(e)}
    return {"smiles": smiles, "motifs": [m.to_json() for m in ms]}


def _motif_line(m: dict) -> str:
    return f"{m['kind']:15s} {m['label']!r:32s} atoms={m['atoms']} tokens={m['tokens']}"


def _record_lines(r: dict) -> list[str]:
    if "error" in r:
        return [f"ERROR {r['error']}"]
    return [_motif_line(m) for m in r["motifs"]]


def compare(smiles_file: Path, rust_file: Path, show: int = 20) -> int:
    smiles = rust_lines(read_text_exact(smiles_file))
    rust = [json.loads(line) for line in rust_lines(read_text_exact(rust_file)) if line.strip()]
    if len(rust) != len(smiles):
        print(f"record count differs: {len(smiles)} SMILES, {len(rust)} Rust records")
    n = min(len(smiles), len(rust))
    matches, mismatches, errors, n_motifs = 0, [], 0, 0
    for i in range(n):
        s, r = smiles[i], rust[i]
        p = python_record(s)
        if r.get("smiles") != s:
            mismatches.append((i, s, [f"line {i + 1}: Rust record is for {r.get('smiles')!r}"]))
            continue
        r_norm = {"smiles": s, "error": r["error"]} if "error" in r else {
            "smiles": s,
            "motifs": [{k: m[k] for k in ("kind", "label", "tokens", "atoms")} for m in r["motifs"]]}
        if p == r_norm:
            matches += 1
            errors += "error" in p
            n_motifs += len(p.get("motifs", []))
            continue
        diff = list(difflib.unified_diff(_record_lines(r_norm), _record_lines(p), "rust", "python",
                                         lineterm="", n=1))
        mismatches.append((i, s, diff))
    print(f"molecules: {len(smiles)} (Rust records: {len(rust)})")
    print(f"exact matches: {matches}  ({errors} of them errors on both sides; "
          f"{n_motifs} motifs in the matching records)")
    print(f"mismatches: {len(mismatches)}")
    for i, s, diff in mismatches[:show]:
        print(f"\n--- line {i + 1}: {s}")
        for d in diff:
            print("   " + d)
    ok = not mismatches and len(rust) == len(smiles)
    print("\nPARITY OK" if ok else "\nPARITY FAILED")
    return 0 if ok else 1


# ---------------------------------------------------------------------------
# --write-smiles


def _tags(s: str) -> list[str]:
    outside = re.sub(r"\[[^\]]*\]", "", s)
    tags = []
    if len(s) <= 12:
        tags.append("small")
    if len(s) >= 80:
        tags.append("large")
    if re.search(r"[bcnops]", outside):
        tags.append("aromatic")
    if re.search(r"\[[^\]]*[+-]", s):
        tags.append("charged")
    if "." in s:
        tags.append("multi")
    if "@" in s or "/" in s or "\\" in s:
        tags.append("stereo")
    if re.search(r"\[\d", s):
        tags.append("isotope")
    if "%" in s:
        tags.append("ring%nn")
    if not tags:
        tags.append("plain")
    return tags


def _stratified(cands: list[str], k: int, rng: random.Random, taken: set[str]) -> list[str]:
    """k SMILES from cands (not in taken), round-robin over the tag buckets."""
    buckets: dict[str, list[str]] = {}
    for s in cands:
        for t in _tags(s):
            buckets.setdefault(t, []).append(s)
    order = sorted(buckets)
    for t in order:
        rng.shuffle(buckets[t])
    out: list[str] = []
    pos = dict.fromkeys(order, 0)
    while len(out) < k and any(pos[t] < len(buckets[t]) for t in order):
        for t in order:
            b = buckets[t]
            while pos[t] < len(b) and b[pos[t]] in taken:
                pos[t] += 1
            if pos[t] < len(b) and len(out) < k:
                s = b[pos[t]]
                pos[t] += 1
                taken.add(s)
                out.append(s)
    return out


def _table_smiles(path: Path) -> list[str]:
    """The SMILES column of a chemicals PubChem table, rows as build_mol.read_table keeps them."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        v = line.split("\t")
        if len(v) < 9 or not v[4] or not v[6]:
            continue
        out.append(v[4])
    return out


def _canonical(smiles: list[str], pylib: Path) -> list[str] | None:
    """RDKit canonical SMILES (build_mol.canonicalise), or None without RDKit."""
    d = pylib / RDKIT_DIR
    if not d.is_dir():
        return None
    sys.path.insert(0, str(d))
    try:
        from rdkit import Chem, RDLogger
    except Exception as e:  # noqa: BLE001
        print(f"write-smiles: RDKit not importable ({e}); using raw PubChem SMILES instead")
        return None
    RDLogger.DisableLog("rdApp.*")
    out = []
    for s in smiles:
        m = Chem.MolFromSmiles(s)
        if m is not None:
            out.append(Chem.MolToSmiles(m))
    return out


_MUTATION_ALPHABET = "CcNnOoSsPFIBrl[]()=#-+\\/:@H.123456789%*"


def mutate(s: str, rng: random.Random) -> str:
    """One to three seeded edits (delete, duplicate, insert, swap) of a SMILES: near-valid
    strings that exercise the parser's error paths and unusual graphs."""
    chars = list(s)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(4)
        k = rng.randrange(len(chars)) if chars else 0
        if op == 0 and chars:
            del chars[k]
        elif op == 1 and chars:
            chars.insert(k, chars[k])
        elif op == 2:
            chars.insert(k, rng.choice(_MUTATION_ALPHABET))
        elif len(chars) >= 2:
            k = min(k, len(chars) - 2)
            chars[k], chars[k + 1] = chars[k + 1], chars[k]
    return "".join(chars)


def write_smiles(n: int, dest: Path, data: Path, src: Path, pylib: Path, with_tests: bool,
                 mutants: int = 0) -> None:
    rng = random.Random(SEED)
    test = [line.split("\t")[0] for line in (data / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
            if line]
    with open(data / "sample.csv", encoding="utf-8", newline="") as f:
        sample = [row["smiles"] for row in csv.DictReader(f)]
    large = _table_smiles(src / TABLE_LARGE)
    small = _table_smiles(src / TABLE_SMALL)
    picked = sorted(rng.sample(range(len(large)), min(4000, len(large))))
    canon = _canonical([large[i] for i in picked], pylib)
    shares = [("test.tsv", test, 0.35), ("sample.csv", sample, 0.05),
              ("large (RDKit canonical)", canon or [], 0.30 if canon else 0.0),
              ("large (raw PubChem)", large, 0.25 if canon else 0.55), ("small (raw PubChem)", small, 0.05)]
    taken: set[str] = set()
    out: list[str] = []
    for name, cands, share in shares:
        k = round(n * share) if name != shares[-1][0] else n - len(out)
        cands = [s for s in cands if s and not any(c in s for c in "\r\n")]
        got = _stratified(cands, k, rng, taken)
        out.extend(got)
        print(f"write-smiles: {len(got):5d} from {name}")
    if with_tests:
        extra = [s for s in TEST_SMILES if s not in taken and not any(c in s for c in "\r\n")]
        extra = list(dict.fromkeys(extra))
        out.extend(extra)
        print(f"write-smiles: {len(extra):5d} from the Rust unit tests")
    if mutants:
        base = list(out)
        muts: list[str] = []
        while len(muts) < mutants:
            m = mutate(rng.choice(base), rng)
            if m not in taken:
                taken.add(m)
                muts.append(m)
        n_bad = 0
        for m in muts:
            try:
                cm.parse(m)
            except cm.SmilesError:
                n_bad += 1
        out.extend(muts)
        print(f"write-smiles: {len(muts):5d} seeded mutants of those ({n_bad} invalid for the Python parser)")
    tags: dict[str, int] = {}
    for s in out:
        for t in _tags(s):
            tags[t] = tags.get(t, 0) + 1
    print("write-smiles: tags " + ", ".join(f"{t} {c}" for t, c in sorted(tags.items())))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", encoding="utf-8", newline="") as f:
        f.write("".join(s + "\n" for s in out))
    print(f"write-smiles: {len(out)} SMILES -> {dest}")


# ---------------------------------------------------------------------------
# --self-test: the Rust unit tests of src/chem/smiles.rs and src/chem/motif.rs

REAL = [
    "CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "[Na+].[Cl-]",
    "C[C@H](N)C(=O)O", "c1ccc2ccccc2c1", "CC(C)CCCC(C)C1CCC2C1(CCC3C2CC=C4C3(CCC(C4)O)C)C",
    "C%10CCCCC%10", "OC(=O)c1ccccc1O", "C=1CCCCC1", "F/C=C/F", "[13CH3:7][NH3+]",
    "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O", "CN1CCC[C@H]1c2cccnc2", "O=[N+]([O-])c1ccc(Cl)cc1",
    "CS(=O)(=O)N", "OP(=O)(O)OCC", "C#N", "CC(=O)Nc1ccc(O)cc1", "COC", "CCN(CC)CC", "CCS", "CSSC",
    "C1=CC=CC=C1", "O1CCOCC1", "c1ccoc1", "c1cscn1", "C1CCNCC1", "CC(=O)Cl", "NC(N)=O", "CC=O",
    "CC(C)=O", "CC#CC", "C=CC", "[Si](C)(C)(C)C", "c1ccccc1-c1ccccc1", "C12(CCCC1)CCCC2",
    "[Ca+2].[O-]C(=O)C", "N", "O", "CC[N+](C)(C)C", "[2H]C([2H])([2H])O", "[H][H]",
    "CCOP(=S)(OCC)Oc1ccc([N+](=O)[O-])cc1", "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O",
    "CC1(C)S[C@@H]2[C@H](NC(=O)Cc3ccccc3)C(=O)N2[C@H]1C(=O)O", "[Cu+2].[O-]S(=O)(=O)[O-]",
]

# motif.rs tests `assorted_labels` and `more_labels` (a None entry checks one index only)
LABELS = [
    ("Cn1cnc2c1c(=O)n(C)c(=O)n2C", ["methyl group", "ring system (2 rings)", "carbonyl", "methyl group",
                                    "carbonyl", "methyl group"]),
    ("CC(C)CCCC(C)C1CCC2C1(CCC3C2CC=C4C3(CCC(C4)O)C)C",
     ["alkyl chain", "ring system (4 rings)", "hydroxyl", "methyl group", "methyl group"]),
    ("C[C@H](N)C(=O)O", ["alkyl chain", "primary amine", "carboxylic acid"]),
    ("C%10CCCCC%10", ["cyclohexane ring"]),
    ("C1=CC=CC=C1", ["benzene ring"]),
    ("O=[N+]([O-])c1ccc(Cl)cc1", ["nitro", "benzene ring", "chloro"]),
    ("CS(=O)(=O)N", ["methyl group", "sulfonamide"]),
    ("OP(=O)(O)OCC", ["phosphate", "alkyl chain"]),
    ("CC#N", ["methyl group", "nitrile"]),
    ("CC(=O)Nc1ccc(O)cc1", ["methyl group", "amide", "benzene ring", "phenol hydroxyl"]),
    ("COC", ["methyl group", "ether", "methyl group"]),
    ("CCN(CC)CC", ["alkyl chain", "tertiary amine", "alkyl chain", "alkyl chain"]),
    ("CCS", ["alkyl chain", "thiol"]),
    ("CSSC", ["methyl group", "disulfide", "methyl group"]),
    ("O1CCOCC1", ["dioxane ring"]),
    ("c1ccoc1", ["furan ring"]),
    ("c1cscn1", ["thiazole ring"]),
    ("c1ccncc1", ["pyridine ring"]),
    ("c1cncnc1", ["pyrimidine ring"]),
    ("c1cc[nH]c1", ["pyrrole ring"]),
    ("c1cnc[nH]1", ["imidazole ring"]),
    ("C1CCNCC1", ["piperidine ring"]),
    ("C1COCCN1", ["morpholine ring"]),
    ("CC(=O)Cl", ["methyl group", "acyl halide"]),
    ("NC(N)=O", ["urea"]),
    ("CC=O", ["methyl group", "aldehyde"]),
    ("CC(C)=O", ["methyl group", "ketone", "methyl group"]),
    ("CC#CC", ["alkynyl chain"]),
    ("C=CC", ["alkenyl chain"]),
    ("c1ccccc1-c1ccccc1", ["benzene ring", "benzene ring"]),
    ("C12(CCCC1)CCCC2", ["ring system (2 rings)"]),
    ("[Ca+2].[O-]C(=O)C", ["Ca2+ ion", "carboxylate", "methyl group"]),
    ("[NH4+]", ["NH4+ ion"]),
    ("CCOC(C)=O", ["alkyl chain", "ester", "methyl group"]),
    ("CN1CCC[C@H]1c2cccnc2", ["methyl group", "pyrrolidine ring", "pyridine ring"]),
    ("FC(F)(F)c1ccccc1", ["trifluoromethyl group", "benzene ring"]),
    ("ClC(Cl)(Cl)Cl", ["tetrachloromethane"]),
    ("CCOP(=S)(OCC)Oc1ccccc1", ["alkyl chain", "thiophosphate", "alkyl chain", "benzene ring"]),
    ("OCC1CCCCO1", ["hydroxyl", "methylene group", "tetrahydropyran ring"]),
    ("*C(=O)O", ["wildcard atom", "carboxylic acid"]),
    ("C", ["methane"]),
]
LABEL_AT = [("CC[N+](C)(C)C", 1, "quaternary ammonium"), ("NC(N)N", 1, "alkyl carbon")]

# smiles.rs `error_positions` (+ `display`, `invalid_smiles_propagates_error`):
# (SMILES, position, substring of the message or None)
ERRORS = [
    ("", 0, None), ("CCX", 2, "unknown element"), ("CC?C", 2, None), ("CNa", 1, "brackets"),
    ("C(C", 1, None), ("CC)C", 2, None), ("(C)C", 0, "branch at start"), ("C.(C)", 2, None),
    ("C1CCC", 1, None), ("CC1CC2CC2", 2, None), ("C%12CC", 1, None), ("C11", 2, "itself"),
    ("C=1CCCCC#1", 8, "conflicting"), ("C12CCCCC12", 9, None), ("CC=", 2, None), ("CC=(C)", 2, None),
    ("C(C=)C", 3, None), ("C=.C", 1, None), ("C1CC=1=", 6, None), ("=CC", 0, None), ("C=#C", 1, None),
    ("C()C", 2, None), ("CC.", 2, None), (".C", 0, None), ("C..C", 2, None),
    ("CC(=O)O>CC", 7, None), ("CC>>CC", 2, "reaction"), ("C[Na", 1, None), ("C[]", 1, None),
    ("C[Xy]", 2, None), ("C[NH4+x]", 6, None), ("C[C:]", 4, None), ("C[q]", 2, None),
    ("C[+]", 2, None), ("C%1C", 1, None), ("CC]", 2, None), ("1CC", 0, None), ("C(1CC)", 2, None),
    ("CC\u00e9C", 2, None), ("C1CCCC", 1, "unclosed ring bond 1"), ("C1CC", 1, None),
]

# Every SMILES of the Rust unit tests (for --with-test-smiles).
TEST_SMILES = list(dict.fromkeys(
    REAL + [s for s, _ in LABELS] + [s for s, _, _ in LABEL_AT] + [s for s, _, _ in ERRORS]
    + ["C0CC0", "C%00CC%00", "C1CC2CC2C1", "C9CC9C1CC1", "[13CH3]C0CC=0", "C%12CC%12", "C1CC1",
       "[13CH3]C1CC=1", "C0CCCCC0", "C%00CCCCC%00", "C=1CCCCC=1", "C-1CCCCC1", "[Fe+2]", "[O--]",
       "[Cu++]", "c1cc[se]c1", "[as]1cccc1", "[C@@H](F)(Cl)Br", "[C@TH1](F)(Cl)(Br)I", "[2H]", "[Sc]",
       "[*]CC", "CSc1ccccc1", "c1ccccc1c1ccccc1", "CCO.O", "C(C)(C)C", "C1CC2CCC1C2", "[C]",
       "CS(=O)(=O)O", "c1ccsc1", "[H]OC", "CC(C)C", "C1CC2CCC1C2"]))


class _Checker:
    def __init__(self):
        self.n = 0
        self.failed: list[str] = []

    def eq(self, got, want, what: str) -> None:
        self.n += 1
        if got != want:
            self.failed.append(f"{what}: got {got!r}, want {want!r}")

    def true(self, cond, what: str) -> None:
        self.n += 1
        if not cond:
            self.failed.append(what)

    def err(self, s: str) -> cm.SmilesError | None:
        try:
            m = cm.parse(s)
        except cm.SmilesError as e:
            return e
        self.failed.append(f"{s!r} parsed unexpectedly: {m}")
        return None


def _tok_strings(s: str) -> list[str]:
    return [s[a:b] for a, b in cm.tokenize(s)]


def _labels(s: str) -> list[str]:
    return [m.label for m in cm.motifs(s)]


def self_test() -> int:
    c = _Checker()
    B = cm
    # --- smiles.rs
    for given, want in [("C0CC0", "C1CC1"), ("C%00CC%00", "C1CC1"), ("C1CC2CC2C1", "C1CC2CC2C1"),
                        ("C9CC9C1CC1", "C1CC1C1CC1"), ("[13CH3]C0CC=0", "[13CH3]C1CC=1"),
                        ("C%12CC%12", "C1CC1"), ("CCO", "CCO")]:
        c.eq(cm.renumber_ring_closures(given), want, f"renumber {given}")
        a, b = cm.parse(given), cm.parse(want)
        c.eq((len(a.atoms), len(a.bonds)), (len(b.atoms), len(b.bonds)), f"renumber sizes {given}")
    cm.parse("C0CCCCC0")
    cm.parse("C%00CCCCC%00")

    m = cm.parse("CCO")
    c.eq((len(m.atoms), len(m.bonds), m.hydrogen_counts(), m.atoms[2].span, m.ring_systems()),
         (3, 2, [3, 2, 1], (2, 3), []), "ethanol")

    m = cm.parse("c1ccccc1")
    c.eq((len(m.atoms), len(m.bonds)), (6, 6), "benzene size")
    c.true(all(a.aromatic for a in m.atoms), "benzene aromatic")
    c.eq(m.hydrogen_counts(), [1] * 6, "benzene H")
    c.true(all(m.ring_bond_flags()), "benzene ring bonds")
    rs = m.ring_systems()
    c.eq((len(rs), rs[0].rings), (1, 1), "benzene ring systems")
    c.true(all(o == B.AROMATIC for o in m.effective_orders()), "benzene effective orders")
    cl = next(b for b in m.bonds if b.ring)
    c.eq(((cl.a, cl.b), cl.spans), ((0, 5), [(1, 2), (7, 8)]), "benzene closure")

    m = cm.parse("CC(=O)Oc1ccccc1C(=O)O")
    rs = m.ring_systems()
    c.eq((len(m.atoms), len(m.bonds), len(rs), len(rs[0].atoms)), (13, 13, 1, 6), "aspirin sizes")
    co = m.bonds[1]
    c.eq((co.a, co.b, co.order, co.spans), (1, 2, B.DOUBLE, [(2, 3), (3, 4), (5, 6)]), "aspirin C=O")
    h = m.hydrogen_counts()
    c.eq((h[0], h[1], h[12], h[4]), (3, 0, 1, 0), "aspirin H")

    m = cm.parse("Cn1cnc2c1c(=O)n(C)c(=O)n2C")
    rs = m.ring_systems()
    h = m.hydrogen_counts()
    c.eq((len(m.atoms), len(rs), rs[0].rings, len(rs[0].atoms)), (14, 1, 2, 9), "caffeine rings")
    c.eq((h[1], h[2], h[3], sum(h)), (0, 1, 0, 10), "caffeine H")

    m = cm.parse("[Na+].[Cl-]")
    c.eq((len(m.atoms), len(m.bonds)), (2, 0), "salt size")
    c.eq((m.atoms[0].element, m.atoms[0].charge, m.atoms[0].span), ("Na", 1, (0, 5)), "salt Na")
    c.eq((m.atoms[1].element, m.atoms[1].charge, m.atoms[1].span), ("Cl", -1, (6, 11)), "salt Cl")
    c.eq(m.components(), [[0], [1]], "salt components")

    m = cm.parse("C[C@H](N)C(=O)O")
    ca = m.atoms[1]
    c.eq((len(m.atoms), ca.chirality, ca.hcount, ca.span, m.hydrogen_counts()),
         (6, "@", 1, (1, 6), [3, 1, 2, 0, 0, 1]), "alanine")

    m = cm.parse("c1ccc2ccccc2c1")
    rs = m.ring_systems()
    c.eq((len(rs), rs[0].rings, len(rs[0].atoms), sum(m.hydrogen_counts())), (1, 2, 10, 8), "naphthalene")

    m = cm.parse("CC(C)CCCC(C)C1CCC2C1(CCC3C2CC=C4C3(CCC(C4)O)C)C")
    rs = m.ring_systems()
    c.eq((len(m.atoms), len(rs), rs[0].rings, len(rs[0].atoms), sum(m.hydrogen_counts())),
         (28, 1, 4, 17, 46), "cholesterol")

    m = cm.parse("C%10CCCCC%10")
    cl = next(b for b in m.bonds if b.ring)
    c.eq((len(m.atoms), cl.spans, m.ring_systems()[0].rings), (6, [(1, 4), (9, 12)], 1), "percent ring")

    m = cm.parse("C=1CCCCC1")
    cl = next(b for b in m.bonds if b.ring)
    c.eq((cl.order, cl.spans), (B.DOUBLE, [(1, 2), (2, 3), (8, 9)]), "ring bond with order")
    cm.parse("C=1CCCCC=1")
    cm.parse("C-1CCCCC1")

    m = cm.parse("[13CH3:7][NH3+]")
    c.eq((m.atoms[0].isotope, m.atoms[0].hcount, m.atoms[0].cls, m.atoms[1].charge), (13, 3, 7, 1),
         "brackets 13C")
    c.eq(cm.parse("[Fe+2]").atoms[0].charge, 2, "[Fe+2]")
    c.eq(cm.parse("[O--]").atoms[0].charge, -2, "[O--]")
    c.eq(cm.parse("[Cu++]").atoms[0].charge, 2, "[Cu++]")
    se = cm.parse("c1cc[se]c1")
    c.eq((se.atoms[3].element, se.atoms[3].aromatic), ("se", True), "[se]")
    cm.parse("[as]1cccc1")
    c.eq(cm.parse("[C@@H](F)(Cl)Br").atoms[0].chirality, "@@", "@@")
    cm.parse("[C@TH1](F)(Cl)(Br)I")
    c.eq(cm.parse("[2H]").atoms[0].element, "H", "[2H]")
    c.eq(cm.parse("[Sc]").atoms[0].element, "Sc", "[Sc]")
    cm.parse("*C(=O)O")
    cm.parse("[*]CC")
    c.eq(len(cm.parse("CSc1ccccc1").atoms), 8, "CSc1ccccc1")

    c.eq(cm.parse("C#N").bonds[0].order, B.TRIPLE, "C#N order")
    c.eq(cm.parse("C#N").hydrogen_counts(), [1, 0], "C#N H")
    c.eq(cm.parse("F/C=C/F").bonds[0].order, B.SINGLE, "F/C")
    c.eq(len(cm.parse("c1ccccc1-c1ccccc1").ring_systems()), 2, "biphenyl systems")
    c.eq(cm.parse("c1ccccc1c1ccccc1").effective_orders()[6], B.SINGLE, "biphenyl link")
    c.eq(len(cm.parse("CCO.O").components()), 2, "CCO.O")
    cm.parse("C(C)(C)C")
    c.eq(cm.parse("C1CC2CCC1C2").ring_systems()[0].rings, 2, "bridged")
    c.eq(cm.parse("C12(CCCC1)CCCC2").ring_systems()[0].rings, 2, "spiro")
    c.eq(cm.parse("[C]").implicit_hydrogens(0), 0, "[C]")
    c.eq(cm.parse("CS(=O)(=O)O").hydrogen_counts(), [3, 0, 0, 0, 1], "CS(=O)(=O)O H")
    c.eq(cm.parse("c1cc[nH]c1").hydrogen_counts()[3], 1, "[nH]")
    c.eq(cm.parse("c1ccncc1").hydrogen_counts()[3], 0, "pyridine n")
    c.eq(cm.parse("c1ccsc1").hydrogen_counts()[3], 0, "thiophene s")

    for s, pos, sub in ERRORS:
        e = c.err(s)
        if e is None:
            continue
        c.eq(e.position, pos, f"error position {s!r} ({e.message})")
        if sub is not None:
            c.true(sub in e.message, f"error message {s!r}: {e.message!r} lacks {sub!r}")
    e = c.err("C1CCCC")
    if e is not None:
        c.eq(str(e), "invalid SMILES at position 1: unclosed ring bond 1", "display")
        c.true(isinstance(e, ValueError), "SmilesError is a ValueError")
    try:
        cm.motifs("C1CC")
        c.true(False, "motifs('C1CC') did not raise")
    except ValueError as e:
        c.eq(getattr(e, "position", None), 1, "motifs error position")

    # --- motif.rs
    c.eq(_tok_strings("CC(=O)Oc1ccccc1C(=O)O"),
         ["C", "C", "(", "=", "O", ")", "O", "c", "1", "c", "c", "c", "c", "c", "1", "C", "(", "=", "O",
          ")", "O"], "tokens aspirin")
    c.eq(_tok_strings("[Na+].[Cl-]"), ["[Na+]", ".", "[Cl-]"], "tokens salt")
    c.eq(_tok_strings("C[C@H](N)C(=O)O"), ["C", "[C@H]", "(", "N", ")", "C", "(", "=", "O", ")", "O"],
         "tokens alanine")
    c.eq(_tok_strings("C%10CCCCC%10"), ["C", "%10", "C", "C", "C", "C", "C", "%10"], "tokens %10")
    c.eq(_tok_strings("BrCCCl"), ["Br", "C", "C", "Cl"], "tokens BrCCCl")
    c.eq(_tok_strings("CC>>CC"), ["C", "C", ">", ">", "C", "C"], "tokens reaction")
    c.eq(_tok_strings("C%1C"), ["C", "1", "C"], "tokens C%1C")
    c.eq(_tok_strings("C[]C"), ["C", "C"], "tokens C[]C")
    c.eq(_tok_strings("[Na"), ["N"], "tokens [Na")
    c.eq(_tok_strings("[[C]"), ["[[C]"], "tokens [[C]")
    c.eq(_tok_strings("CH4 x"), ["C", "4"], "tokens CH4 x")
    c.eq(_tok_strings("Ba"), ["B"], "tokens Ba")
    c.eq(_tok_strings("C~C@?*$"), ["C", "~", "C", "@", "?", "*", "$"], "tokens C~C@?*$")
    c.eq(cm.tokenize("\u00e9[Na+]"), [(1, 6)], "tokens non-ASCII")

    for s in REAL:
        c.eq("".join(_tok_strings(s)), s, f"tokens cover {s}")
    c.eq(len(cm.tokenize("Cn1cnc2c1c(=O)n(C)c(=O)n2C")), 26, "caffeine token count")
    c.eq(len(cm.tokenize("CC(C)CCCC(C)C1CCC2C1(CCC3C2CC=C4C3(CCC(C4)O)C)C")), 47, "cholesterol tokens")

    for s in REAL:  # partition_invariants
        mol = cm.parse(s)
        toks = cm.tokenize(s)
        ms = cm.motifs(s)
        atom_owner = [0] * len(mol.atoms)
        tok_owner = [0] * len(toks)
        for mo in ms:
            c.true(bool(mo.atoms), f"{s}: empty motif {mo}")
            for a in mo.atoms:
                atom_owner[a] += 1
            for t in mo.tokens:
                tok_owner[t] += 1
            c.true(all(x < y for x, y in zip(mo.tokens, mo.tokens[1:])), f"{s}: tokens not ascending")
        c.true(all(x == 1 for x in atom_owner), f"{s}: atoms not partitioned {ms}")
        c.true(all(x <= 1 for x in tok_owner), f"{s}: token in two motifs {ms}")
        for atom in mol.atoms:
            t = next(k for k, (a, _) in enumerate(toks) if a == atom.span[0])
            c.eq(toks[t], atom.span, f"{s}: atom token span")
            c.eq(tok_owner[t], 1, f"{s}: atom token {t} unowned")

    ms = cm.motifs("CC(=O)Oc1ccccc1C(=O)O")
    c.eq([x.label for x in ms], ["methyl group", "ester", "benzene ring", "carboxylic acid"], "aspirin labels")
    c.eq([x.tokens for x in ms], [[0], [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12, 13, 14],
                                  [15, 16, 17, 18, 19, 20]], "aspirin tokens")
    c.eq((ms[1].kind, ms[2].kind), ("FunctionalGroup", "Ring"), "aspirin kinds")

    ms = cm.motifs("OC(=O)c1ccccc1O")
    c.eq([x.label for x in ms], ["carboxylic acid", "benzene ring", "phenol hydroxyl"], "salicylic labels")
    c.eq((ms[0].tokens, ms[2].tokens), ([0, 1, 2, 3, 4, 5], [14]), "salicylic tokens")

    ms = cm.motifs("CCO")
    c.eq([(x.kind, x.label, x.tokens) for x in ms],
         [("Chain", "alkyl chain", [0, 1]), ("FunctionalGroup", "hydroxyl", [2])], "ethanol motifs")

    ms = cm.motifs("[Na+].[Cl-]")
    c.eq([(x.kind, x.label, x.tokens) for x in ms], [("Ion", "Na+ ion", [0]), ("Ion", "Cl- ion", [2])],
         "salt motifs")

    ms = cm.motifs("c1ccc2ccccc2c1")
    c.eq([(x.kind, x.label, x.tokens) for x in ms], [("RingSystem", "ring system (2 rings)", list(range(14)))],
         "naphthalene motifs")

    for s, want in LABELS:
        c.eq(_labels(s), want, f"labels {s}")
    for s, k, want in LABEL_AT:
        c.eq(_labels(s)[k], want, f"labels {s}[{k}]")

    ms = cm.motifs("[2H]C([2H])([2H])O")
    c.eq([x.label for x in ms], ["methyl group", "hydroxyl"], "[2H] labels")
    c.eq((ms[0].tokens, ms[0].atoms), ([0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3]), "[2H] join parent")
    ms = cm.motifs("[H]OC")
    c.eq((ms[0].label, ms[0].tokens), ("hydroxyl", [0, 1]), "[H]OC")

    # --- extra (not in Rust): tokenize == re.finditer(rxnfp regex) on fuzzed strings
    rng = random.Random(SEED)
    alphabet = "CcNnOoSsPpBbFIrlH[]()=#-+\\/:~@?>*$%.0123456789 aeKZ\u00e9"
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(3000)]
    bad = 0
    for s in REAL + TEST_SMILES + fuzz:
        want = [mt.span() for mt in RXNFP.finditer(s)]
        if cm.tokenize(s) != want:
            bad += 1
            if bad <= 5:
                c.failed.append(f"tokenize != rxnfp regex on {s!r}: {cm.tokenize(s)} vs {want}")
        c.n += 1
    # every fuzzed string either parses into motifs or raises SmilesError (never another error)
    def parses(s: str) -> int:
        try:
            cm.motifs(s)
            return 1
        except cm.SmilesError:
            return 0
        except Exception as e:  # noqa: BLE001
            c.failed.append(f"motifs({s!r}) raised {type(e).__name__}: {e}")
            return 0

    n_ok = 0
    for s in fuzz:
        c.n += 1
        n_ok += parses(s)

    # mutants of the unit-test SMILES: also only SmilesError, and tokenize == the regex
    for _ in range(3000):
        s = mutate(rng.choice(TEST_SMILES[:len(REAL)] + REAL), rng)
        c.n += 1
        if cm.tokenize(s) != [mt.span() for mt in RXNFP.finditer(s)]:
            c.failed.append(f"tokenize != rxnfp regex on mutant {s!r}")
        n_ok += parses(s)
    print(f"self-test: {c.n} checks, {len(c.failed)} failed "
          f"(incl. tokenize vs the rxnfp regex on {len(fuzz)} fuzzed strings and 3000 mutants; "
          f"{n_ok} of them valid SMILES)")
    for f in c.failed[:50]:
        print("  FAIL " + f)
    return 1 if c.failed else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smiles", type=Path, help="SMILES file, one per line")
    ap.add_argument("--rust-json", type=Path, help="output of examples/dump_motifs.rs for --smiles")
    ap.add_argument("--show", type=int, default=20, help="mismatches to print (default 20)")
    ap.add_argument("--write-smiles", nargs=2, metavar=("N", "FILE"), help="write N SMILES for the check")
    ap.add_argument("--with-test-smiles", action="store_true",
                    help="with --write-smiles: append the SMILES of the Rust unit tests")
    ap.add_argument("--with-mutants", type=int, default=0, metavar="K",
                    help="with --write-smiles: append K seeded edits of the written SMILES (error paths)")
    ap.add_argument("--data", type=Path, default=ROOT / ".weft/data/molecules")
    ap.add_argument("--src", type=Path, default=ROOT / ".weft/src")
    ap.add_argument("--pylib", type=Path, default=ROOT / ".weft/pylib")
    ap.add_argument("--python-json", type=Path, help="also write the Python records (JSON lines) here")
    ap.add_argument("--self-test", action="store_true", help="run the ported Rust unit tests")
    a = ap.parse_args()
    rc = 0
    if a.self_test:
        rc |= self_test()
    if a.write_smiles:
        write_smiles(int(a.write_smiles[0]), Path(a.write_smiles[1]), a.data, a.src, a.pylib,
                     a.with_test_smiles, a.with_mutants)
    if a.python_json:
        if not a.smiles:
            ap.error("--python-json needs --smiles")
        buf = io.StringIO()
        for s in rust_lines(read_text_exact(a.smiles)):
            buf.write(json.dumps(python_record(s), ensure_ascii=False) + "\n")
        a.python_json.parent.mkdir(parents=True, exist_ok=True)
        a.python_json.write_text(buf.getvalue(), encoding="utf-8")
        print(f"python records -> {a.python_json}")
    if a.rust_json:
        if not a.smiles:
            ap.error("--rust-json needs --smiles")
        rc |= compare(a.smiles, a.rust_json, a.show)
    if not (a.self_test or a.write_smiles or a.rust_json or a.python_json):
        ap.print_help()
        rc = 2
    sys.exit(rc)


if __name__ == "__main__":
    main()
