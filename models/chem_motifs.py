"""Pure-Python port of `weft::chem::motifs` (src/chem/smiles.rs + src/chem/motif.rs).

Training code must group SMILES tokens into exactly the motifs the Rust engine builds at
search time, without RDKit or a compiled extension, so this file mirrors the two Rust
files function by function (each docstring names the Rust function it ports) and keeps
every iteration order, tie-break and error position of the Rust code:

* `parse(smiles) -> Molecule`: the OpenSMILES subset smiles.rs accepts, with 0-based
  **char** positions (a Python `str` index is a code point, which is a Rust `char`), the
  same bond order and bond `spans`; raises `SmilesError` (a `ValueError`) with the same
  position and message where Rust returns `Err`;
* `tokenize(smiles) -> list[(start, end)]`: the hand scanner equal to `re.findall` with
  the rxnfp regex;
* `motifs(smiles) -> list[Motif]`: `Motif.kind` is the Rust `MotifKind` variant name as
  `{:?}` prints it (`"Ring"`, `"RingSystem"`, `"FunctionalGroup"`, `"Chain"`, `"Ion"`).

HashMaps in the Rust code (`Parser.rings`, `Parser.pairs`, `by_root`, `token_at`,
`renumber_ring_closures.open`) are only used for lookups, or (`Parser::finish`) for a
minimum over unique keys, so their iteration order never reaches the output.

`models/check_motif_parity.py` compares this port with `examples/dump_motifs.rs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "SmilesError", "Atom", "Bond", "Molecule", "RingSystem", "Motif",
    "parse", "tokenize", "motifs", "motifs_from_molecule", "renumber_ring_closures",
    "SINGLE", "DOUBLE", "TRIPLE", "QUADRUPLE", "AROMATIC", "IMPLICIT",
]

# BondOrder variants (Rust enum names).
SINGLE = "Single"
DOUBLE = "Double"
TRIPLE = "Triple"
QUADRUPLE = "Quadruple"
AROMATIC = "Aromatic"
IMPLICIT = "Implicit"

# MotifKind variants, spelled as Rust's `{:?}` prints them.
RING = "Ring"
RING_SYSTEM = "RingSystem"
FUNCTIONAL_GROUP = "FunctionalGroup"
CHAIN = "Chain"
ION = "Ion"

_DIGITS = "0123456789"


def _is_digit(c: str) -> bool:
    """Rust `char::is_ascii_digit` (not `str.isdigit`, which accepts other scripts)."""
    return c in _DIGITS and c != ""


def _is_upper(c: str) -> bool:
    """Rust `char::is_ascii_uppercase`."""
    return "A" <= c <= "Z" and len(c) == 1


def _is_lower(c: str) -> bool:
    """Rust `char::is_ascii_lowercase`."""
    return "a" <= c <= "z" and len(c) == 1


def _parse_uint(text: str, limit: int) -> int | None:
    """Rust `str::parse` of ASCII digits into an unsigned range `0..=limit`: `None` on
    overflow (also avoids Python's int() limit on very long digit strings)."""
    t = text.lstrip("0")
    if len(t) > len(str(limit)):
        return None
    v = int(t) if t else 0
    return v if v <= limit else None


def _ascii_lower(s: str) -> str:
    """Rust `str::to_ascii_lowercase` (non-ASCII letters unchanged)."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


# ---------------------------------------------------------------------------
# smiles.rs


class SmilesError(ValueError):
    """Port of `SmilesError`: `position` (0-based char index) and `message`;
    `str()` is the Rust `Display`: `invalid SMILES at position {p}: {message}`."""

    def __init__(self, position: int, message: str):
        super().__init__(position, message)
        self.position = position
        self.message = message

    def __str__(self) -> str:
        return f"invalid SMILES at position {self.position}: {self.message}"


_VALENCE = {SINGLE: 1, AROMATIC: 1, IMPLICIT: 1, DOUBLE: 2, TRIPLE: 3, QUADRUPLE: 4}


def bond_valence(order: str) -> int:
    """Port of `BondOrder::valence`."""
    return _VALENCE[order]


@dataclass
class Atom:
    """Port of `smiles::Atom`."""

    element: str
    aromatic: bool
    charge: int
    hcount: int | None
    span: tuple[int, int]
    isotope: int | None = None
    cls: int | None = None  # Rust field `class`
    chirality: str | None = None
    bracket: bool = False

    def symbol_lower(self) -> str:
        """Port of `Atom::symbol_lower`."""
        return _ascii_lower(self.element)

    def is_carbon(self) -> bool:
        """Port of `Atom::is_carbon`."""
        return self.element == "C" or self.element == "c"


@dataclass
class Bond:
    """Port of `smiles::Bond`."""

    a: int
    b: int
    order: str
    ring: bool
    spans: list[tuple[int, int]] = field(default_factory=list)

    def other(self, atom: int) -> int:
        """Port of `Bond::other`."""
        return self.b if self.a == atom else self.a


@dataclass
class RingSystem:
    """Port of `smiles::RingSystem`."""

    atoms: list[int]
    bonds: list[int]
    rings: int


class UnionFind:
    """Port of `smiles::UnionFind` (path halving; the smaller root wins)."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        p = self.parent
        while p[x] != x:
            p[x] = p[p[x]]
            x = p[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class Molecule:
    """Port of `smiles::Molecule` and its graph helpers."""

    atoms: list[Atom] = field(default_factory=list)
    bonds: list[Bond] = field(default_factory=list)

    def adjacency(self) -> list[list[tuple[int, int]]]:
        """Port of `Molecule::adjacency`: `(neighbour, bond index)` in bond order."""
        adj: list[list[tuple[int, int]]] = [[] for _ in self.atoms]
        for i, bond in enumerate(self.bonds):
            adj[bond.a].append((bond.b, i))
            adj[bond.b].append((bond.a, i))
        return adj

    def neighbours(self, atom: int) -> list[int]:
        """Port of `Molecule::neighbours`."""
        return [b.other(atom) for b in self.bonds if b.a == atom or b.b == atom]

    def implicit_hydrogens(self, atom: int) -> int:
        """Port of `Molecule::implicit_hydrogens`."""
        at = self.atoms[atom]
        if at.hcount is not None:
            return at.hcount
        e = at.element
        if e in ("B", "b"):
            valences = (3,)
        elif e in ("C", "c"):
            valences = (4,)
        elif e in ("N", "n", "P", "p"):
            valences = (3, 5)
        elif e in ("O", "o"):
            valences = (2,)
        elif e in ("S", "s"):
            valences = (2, 4, 6)
        elif e in ("F", "Cl", "Br", "I"):
            valences = (1,)
        else:
            return 0
        s = sum(_VALENCE[b.order] for b in self.bonds if b.a == atom or b.b == atom)
        if at.aromatic:
            s += 1
            return max(valences[0] - s, 0)  # u32::saturating_sub
        for v in valences:
            if v >= s:
                return v - s
        return 0

    def hydrogen_counts(self) -> list[int]:
        """Port of `Molecule::hydrogen_counts`."""
        return [self.implicit_hydrogens(i) for i in range(len(self.atoms))]

    def ring_bond_flags(self) -> list[bool]:
        """Port of `Molecule::ring_bond_flags` (iterative bridge finding; a bond is a ring
        bond iff it is not a bridge, which does not depend on the traversal order)."""
        n = len(self.atoms)
        adj = self.adjacency()
        unseen = -1
        disc = [unseen] * n
        low = [0] * n
        bridge = [False] * len(self.bonds)
        timer = 0
        for root in range(n):
            if disc[root] != unseen:
                continue
            disc[root] = timer
            low[root] = timer
            timer += 1
            stack = [[root, None, 0]]  # (atom, bond to parent, next adjacency index)
            while stack:
                top = stack[-1]
                v, parent_edge, nxt = top
                if nxt < len(adj[v]):
                    top[2] += 1
                    w, e = adj[v][nxt]
                    if e == parent_edge:
                        continue
                    if disc[w] == unseen:
                        disc[w] = timer
                        low[w] = timer
                        timer += 1
                        stack.append([w, e, 0])
                    else:
                        low[v] = min(low[v], disc[w])
                else:
                    stack.pop()
                    if parent_edge is not None and stack:
                        u = stack[-1][0]
                        low[u] = min(low[u], low[v])
                        if low[v] > disc[u]:
                            bridge[parent_edge] = True
        return [not b for b in bridge]

    def ring_atom_flags(self) -> list[bool]:
        """Port of `Molecule::ring_atom_flags`."""
        flags = [False] * len(self.atoms)
        for bond, in_ring in zip(self.bonds, self.ring_bond_flags()):
            if in_ring:
                flags[bond.a] = True
                flags[bond.b] = True
        return flags

    def effective_orders(self) -> list[str]:
        """Port of `Molecule::effective_orders`."""
        out = []
        for b, in_ring in zip(self.bonds, self.ring_bond_flags()):
            if b.order == IMPLICIT:
                if in_ring and self.atoms[b.a].aromatic and self.atoms[b.b].aromatic:
                    out.append(AROMATIC)
                else:
                    out.append(SINGLE)
            else:
                out.append(b.order)
        return out

    def ring_systems(self) -> list[RingSystem]:
        """Port of `Molecule::ring_systems` (systems created in bond order, then sorted by
        first atom; the HashMap `by_root` is only looked up)."""
        ring = self.ring_bond_flags()
        uf = UnionFind(len(self.atoms))
        for bond, in_ring in zip(self.bonds, ring):
            if in_ring:
                uf.union(bond.a, bond.b)
        by_root: dict[int, int] = {}
        systems: list[RingSystem] = []
        for i, bond in enumerate(self.bonds):
            if not ring[i]:
                continue
            root = uf.find(bond.a)
            idx = by_root.get(root)
            if idx is None:
                systems.append(RingSystem([], [], 0))
                idx = len(systems) - 1
                by_root[root] = idx
            sys_ = systems[idx]
            sys_.bonds.append(i)
            sys_.atoms.append(bond.a)
            sys_.atoms.append(bond.b)
        for sys_ in systems:
            sys_.atoms = sorted(set(sys_.atoms))
            sys_.rings = len(sys_.bonds) + 1 - len(sys_.atoms)
        systems.sort(key=lambda s: s.atoms[0])  # first atoms are distinct: no ties
        return systems

    def components(self) -> list[list[int]]:
        """Port of `Molecule::components` (ordered by first atom)."""
        uf = UnionFind(len(self.atoms))
        for bond in self.bonds:
            uf.union(bond.a, bond.b)
        by_root: dict[int, int] = {}
        comps: list[list[int]] = []
        for i in range(len(self.atoms)):
            root = uf.find(i)
            idx = by_root.get(root)
            if idx is None:
                comps.append([])
                idx = len(comps) - 1
                by_root[root] = idx
            comps[idx].append(i)
        return comps


ELEMENTS = frozenset([
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl",
    "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In",
    "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb",
    "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl",
    "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk",
    "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh",
    "Fl", "Mc", "Lv", "Ts", "Og",
])

AROMATIC_BRACKET = frozenset(["b", "c", "n", "o", "p", "s", "se", "as", "te"])


def is_element(s: str) -> bool:
    """Port of `smiles::is_element`."""
    return s in ELEMENTS


def bond_order_of(c: str) -> str | None:
    """Port of `smiles::bond_order_of`."""
    if c in ("-", "/", "\\"):
        return SINGLE
    return {"=": DOUBLE, "#": TRIPLE, "$": QUADRUPLE, ":": AROMATIC}.get(c)


def renumber_ring_closures(smiles: str) -> str:
    """Port of `smiles::renumber_ring_closures` (not used by `motifs`)."""
    chars = list(smiles)
    out: list[str] = []
    open_: dict[int, int] = {}
    used: set[int] = set()
    i = 0
    n = len(chars)
    while i < n:
        c = chars[i]
        if c == "[":
            try:
                end = chars.index("]", i) + 1
            except ValueError:
                end = n
            out.extend(chars[i:end])
            i = end
            continue
        if c == "%":
            if i + 2 < n and _is_digit(chars[i + 1]) and _is_digit(chars[i + 2]):
                label = int(chars[i + 1]) * 10 + int(chars[i + 2])
                i += 3
            else:
                out.append(c)
                i += 1
                continue
        elif _is_digit(c):
            i += 1
            label = int(c)
        else:
            out.append(c)
            i += 1
            continue
        if label in open_:
            new = open_.pop(label)
            used.discard(new)
        else:
            new = 1
            while new in used:
                new += 1
            used.add(new)
            open_[label] = new
        out.append(str(new) if new < 10 else f"%{new:02d}")
    return "".join(out)


class _OpenRing:
    """Port of `smiles::OpenRing`."""

    __slots__ = ("atom", "order", "bond_span", "digit_span")

    def __init__(self, atom, order, bond_span, digit_span):
        self.atom = atom
        self.order = order
        self.bond_span = bond_span
        self.digit_span = digit_span


class _Branch:
    """Port of `smiles::Branch`."""

    __slots__ = ("atom", "open", "first_bond")

    def __init__(self, atom, open_, first_bond):
        self.atom = atom
        self.open = open_
        self.first_bond = first_bond


_ATOM_START = frozenset("[*BCNOPSFIbcnops")
_BOND_CHARS = frozenset("-=#$:/\\")


def parse(smiles: str) -> Molecule:
    """Port of `smiles::parse`. Raises `SmilesError` (a `ValueError`)."""
    chars = list(smiles)
    if not chars:
        raise SmilesError(0, "empty string")
    p = _Parser()
    i = 0
    n = len(chars)
    while i < n:
        c = chars[i]
        if c in _ATOM_START:
            i = p.atom(chars, i)
        elif c in _BOND_CHARS:
            i = p.bond_symbol(c, i)
        elif c == "(":
            i = p.open_branch(i)
        elif c == ")":
            i = p.close_branch(i)
        elif c in _DIGITS or c == "%":
            i = p.ring_digit(chars, i)
        elif c == ".":
            i = p.dot(i)
        elif c == ">":
            raise SmilesError(i, "reaction SMILES ('>') are not molecules")
        else:
            raise unexpected(chars, i)
    return p.finish()


class _Parser:
    """Port of `smiles::Parser` (the parser's state between two symbols)."""

    def __init__(self):
        self.mol = Molecule()
        self.pairs: set[tuple[int, int]] = set()
        self.prev: int | None = None
        self.pending: tuple[str, int] | None = None  # (order, position)
        self.pending_paren: int | None = None
        self.last_dot: int | None = None
        self.stack: list[_Branch] = []
        self.rings: dict[int, _OpenRing] = {}

    def no_pending_bond(self) -> None:
        """Port of `Parser::no_pending_bond`."""
        if self.pending is not None:
            raise SmilesError(self.pending[1], "bond symbol without following atom")

    def atom(self, chars: list[str], i: int) -> int:
        """Port of `Parser::atom`."""
        if chars[i] == "[":
            atom, end = parse_bracket(chars, i)
        else:
            atom, end = parse_organic(chars, i)
        idx = len(self.mol.atoms)
        self.mol.atoms.append(atom)
        if self.prev is not None:
            p = self.prev
            spans: list[tuple[int, int]] = []
            opens_branch = self.pending_paren is not None
            if self.pending_paren is not None:
                open_ = self.pending_paren
                self.pending_paren = None
                spans.append((open_, open_ + 1))
            if self.pending is not None:
                o, pos = self.pending
                self.pending = None
                spans.append((pos, pos + 1))
                order = o
            else:
                order = IMPLICIT
            self.pairs.add((min(p, idx), max(p, idx)))
            bond_idx = len(self.mol.bonds)
            if opens_branch and self.stack:
                self.stack[-1].first_bond = bond_idx
            self.mol.bonds.append(Bond(p, idx, order, False, spans))
        self.pending_paren = None
        self.last_dot = None
        self.prev = idx
        return end

    def bond_symbol(self, c: str, i: int) -> int:
        """Port of `Parser::bond_symbol`."""
        self.no_pending_bond()
        if self.prev is None:
            raise SmilesError(i, "bond symbol without preceding atom")
        o = bond_order_of(c)
        self.pending = (o, i) if o is not None else None
        return i + 1

    def open_branch(self, i: int) -> int:
        """Port of `Parser::open_branch`."""
        self.no_pending_bond()
        if self.prev is None:
            msg = "branch at start" if not self.mol.atoms else "branch without preceding atom"
            raise SmilesError(i, msg)
        if self.pending_paren is not None:
            raise SmilesError(i, "branch must start with an atom")
        self.stack.append(_Branch(self.prev, i, None))
        self.pending_paren = i
        return i + 1

    def close_branch(self, i: int) -> int:
        """Port of `Parser::close_branch`."""
        self.no_pending_bond()
        if not self.stack:
            raise SmilesError(i, "unbalanced ')'")
        if self.pending_paren is not None:
            raise SmilesError(i, "empty branch")
        if self.prev is None and self.last_dot is not None:
            raise SmilesError(self.last_dot, "'.' without following atom")
        branch = self.stack.pop()
        if branch.first_bond is not None:
            self.mol.bonds[branch.first_bond].spans.append((i, i + 1))
        self.prev = branch.atom
        return i + 1

    def ring_digit(self, chars: list[str], i: int) -> int:
        """Port of `Parser::ring_digit`."""
        if chars[i] == "%":
            if i + 2 < len(chars) and _is_digit(chars[i + 1]) and _is_digit(chars[i + 2]):
                number = int(chars[i + 1]) * 10 + int(chars[i + 2])
                span = (i, i + 3)
            else:
                raise SmilesError(i, "'%' must be followed by two digits")
        else:
            number = int(chars[i])
            span = (i, i + 1)
        if self.prev is None:
            raise SmilesError(i, "ring-closure digit without preceding atom")
        p = self.prev
        if self.pending_paren is not None:
            raise SmilesError(i, "branch must start with an atom")
        here = self.pending
        self.pending = None
        open_ = self.rings.pop(number, None)
        if open_ is not None:
            self.close_ring(number, open_, p, here, span, i)
        else:
            self.rings[number] = _OpenRing(
                p,
                here[0] if here is not None else None,
                (here[1], here[1] + 1) if here is not None else None,
                span,
            )
        return span[1]

    def close_ring(self, number, open_: _OpenRing, p: int, here, span, i: int) -> None:
        """Port of `Parser::close_ring`."""
        if open_.atom == p:
            raise SmilesError(i, f"ring bond {number} to itself")
        if open_.order is not None and here is not None:
            o2, pos = here
            if open_.order != o2:
                raise SmilesError(pos, f"conflicting bond orders for ring bond {number}")
            order = open_.order
        elif open_.order is not None:
            order = open_.order
        elif here is not None:
            order = here[0]
        else:
            order = IMPLICIT
        key = (min(open_.atom, p), max(open_.atom, p))
        if key in self.pairs:
            raise SmilesError(i, f"ring bond {number} duplicates an existing bond")
        self.pairs.add(key)
        spans: list[tuple[int, int]] = []
        if open_.bond_span is not None:
            spans.append(open_.bond_span)
        spans.append(open_.digit_span)
        if here is not None:
            spans.append((here[1], here[1] + 1))
        spans.append(span)
        self.mol.bonds.append(Bond(open_.atom, p, order, True, spans))

    def dot(self, i: int) -> int:
        """Port of `Parser::dot`."""
        self.no_pending_bond()
        if self.prev is None:
            raise SmilesError(i, "'.' without preceding atom")
        self.prev = None
        self.pending_paren = None
        self.last_dot = i
        return i + 1

    def finish(self) -> Molecule:
        """Port of `Parser::finish`. The Rust `rings.iter().min_by_key(digit_span.0)`
        iterates a HashMap, but the digit positions are distinct, so the minimum is unique."""
        self.no_pending_bond()
        if self.prev is None and self.last_dot is not None:
            raise SmilesError(self.last_dot, "'.' without following atom")
        if self.stack:
            raise SmilesError(self.stack[0].open, "unclosed branch '('")
        if self.rings:
            number, open_ = min(self.rings.items(), key=lambda kv: kv[1].digit_span[0])
            raise SmilesError(open_.digit_span[0], f"unclosed ring bond {number}")
        return self.mol


def unexpected(chars: list[str], i: int) -> SmilesError:
    """Port of `smiles::unexpected`: the error for a char that starts no SMILES element."""
    c = chars[i]
    if _is_lower(c) and i > 0 and _is_upper(chars[i - 1]):
        two = chars[i - 1] + c
        if is_element(two):
            return SmilesError(i - 1, f"element '{two}' must be written in brackets")
    if _is_upper(c):
        two = "".join(chars[i:min(i + 2, len(chars))])
        one = c
        # Rust checks `two.len() == 2` in bytes; an element symbol is ASCII, so a
        # two-char string that is an element is also two bytes.
        if is_element(two) and len(two) == 2:
            return SmilesError(i, f"element '{two}' must be written in brackets")
        if is_element(one):
            return SmilesError(i, f"element '{one}' must be written in brackets")
        return SmilesError(i, f"unknown element '{one}'")
    if c == "]":
        return SmilesError(i, "unbalanced ']'")
    return SmilesError(i, f"unexpected character '{c}'")


def parse_organic(chars: list[str], i: int) -> tuple[Atom, int]:
    """Port of `smiles::parse_organic` (organic-subset atom or `*`)."""
    c = chars[i]
    nxt = chars[i + 1] if i + 1 < len(chars) else None
    if c == "B" and nxt == "r":
        element, ln = "Br", 2
    elif c == "C" and nxt == "l":
        element, ln = "Cl", 2
    else:
        element, ln = c, 1
    return Atom(element, _is_lower(c), 0, None, (i, i + ln)), i + ln


def parse_bracket(chars: list[str], start: int) -> tuple[Atom, int]:
    """Port of `smiles::parse_bracket`: returns the atom and the index just past `]`."""
    try:
        end = chars.index("]", start + 1)  # index of ']'
    except ValueError:
        raise SmilesError(start, "unclosed bracket atom '['") from None
    i = start + 1

    def bad(pos: int, what: str) -> SmilesError:
        return SmilesError(pos, f"malformed bracket atom: {what}")

    if i == end:
        raise bad(start, "empty brackets")
    # isotope
    iso_start = i
    while i < end and _is_digit(chars[i]):
        i += 1
    if i > iso_start:
        # Rust: `text.parse::<u16>()` and at most 3 digits; <= 3 ASCII digits always parse.
        if i - iso_start > 3:
            raise bad(iso_start, "isotope out of range")
        isotope = int("".join(chars[iso_start:i]))
    else:
        isotope = None
    # symbol
    if i >= end:
        raise bad(i, "missing element symbol")
    c = chars[i]
    if c == "*":
        i += 1
        element, aromatic = "*", False
    elif _is_upper(c):
        two = "".join(chars[i:min(i + 2, end)])
        if len(two) == 2 and is_element(two):
            i += 2
            element, aromatic = two, False
        elif is_element(c):
            i += 1
            element, aromatic = c, False
        else:
            raise SmilesError(i, f"unknown element '{c}'")
    elif _is_lower(c):
        two = "".join(chars[i:min(i + 2, end)])
        if len(two) == 2 and two in AROMATIC_BRACKET:
            i += 2
            element, aromatic = two, True
        elif c in AROMATIC_BRACKET:
            i += 1
            element, aromatic = c, True
        else:
            raise SmilesError(i, f"unknown aromatic element '{c}'")
    else:
        raise bad(i, f"expected element symbol, found '{c}'")
    # chirality
    chirality = None
    if i < end and chars[i] == "@":
        cs = i
        i += 1
        if i < end and chars[i] == "@":
            i += 1
        elif i + 1 < end:
            tag = chars[i] + chars[i + 1]
            if tag in ("TH", "AL", "SP", "TB", "OH"):
                i += 2
                ds = i
                while i < end and _is_digit(chars[i]):
                    i += 1
                if i == ds:
                    raise bad(i, "chirality class needs a number")
        chirality = "".join(chars[cs:i])
    # hydrogen count
    hcount = 0
    if i < end and chars[i] == "H":
        i += 1
        hcount = 1
        if i < end and _is_digit(chars[i]):
            hcount = int(chars[i])
            i += 1
    # charge
    charge = 0
    if i < end and chars[i] in ("+", "-"):
        sign = chars[i]
        s = 1 if sign == "+" else -1
        i += 1
        if i < end and _is_digit(chars[i]):
            ds = i
            while i < end and _is_digit(chars[i]):
                i += 1
            v = _parse_uint("".join(chars[ds:i]), 0x7FFFFFFF)  # Rust: parse::<i32> or i32::MAX
            if v is None:
                v = 0x7FFFFFFF  # unwrap_or(i32::MAX)
            if v > 15:
                raise bad(ds, "charge out of range")
            charge = s * v
        else:
            charge = s
            while i < end and chars[i] == sign:
                charge += s
                i += 1
            if abs(charge) > 15:
                raise bad(i - 1, "charge out of range")
    # class
    cls = None
    if i < end and chars[i] == ":":
        i += 1
        ds = i
        while i < end and _is_digit(chars[i]):
            i += 1
        if i == ds:
            raise bad(i, "atom class needs a number")
        cls = _parse_uint("".join(chars[ds:i]), 0xFFFFFFFF)
        if cls is None:  # Rust: parse::<u32> fails
            raise bad(ds, "atom class out of range")
    if i != end:
        raise bad(i, f"unexpected '{chars[i]}'")
    atom = Atom(element, aromatic, charge, hcount, (start, end + 1), isotope, cls, chirality, True)
    return atom, end + 1


# ---------------------------------------------------------------------------
# motif.rs

_TOKEN_ONE = frozenset("BCNOSPFIbcnosp().=#-+\\/:~@?>*$0123456789")


def tokenize(smiles: str) -> list[tuple[int, int]]:
    """Port of `motif::tokenize`: char spans of the rxnfp regex tokens; unmatched chars
    are skipped like `re.findall`."""
    chars = list(smiles)
    n = len(chars)
    out: list[tuple[int, int]] = []
    i = 0
    while i < n:
        c = chars[i]
        nxt = chars[i + 1] if i + 1 < n else None
        if c == "[":
            try:
                k = chars.index("]", i + 1) - (i + 1)
            except ValueError:
                k = -1
            ln = k + 2 if k > 0 else 0
        elif c == "B" and nxt == "r":
            ln = 2
        elif c == "C" and nxt == "l":
            ln = 2
        elif c in _TOKEN_ONE:
            ln = 1
        elif c == "%":
            ln = 3 if (i + 2 < n and _is_digit(chars[i + 1]) and _is_digit(chars[i + 2])) else 0
        else:
            ln = 0
        if ln == 0:
            i += 1
        else:
            out.append((i, i + ln))
            i += ln
    return out


@dataclass
class Motif:
    """Port of `motif::Motif`; `kind` is the `MotifKind` variant name."""

    kind: str
    label: str
    tokens: list[int]
    atoms: list[int]

    def to_json(self) -> dict:
        return {"kind": self.kind, "label": self.label, "tokens": list(self.tokens),
                "atoms": list(self.atoms)}


def motifs(smiles: str) -> list[Motif]:
    """Port of `motif::motifs`: parse, tokenize, group. Raises `SmilesError`."""
    mol = parse(smiles)
    tokens = tokenize(smiles)
    return motifs_from_molecule(mol, tokens)


def motifs_from_molecule(mol: Molecule, tokens: list[tuple[int, int]]) -> list[Motif]:
    """Port of `motif::motifs_from_molecule`."""
    ctx = _Ctx(mol)
    ctx.ions()
    ctx.rings()
    ctx.nitro()
    ctx.sulfur_phosphorus_oxo()
    ctx.carbonyls()
    ctx.nitriles()
    ctx.oxo()
    ctx.hydroxyls()
    ctx.ethers()
    ctx.nitrogens()
    ctx.polyhalo()
    ctx.halides()
    ctx.sulfurs()
    ctx.leftovers()
    ctx.attach_hydrogens()

    token_at = {start: idx for idx, (start, _) in enumerate(tokens)}
    out = [Motif(kind, label, [], sorted(atoms)) for kind, label, atoms in ctx.groups]
    owner = ctx.owner
    for idx, motif in enumerate(out):  # idx is the group index `owner` refers to
        toks = motif.tokens
        for a in motif.atoms:
            t = token_at.get(mol.atoms[a].span[0])
            if t is not None:
                toks.append(t)
        for bond in mol.bonds:
            if owner[bond.a] == idx and owner[bond.b] == idx:
                for span in bond.spans:
                    t = token_at.get(span[0])
                    if t is not None:
                        toks.append(t)
        motif.tokens = sorted(set(toks))
    # Rust: stable sort_by_key on the first atom (usize::MAX when empty; never empty).
    out.sort(key=lambda m: m.atoms[0] if m.atoms else float("inf"))
    return out


def is_halogen(sym: str) -> bool:
    """Port of `motif::is_halogen`."""
    return sym in ("f", "cl", "br", "i")


class _Ctx:
    """Port of `motif::Ctx`, the working state of the grouping. Every pass iterates atoms
    in index order and re-checks `free` as it claims, like the Rust loops."""

    def __init__(self, mol: Molecule):
        """Port of `Ctx::new`."""
        self.mol = mol
        full = mol.adjacency()
        # Explicit hydrogen atoms bonded to one non-hydrogen atom fold into their parent.
        attached_h: list[int | None] = []
        for i in range(len(mol.atoms)):
            fi = full[i]
            if len(fi) == 1 and mol.atoms[i].element == "H" and mol.atoms[fi[0][0]].element != "H":
                attached_h.append(fi[0][0])
            else:
                attached_h.append(None)
        h = mol.hydrogen_counts()
        for p in attached_h:
            if p is not None:
                h[p] = min(h[p] + 1, 255)  # u8::saturating_add
        self.adj = [[(j, e) for (j, e) in v if attached_h[j] is None] for v in full]
        self.order = mol.effective_orders()
        self.in_ring = mol.ring_atom_flags()
        self.h = h
        self.attached_h = attached_h
        self.owner: list[int | None] = [None] * len(mol.atoms)
        self.groups: list[tuple[str, str, list[int]]] = []
        self._el = [a.symbol_lower() for a in mol.atoms]

    def attach_hydrogens(self) -> None:
        """Port of `Ctx::attach_hydrogens`."""
        for i in range(len(self.mol.atoms)):
            p = self.attached_h[i]
            if p is not None:
                g = self.owner[p]
                if g is not None:
                    self.owner[i] = g
                    self.groups[g][2].append(i)

    def el(self, i: int) -> str:
        """Port of `Ctx::el` (lowercase symbol)."""
        return self._el[i]

    def is_c(self, i: int) -> bool:
        """Port of `Ctx::is_c`."""
        return self.mol.atoms[i].is_carbon()

    def deg(self, i: int) -> int:
        """Port of `Ctx::deg` (degree in the H-folded graph)."""
        return len(self.adj[i])

    def free(self, i: int) -> bool:
        """Port of `Ctx::free`: unclaimed and not in a ring."""
        return self.owner[i] is None and not self.in_ring[i]

    def nbrs(self, i: int) -> list[tuple[int, str]]:
        """Port of `Ctx::nbrs`: neighbours with effective bond orders."""
        return [(j, self.order[e]) for (j, e) in self.adj[i]]

    def oxo_of(self, i: int) -> list[int]:
        """Port of `Ctx::oxo_of`: free terminal oxygens doubly bonded to `i`."""
        return [j for (j, o) in self.nbrs(i)
                if o == DOUBLE and self.el(j) == "o" and self.deg(j) == 1 and self.free(j)]

    def claim(self, kind: str, label: str, atoms: list[int]) -> None:
        """Port of `Ctx::claim`: only unclaimed atoms are taken; an empty group is not
        recorded (so group indices only count recorded groups)."""
        idx = len(self.groups)
        taken = []
        for a in atoms:
            if self.owner[a] is None:
                self.owner[a] = idx
                taken.append(a)
        if taken:
            self.groups.append((kind, label, taken))

    def fg(self, label: str, atoms: list[int]) -> None:
        """Port of `Ctx::fg`."""
        self.claim(FUNCTIONAL_GROUP, label, atoms)

    def ions(self) -> None:
        """Port of `Ctx::ions`."""
        for comp in self.mol.components():
            if len(comp) == 1:
                a = comp[0]
                atom = self.mol.atoms[a]
                if atom.charge != 0:
                    sym = atom.element
                    hn = self.h[a]
                    if hn == 1:
                        sym += "H"
                    elif hn != 0:
                        sym += f"H{hn}"
                    sign = "+" if atom.charge > 0 else "-"
                    mag = abs(atom.charge)
                    charge = sign if mag == 1 else f"{mag}{sign}"
                    self.claim(ION, f"{sym}{charge} ion", [a])

    def rings(self) -> None:
        """Port of `Ctx::rings`."""
        for sys_ in self.mol.ring_systems():
            if sys_.rings == 1:
                self.claim(RING, self.ring_label(sys_.atoms), sys_.atoms)
            else:
                self.claim(RING_SYSTEM, f"ring system ({sys_.rings} rings)", sys_.atoms)

    def cycle_order(self, atoms: list[int]) -> list[int]:
        """Port of `Ctx::cycle_order`: from the smallest atom, always the first neighbour
        (in adjacency = bond-creation order) that is in the ring and not yet visited."""
        members = set(atoms)
        order = [atoms[0]]
        seen = {atoms[0]}
        prev = -1
        cur = atoms[0]
        while len(order) < len(atoms):
            nxt = None
            for j, _ in self.adj[cur]:
                if j != prev and j in members and j not in seen:
                    nxt = j
                    break
            if nxt is None:
                break
            order.append(nxt)
            seen.add(nxt)
            prev = cur
            cur = nxt
        return order

    def bond_between(self, a: int, b: int) -> str | None:
        """Port of `Ctx::bond_between` (first matching adjacency entry)."""
        for j, e in self.adj[a]:
            if j == b:
                return self.order[e]
        return None

    def ring_label(self, atoms: list[int]) -> str:
        """Port of `Ctx::ring_label`."""
        cycle = self.cycle_order(atoms)
        k = len(cycle)
        syms = [self.el(a) for a in cycle]
        hetero = [p for p in range(k) if syms[p] != "c"]
        # Rust sort_unstable on &str (byte order); equal strings are indistinguishable.
        names = tuple(sorted(syms[p] for p in hetero))
        ring_double = [self.bond_between(cycle[p], cycle[(p + 1) % k]) == DOUBLE for p in range(k)]
        doubles = sum(ring_double)
        all_aromatic = all(self.mol.atoms[a].aromatic for a in cycle)
        lone_pair_hetero = any(
            syms[p] in ("n", "o", "s") and not ring_double[p] and not ring_double[(p + k - 1) % k]
            for p in hetero)
        aromatic = (all_aromatic or (k == 6 and doubles == 3)
                    or (k == 5 and doubles == 2 and lone_pair_hetero))
        if len(hetero) >= 2:
            d = hetero[1] - hetero[0]
            dist = min(d, k - d)
        else:
            dist = 0
        if aromatic:
            if k == 6 and names == ():
                return "benzene ring"
            if k == 6 and names == ("n",):
                return "pyridine ring"
            if k == 6 and names == ("n", "n"):
                return {1: "pyridazine ring", 2: "pyrimidine ring"}.get(dist, "pyrazine ring")
            if k == 6 and names == ("n", "n", "n"):
                return "triazine ring"
            if k == 5:
                five = {
                    ("o",): "furan ring",
                    ("s",): "thiophene ring",
                    ("n",): "pyrrole ring",
                    ("n", "n"): "pyrazole ring" if dist == 1 else "imidazole ring",
                    ("n", "o"): "isoxazole ring" if dist == 1 else "oxazole ring",
                    ("n", "s"): "isothiazole ring" if dist == 1 else "thiazole ring",
                    ("n", "n", "n"): "triazole ring",
                    ("n", "n", "n", "n"): "tetrazole ring",
                    ("n", "n", "o"): "oxadiazole ring",
                    ("n", "n", "s"): "thiadiazole ring",
                }.get(names)
                if five is not None:
                    return five
            if names == ():
                return f"aromatic {k}-membered ring"
            return f"aromatic {k}-membered heterocycle"
        if not names:
            base = {3: "cycloprop", 4: "cyclobut", 5: "cyclopent", 6: "cyclohex",
                    7: "cyclohept", 8: "cyclooct"}.get(k, "")
            suffix = {0: "ane", 1: "ene", 2: "adiene"}.get(doubles, "atriene")
            if not base:
                return f"{k}-membered carbocycle"
            return f"{base}{suffix} ring"
        if doubles == 0:
            sat = {
                (3, ("o",)): "epoxide ring",
                (3, ("n",)): "aziridine ring",
                (4, ("n",)): "azetidine ring",
                (4, ("o",)): "oxetane ring",
                (5, ("o",)): "tetrahydrofuran ring",
                (5, ("n",)): "pyrrolidine ring",
                (5, ("s",)): "tetrahydrothiophene ring",
                (5, ("o", "o")): "dioxolane ring",
                (5, ("n", "s")): "thiazolidine ring",
                (5, ("n", "o")): "oxazolidine ring",
                (5, ("n", "n")): "pyrazolidine ring" if dist == 1 else "imidazolidine ring",
                (6, ("o",)): "tetrahydropyran ring",
                (6, ("n",)): "piperidine ring",
                (6, ("s",)): "thiane ring",
            }.get((k, names))
            if sat is not None:
                return sat
            if k == 6 and dist == 3:
                guarded = {("n", "n"): "piperazine ring", ("n", "o"): "morpholine ring",
                           ("o", "o"): "dioxane ring"}.get(names)
                if guarded is not None:
                    return guarded
            return f"{k}-membered heterocycle"
        return f"{k}-membered heterocycle"

    def nitro(self) -> None:
        """Port of `Ctx::nitro`."""
        atoms = self.mol.atoms
        for n in range(len(atoms)):
            if self.el(n) != "n" or not self.free(n):
                continue
            os_ = [(j, o) for (j, o) in self.nbrs(n)
                   if self.el(j) == "o" and self.deg(j) == 1 and self.free(j)]
            if len(os_) != 2:
                continue
            doubles = sum(1 for (_, o) in os_ if o == DOUBLE)
            anion = any(o == SINGLE and atoms[j].charge < 0 for (j, o) in os_)
            if doubles == 2 or (doubles == 1 and anion):
                self.fg("nitro", [n, os_[0][0], os_[1][0]])

    def sulfur_phosphorus_oxo(self) -> None:
        """Port of `Ctx::sulfur_phosphorus_oxo`."""
        atoms = self.mol.atoms
        for x in range(len(atoms)):
            if not self.free(x):
                continue
            el = self.el(x)
            if atoms[x].aromatic or (el != "s" and el != "p"):
                continue
            oxo = self.oxo_of(x)
            if el == "p":
                thio = [j for (j, o) in self.nbrs(x)
                        if o == DOUBLE and self.el(j) == "s" and self.deg(j) == 1 and self.free(j)]
            else:
                thio = []
            thio_label = bool(thio) and not oxo
            oxo.extend(thio)
            if not oxo:
                continue
            nbrs = self.nbrs(x)
            single_o = [j for (j, o) in nbrs if o == SINGLE and self.el(j) == "o" and self.free(j)]
            sel = [x] + oxo
            if el == "p":
                total_o = len(oxo) + len(single_o)
                sel.extend(single_o)
                if thio_label:
                    label = "thiophosphate" if total_o >= 4 else "thiophosphoryl"
                elif total_o <= 2:
                    label = "phosphoryl"
                elif total_o == 3:
                    label = "phosphonate"
                else:
                    label = "phosphate"
                self.fg(label, sel)
                continue
            if len(oxo) == 1:
                self.fg("sulfoxide", sel)
                continue
            acid_o = [j for j in single_o if self.deg(j) == 1]
            ester_o = [j for j in single_o if self.deg(j) == 2]
            n_nbr = next((j for (j, _) in nbrs if self.el(j) == "n"), None)
            if acid_o:
                sel.extend(acid_o)
                label = "sulfonate" if any(atoms[j].charge < 0 for j in acid_o) else "sulfonic acid"
            elif n_nbr is not None:
                if self.free(n_nbr):
                    sel.append(n_nbr)
                label = "sulfonamide"
            elif ester_o:
                sel.extend(ester_o)
                label = "sulfonate ester"
            else:
                label = "sulfone"
            self.fg(label, sel)

    def carbonyls(self) -> None:
        """Port of `Ctx::carbonyls`."""
        atoms = self.mol.atoms
        for c in range(len(atoms)):
            if not self.is_c(c) or not self.free(c):
                continue
            oxos = self.oxo_of(c)
            if not oxos:
                continue
            oxo = oxos[0]
            others = [(j, o) for (j, o) in self.nbrs(c) if j != oxo]

            def single(sym: str) -> list[int]:
                return [j for (j, o) in others if o == SINGLE and self.el(j) == sym]

            os_ = single("o")
            ns = single("n")
            ss = single("s")
            hal = [j for (j, _) in others if is_halogen(self.el(j))]
            sel = [c, oxo]

            def keep_free(v: list[int]) -> list[int]:
                return [j for j in v if self.free(j)]

            acid = next((j for j in os_ if self.deg(j) == 1), None)
            if acid is not None:
                if self.free(acid):
                    sel.append(acid)
                label = "carboxylate" if atoms[acid].charge < 0 else "carboxylic acid"
            elif os_:
                sel.extend(keep_free(os_))
                if ns:
                    sel.extend(keep_free(ns))
                    label = "carbamate"
                elif len(os_) >= 2:
                    label = "carbonate"
                else:
                    label = "ester"
            elif ns:
                sel.extend(keep_free(ns))
                label = "urea" if len(ns) >= 2 else "amide"
            elif hal:
                sel.extend(keep_free(hal))
                label = "acyl halide"
            elif ss:
                sel.extend(keep_free(ss))
                label = "thioester"
            elif self.h[c] >= 1:
                label = "aldehyde"
            else:
                label = "ketone"
            self.fg(label, sel)

    def nitriles(self) -> None:
        """Port of `Ctx::nitriles`."""
        for c in range(len(self.mol.atoms)):
            if not self.is_c(c) or not self.free(c):
                continue
            n = next((j for (j, o) in self.nbrs(c)
                      if o == TRIPLE and self.el(j) == "n" and self.deg(j) == 1 and self.free(j)),
                     None)
            if n is not None:
                self.fg("nitrile", [c, n])

    def oxo(self) -> None:
        """Port of `Ctx::oxo`: remaining terminal `=O`."""
        for o in range(len(self.mol.atoms)):
            if self.el(o) != "o" or not self.free(o) or self.deg(o) != 1:
                continue
            r, order = self.nbrs(o)[0]
            if order == DOUBLE:
                self.fg("carbonyl" if self.is_c(r) else "oxo group", [o])

    def hydroxyls(self) -> None:
        """Port of `Ctx::hydroxyls`."""
        atoms = self.mol.atoms
        for o in range(len(atoms)):
            if self.el(o) != "o" or not self.free(o) or self.deg(o) != 1:
                continue
            r, order = self.nbrs(o)[0]
            if order != SINGLE:
                continue
            arom = atoms[r].aromatic
            if atoms[o].charge < 0:
                if self.is_c(r):
                    label = "phenolate" if arom else "alkoxide"
                else:
                    label = "oxide anion"
            elif self.h[o] >= 1:
                label = "phenol hydroxyl" if arom else "hydroxyl"
            else:
                continue
            self.fg(label, [o])

    def ethers(self) -> None:
        """Port of `Ctx::ethers` (ethers and peroxides)."""
        for o in range(len(self.mol.atoms)):
            if self.el(o) != "o" or not self.free(o) or self.deg(o) != 2:
                continue
            nbrs = self.nbrs(o)
            if any(b != SINGLE for (_, b) in nbrs):
                continue
            peer = next((j for (j, _) in nbrs if self.el(j) == "o"), None)
            if peer is not None:
                sel = [o]
                if self.free(peer):
                    sel.append(peer)
                self.fg("peroxide", sel)
            elif any(self.is_c(j) for (j, _) in nbrs):
                self.fg("ether", [o])

    def nitrogens(self) -> None:
        """Port of `Ctx::nitrogens`."""
        atoms = self.mol.atoms
        for n in range(len(atoms)):
            if self.el(n) != "n" or not self.free(n):
                continue
            nbrs = self.nbrs(n)
            if any(o == DOUBLE and self.is_c(j) for (j, o) in nbrs):
                self.fg("imine", [n])
                continue
            if any(o != SINGLE for (_, o) in nbrs):
                continue
            carbons = sum(1 for (j, _) in nbrs if self.is_c(j))
            if carbons < len(nbrs):
                peer = next((j for (j, _) in nbrs if self.el(j) == "n"), None)
                if peer is not None:
                    sel = [n]
                    if self.free(peer):
                        sel.append(peer)
                    self.fg("hydrazine", sel)
                continue
            if atoms[n].charge > 0:
                label = "quaternary ammonium" if carbons == 4 else "ammonium"
            else:
                label = {1: "primary amine", 2: "secondary amine", 3: "tertiary amine"}.get(carbons)
                if label is None:
                    continue
            self.fg(label, [n])

    def polyhalo(self) -> None:
        """Port of `Ctx::polyhalo`: carbons with two or more identical halogens."""
        atoms = self.mol.atoms
        for c in range(len(atoms)):
            if not self.is_c(c) or not self.free(c) or atoms[c].aromatic:
                continue
            for hal, name in (("f", "fluoro"), ("cl", "chloro"), ("br", "bromo"), ("i", "iodo")):
                xs = [j for (j, _) in self.nbrs(c) if self.el(j) == hal and self.free(j)]
                if len(xs) >= 2:
                    if len(xs) == 2:
                        label = f"di{name}methyl group"
                    elif len(xs) == 3:
                        label = f"tri{name}methyl group"
                    else:
                        label = f"tetra{name}methane"
                    self.fg(label, [c] + xs)
                    break

    def halides(self) -> None:
        """Port of `Ctx::halides`."""
        names = {"f": "fluoro", "cl": "chloro", "br": "bromo", "i": "iodo"}
        for x in range(len(self.mol.atoms)):
            if not self.free(x) or self.deg(x) == 0:
                continue
            label = names.get(self.el(x))
            if label is not None:
                self.fg(label, [x])

    def sulfurs(self) -> None:
        """Port of `Ctx::sulfurs`."""
        for s in range(len(self.mol.atoms)):
            if self.el(s) != "s" or not self.free(s):
                continue
            nbrs = self.nbrs(s)
            if any(o != SINGLE for (_, o) in nbrs):
                continue
            peer = next((j for (j, _) in nbrs if self.el(j) == "s"), None)
            if peer is not None:
                sel = [s]
                if self.free(peer):
                    sel.append(peer)
                self.fg("disulfide", sel)
            elif len(nbrs) == 1 and self.h[s] >= 1:
                self.fg("thiol", [s])
            elif len(nbrs) == 2 and all(self.is_c(j) for (j, _) in nbrs):
                self.fg("thioether", [s])

    def leftovers(self) -> None:
        """Port of `Ctx::leftovers`: connected unclaimed atoms (BFS from the lowest
        unclaimed atom) become chains."""
        mol = self.mol
        n = len(mol.atoms)
        seen = [False] * n
        for start in range(n):
            if seen[start] or self.owner[start] is not None or self.attached_h[start] is not None:
                continue
            comp = [start]
            seen[start] = True
            k = 0
            while k < len(comp):
                v = comp[k]
                k += 1
                for w, _ in self.adj[v]:
                    if not seen[w] and self.owner[w] is None:
                        seen[w] = True
                        comp.append(w)
            all_carbon = all(self.is_c(a) for a in comp)
            # Any bond of a member, also to atoms outside the component (as in Rust).
            has_double = any(self.order[e] == DOUBLE for a in comp for (_, e) in self.adj[a])
            if all_carbon and len(comp) == 1:
                if self.deg(start) == 0:
                    label = "methane"
                elif has_double or self.h[start] == 2:
                    label = "methylene group"
                elif self.h[start] >= 3 or self.deg(start) == 1:
                    label = "methyl group"
                else:
                    label = "alkyl carbon"
                kind = CHAIN
            elif all_carbon:
                members = set(comp)

                def internal(want: str) -> bool:
                    return any(o == want and b.a in members and b.b in members
                               for b, o in zip(mol.bonds, self.order))

                if internal(TRIPLE):
                    label = "alkynyl chain"
                elif internal(DOUBLE):
                    label = "alkenyl chain"
                else:
                    label = "alkyl chain"
                kind = CHAIN
            elif len(comp) == 1:
                e = mol.atoms[start].element
                label = "wildcard atom" if e == "*" else f"{e} atom"
                kind = FUNCTIONAL_GROUP
            else:
                kind, label = CHAIN, "heteroatom chain"
            self.claim(kind, label, comp)
