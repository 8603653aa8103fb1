//! SMILES parsing and validation with character positions.
//!
//! Supports the OpenSMILES subset found in real data sets: organic-subset atoms
//! (`B C N O P S F Cl Br I`, aromatic `b c n o p s`), bracket atoms
//! `[isotope? symbol chirality? hcount? charge? class?]` with any element of the
//! periodic table (plus aromatic `se`, `as`, `te`), the wildcard `*`, bonds
//! `- = # $ : / \`, branches, ring closures (`0`-`9` and `%nn`, optionally
//! preceded by a bond symbol) and dot-disconnected components.
//!
//! Stereochemistry (`@`, `@@`, `@TH1`..., `/`, `\`) is validated and recorded
//! but not interpreted: `/` and `\` are plain single bonds.
//!
//! All positions and spans are 0-based **char** indices (not byte offsets), the
//! same unit the motif tokenizer uses.

use std::collections::{HashMap, HashSet};
use std::fmt;

/// Error returned by [`parse`]: the 0-based char position of the offending
/// character and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmilesError {
    /// 0-based char index in the SMILES string where the problem was detected.
    pub position: usize,
    /// Human-readable description, e.g. `unclosed ring bond 1`.
    pub message: String,
}

impl SmilesError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for SmilesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid SMILES at position {}: {}",
            self.position, self.message
        )
    }
}

impl std::error::Error for SmilesError {}

/// Bond order as written in the SMILES.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BondOrder {
    /// `-`, `/` or `\` (directional marks are treated as plain single bonds).
    Single,
    /// `=`
    Double,
    /// `#`
    Triple,
    /// `$`
    Quadruple,
    /// `:` (explicit aromatic bond).
    Aromatic,
    /// No bond symbol: single, or aromatic between two aromatic atoms in a ring
    /// (see [`Molecule::effective_orders`]).
    Implicit,
}

impl BondOrder {
    /// Valence contribution used for hydrogen counting (aromatic and implicit
    /// bonds count 1; aromatic atoms get their extra electron elsewhere).
    pub fn valence(self) -> u32 {
        match self {
            BondOrder::Single | BondOrder::Aromatic | BondOrder::Implicit => 1,
            BondOrder::Double => 2,
            BondOrder::Triple => 3,
            BondOrder::Quadruple => 4,
        }
    }
}

/// One atom of a parsed molecule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    /// Element symbol as written: `"C"`, `"c"`, `"Cl"`, `"Na"`, `"se"`, `"*"`.
    /// Aromatic atoms keep their lowercase spelling.
    pub element: String,
    /// Whether the atom was written in aromatic (lowercase) form.
    pub aromatic: bool,
    /// Formal charge (0 for organic-subset atoms).
    pub charge: i8,
    /// Explicit hydrogen count of a bracket atom (`Some(0)` for `[C]`);
    /// `None` for organic-subset atoms, whose hydrogens are implicit.
    pub hcount: Option<u8>,
    /// Char span `[start, end)` of the atom's text (a bracket atom spans its brackets).
    pub span: (usize, usize),
    /// Isotope mass number of a bracket atom, e.g. `Some(13)` for `[13C]`.
    pub isotope: Option<u16>,
    /// Atom class of a bracket atom (`[CH3:7]` -> `Some(7)`).
    pub class: Option<u32>,
    /// Chirality mark as written (`"@"`, `"@@"`, `"@TH1"`...); not interpreted.
    pub chirality: Option<String>,
    /// Whether the atom was written in brackets.
    pub bracket: bool,
}

impl Atom {
    /// Lowercase element symbol (`"c"` for both `C` and `c`, `"cl"` for `Cl`).
    pub fn symbol_lower(&self) -> String {
        self.element.to_ascii_lowercase()
    }

    /// True for carbon, aromatic or not.
    pub fn is_carbon(&self) -> bool {
        self.element == "C" || self.element == "c"
    }
}

/// One bond of a parsed molecule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bond {
    /// Index of the first atom (the one written first).
    pub a: usize,
    /// Index of the second atom.
    pub b: usize,
    /// Order as written.
    pub order: BondOrder,
    /// True when the bond was created by a ring-closure digit (not the same as
    /// ring membership, see [`Molecule::ring_bond_flags`]).
    pub ring: bool,
    /// Char spans of the non-atom tokens that spell this bond, in text order:
    /// the bond symbol(s), both ring-closure digits (`1`, `%10`) for a ring
    /// bond, and the `(` / `)` of the branch that this bond opens.
    pub spans: Vec<(usize, usize)>,
}

impl Bond {
    /// The atom at the other end of the bond from `atom`.
    pub fn other(&self, atom: usize) -> usize {
        if self.a == atom {
            self.b
        } else {
            self.a
        }
    }
}

/// A parsed molecule: atoms and bonds in SMILES order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Molecule {
    /// Atoms in order of appearance.
    pub atoms: Vec<Atom>,
    /// Bonds in order of creation.
    pub bonds: Vec<Bond>,
}

/// A ring system: a connected component of ring bonds (fused and spiro rings
/// together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingSystem {
    /// Member atoms, ascending.
    pub atoms: Vec<usize>,
    /// Member bonds (all in rings), ascending.
    pub bonds: Vec<usize>,
    /// Number of independent rings (cyclomatic number `bonds - atoms + 1`),
    /// e.g. 1 for benzene, 2 for naphthalene, 4 for a steroid.
    pub rings: usize,
}

impl Molecule {
    /// Adjacency list: for each atom, `(neighbour, bond index)` pairs.
    pub fn adjacency(&self) -> Vec<Vec<(usize, usize)>> {
        let mut adj = vec![Vec::new(); self.atoms.len()];
        for (i, bond) in self.bonds.iter().enumerate() {
            adj[bond.a].push((bond.b, i));
            adj[bond.b].push((bond.a, i));
        }
        adj
    }

    /// Neighbouring atom indices of `atom` (O(bonds); use [`Molecule::adjacency`]
    /// for repeated queries).
    pub fn neighbours(&self, atom: usize) -> Vec<usize> {
        self.bonds
            .iter()
            .filter(|b| b.a == atom || b.b == atom)
            .map(|b| b.other(atom))
            .collect()
    }

    /// Number of hydrogens on `atom`: the explicit count of a bracket atom, or
    /// the implicit count of an organic-subset atom from standard valences
    /// (B 3; C 4; N 3/5; O 2; P 3/5; S 2/4/6; halogens 1). Aromatic atoms use
    /// their lowest valence minus (bond valences + 1). The wildcard `*` has 0.
    pub fn implicit_hydrogens(&self, atom: usize) -> u8 {
        let at = &self.atoms[atom];
        if let Some(h) = at.hcount {
            return h;
        }
        let valences: &[u32] = match at.element.as_str() {
            "B" | "b" => &[3],
            "C" | "c" => &[4],
            "N" | "n" | "P" | "p" => &[3, 5],
            "O" | "o" => &[2],
            "S" | "s" => &[2, 4, 6],
            "F" | "Cl" | "Br" | "I" => &[1],
            _ => &[],
        };
        if valences.is_empty() {
            return 0;
        }
        let mut sum: u32 = self
            .bonds
            .iter()
            .filter(|b| b.a == atom || b.b == atom)
            .map(|b| b.order.valence())
            .sum();
        if at.aromatic {
            sum += 1;
            return valences[0].saturating_sub(sum) as u8;
        }
        valences
            .iter()
            .find(|&&v| v >= sum)
            .map_or(0, |&v| (v - sum) as u8)
    }

    /// Hydrogen counts of all atoms (see [`Molecule::implicit_hydrogens`]).
    pub fn hydrogen_counts(&self) -> Vec<u8> {
        (0..self.atoms.len())
            .map(|i| self.implicit_hydrogens(i))
            .collect()
    }

    /// For each bond, whether it lies on a cycle (i.e. it is not a bridge:
    /// removing it keeps its ends connected). Iterative, O(atoms + bonds).
    pub fn ring_bond_flags(&self) -> Vec<bool> {
        let n = self.atoms.len();
        let adj = self.adjacency();
        let mut disc = vec![usize::MAX; n];
        let mut low = vec![0usize; n];
        let mut bridge = vec![false; self.bonds.len()];
        let mut timer = 0usize;
        // (atom, bond to parent, next adjacency index)
        let mut stack: Vec<(usize, Option<usize>, usize)> = Vec::new();
        for root in 0..n {
            if disc[root] != usize::MAX {
                continue;
            }
            disc[root] = timer;
            low[root] = timer;
            timer += 1;
            stack.push((root, None, 0));
            while let Some(top) = stack.len().checked_sub(1) {
                let (v, parent_edge, next) = stack[top];
                if next < adj[v].len() {
                    stack[top].2 += 1;
                    let (w, e) = adj[v][next];
                    if Some(e) == parent_edge {
                        continue;
                    }
                    if disc[w] == usize::MAX {
                        disc[w] = timer;
                        low[w] = timer;
                        timer += 1;
                        stack.push((w, Some(e), 0));
                    } else {
                        low[v] = low[v].min(disc[w]);
                    }
                } else {
                    stack.pop();
                    if let (Some(e), Some(&(u, _, _))) = (parent_edge, stack.last()) {
                        low[u] = low[u].min(low[v]);
                        if low[v] > disc[u] {
                            bridge[e] = true;
                        }
                    }
                }
            }
        }
        bridge.into_iter().map(|b| !b).collect()
    }

    /// For each atom, whether it belongs to at least one ring.
    pub fn ring_atom_flags(&self) -> Vec<bool> {
        let mut flags = vec![false; self.atoms.len()];
        for (bond, in_ring) in self.bonds.iter().zip(self.ring_bond_flags()) {
            if in_ring {
                flags[bond.a] = true;
                flags[bond.b] = true;
            }
        }
        flags
    }

    /// Effective order of every bond: [`BondOrder::Implicit`] becomes
    /// [`BondOrder::Aromatic`] between two aromatic atoms on a ring, otherwise
    /// [`BondOrder::Single`]; explicit orders are returned unchanged.
    pub fn effective_orders(&self) -> Vec<BondOrder> {
        let ring = self.ring_bond_flags();
        self.bonds
            .iter()
            .zip(ring)
            .map(|(b, in_ring)| match b.order {
                BondOrder::Implicit
                    if in_ring && self.atoms[b.a].aromatic && self.atoms[b.b].aromatic =>
                {
                    BondOrder::Aromatic
                }
                BondOrder::Implicit => BondOrder::Single,
                other => other,
            })
            .collect()
    }

    /// Ring systems: connected components of ring bonds (fused or spiro rings
    /// form one system), ordered by their first atom.
    pub fn ring_systems(&self) -> Vec<RingSystem> {
        let ring = self.ring_bond_flags();
        let mut uf = UnionFind::new(self.atoms.len());
        for (bond, &in_ring) in self.bonds.iter().zip(&ring) {
            if in_ring {
                uf.union(bond.a, bond.b);
            }
        }
        let mut by_root: HashMap<usize, usize> = HashMap::new();
        let mut systems: Vec<RingSystem> = Vec::new();
        for (i, bond) in self.bonds.iter().enumerate() {
            if !ring[i] {
                continue;
            }
            let root = uf.find(bond.a);
            let idx = *by_root.entry(root).or_insert_with(|| {
                systems.push(RingSystem {
                    atoms: Vec::new(),
                    bonds: Vec::new(),
                    rings: 0,
                });
                systems.len() - 1
            });
            let sys = &mut systems[idx];
            sys.bonds.push(i);
            sys.atoms.push(bond.a);
            sys.atoms.push(bond.b);
        }
        for sys in &mut systems {
            sys.atoms.sort_unstable();
            sys.atoms.dedup();
            sys.rings = sys.bonds.len() + 1 - sys.atoms.len();
        }
        systems.sort_by_key(|s| s.atoms[0]);
        systems
    }

    /// Connected components (the dot-separated parts), each ascending, ordered
    /// by first atom.
    pub fn components(&self) -> Vec<Vec<usize>> {
        let mut uf = UnionFind::new(self.atoms.len());
        for bond in &self.bonds {
            uf.union(bond.a, bond.b);
        }
        let mut by_root: HashMap<usize, usize> = HashMap::new();
        let mut comps: Vec<Vec<usize>> = Vec::new();
        for i in 0..self.atoms.len() {
            let root = uf.find(i);
            let idx = *by_root.entry(root).or_insert_with(|| {
                comps.push(Vec::new());
                comps.len() - 1
            });
            comps[idx].push(i);
        }
        comps
    }
}

/// Minimal union-find used for components.
pub(crate) struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    pub(crate) fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    pub(crate) fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// All element symbols of the periodic table.
const ELEMENTS: &[&str] = &[
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl",
    "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In",
    "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb",
    "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl",
    "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk",
    "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh",
    "Fl", "Mc", "Lv", "Ts", "Og",
];

/// Aromatic symbols allowed inside brackets.
const AROMATIC_BRACKET: &[&str] = &["b", "c", "n", "o", "p", "s", "se", "as", "te"];

fn is_element(s: &str) -> bool {
    ELEMENTS.contains(&s)
}

/// Open ring-closure bookkeeping.
struct OpenRing {
    atom: usize,
    order: Option<BondOrder>,
    bond_span: Option<(usize, usize)>,
    digit_span: (usize, usize),
}

/// Open branch bookkeeping.
struct Branch {
    atom: usize,
    open: usize,
    first_bond: Option<usize>,
}

fn bond_order_of(c: char) -> Option<BondOrder> {
    match c {
        '-' | '/' | '\\' => Some(BondOrder::Single),
        '=' => Some(BondOrder::Double),
        '#' => Some(BondOrder::Triple),
        '$' => Some(BondOrder::Quadruple),
        ':' => Some(BondOrder::Aromatic),
        _ => None,
    }
}

/// The same SMILES with its ring-closure labels renumbered the way RDKit
/// writes them: each ring bond takes the lowest label free when it opens
/// (`C0CC0` and `C%00CC%00` become `C1CC1`). The labels carry no meaning, so
/// the molecule is the same; a tokenizer whose vocabulary lacks `0` or `%00`
/// then reads it. Bracket atoms are copied as they are; labels above 99 stay
/// as given.
pub fn renumber_ring_closures(smiles: &str) -> String {
    let chars: Vec<char> = smiles.chars().collect();
    let mut out = String::with_capacity(smiles.len());
    let mut open: HashMap<u32, u32> = HashMap::new();
    let mut used: std::collections::BTreeSet<u32> = std::collections::BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let label = match c {
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|&x| x == ']')
                    .map_or(chars.len(), |p| i + p + 1);
                out.extend(&chars[i..end]);
                i = end;
                continue;
            }
            '%' => match (chars.get(i + 1), chars.get(i + 2)) {
                (Some(a), Some(b)) if a.is_ascii_digit() && b.is_ascii_digit() => {
                    i += 3;
                    a.to_digit(10).unwrap_or(0) * 10 + b.to_digit(10).unwrap_or(0)
                }
                _ => {
                    out.push(c);
                    i += 1;
                    continue;
                }
            },
            d if d.is_ascii_digit() => {
                i += 1;
                d.to_digit(10).unwrap_or(0)
            }
            _ => {
                out.push(c);
                i += 1;
                continue;
            }
        };
        let new = match open.remove(&label) {
            Some(n) => {
                used.remove(&n);
                n
            }
            None => {
                let n = (1..).find(|n| !used.contains(n)).unwrap_or(label);
                used.insert(n);
                open.insert(label, n);
                n
            }
        };
        if new < 10 {
            out.push(char::from_digit(new, 10).unwrap_or('0'));
        } else {
            out.push_str(&format!("%{new:02}"));
        }
    }
    out
}

/// Parse and validate a SMILES string.
///
/// Errors carry the 0-based char position of the problem: unknown element or
/// unexpected character, unbalanced `(` / `)`, a branch with no preceding atom,
/// a ring bond never closed (position of its opening digit), a ring bond to
/// itself or duplicating an existing bond, conflicting ring-bond orders, a bond
/// symbol with no following atom, the empty string, malformed bracket atoms,
/// and `>` (reaction SMILES are not molecules).
pub fn parse(smiles: &str) -> Result<Molecule, SmilesError> {
    let chars: Vec<char> = smiles.chars().collect();
    if chars.is_empty() {
        return Err(SmilesError::new(0, "empty string"));
    }
    let mut p = Parser::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i = match c {
            '[' | '*' | 'B' | 'C' | 'N' | 'O' | 'P' | 'S' | 'F' | 'I' | 'b' | 'c' | 'n' | 'o'
            | 'p' | 's' => p.atom(&chars, i)?,
            '-' | '=' | '#' | '$' | ':' | '/' | '\\' => p.bond_symbol(c, i)?,
            '(' => p.open_branch(i)?,
            ')' => p.close_branch(i)?,
            '0'..='9' | '%' => p.ring_digit(&chars, i)?,
            '.' => p.dot(i)?,
            '>' => {
                return Err(SmilesError::new(
                    i,
                    "reaction SMILES ('>') are not molecules",
                ))
            }
            _ => return Err(unexpected(&chars, i)),
        };
    }
    p.finish()
}

/// The parser's state between two symbols of the string.
#[derive(Default)]
struct Parser {
    mol: Molecule,
    /// Atom pairs already bonded (a ring bond may not repeat one).
    pairs: HashSet<(usize, usize)>,
    /// The atom the next atom bonds to.
    prev: Option<usize>,
    /// A bond symbol waiting for its atom (order, position).
    pending: Option<(BondOrder, usize)>,
    /// A `(` waiting for the branch's first atom.
    pending_paren: Option<usize>,
    last_dot: Option<usize>,
    stack: Vec<Branch>,
    rings: HashMap<u32, OpenRing>,
}

impl Parser {
    fn no_pending_bond(&self) -> Result<(), SmilesError> {
        match self.pending {
            Some((_, pos)) => Err(SmilesError::new(pos, "bond symbol without following atom")),
            None => Ok(()),
        }
    }

    /// An atom (organic subset or bracket) at `i`; returns where it ends.
    fn atom(&mut self, chars: &[char], i: usize) -> Result<usize, SmilesError> {
        let (atom, end) = if chars[i] == '[' {
            parse_bracket(chars, i)?
        } else {
            parse_organic(chars, i)
        };
        let idx = self.mol.atoms.len();
        self.mol.atoms.push(atom);
        if let Some(p) = self.prev {
            let mut spans = Vec::new();
            let opens_branch = self.pending_paren.is_some();
            if let Some(open) = self.pending_paren.take() {
                spans.push((open, open + 1));
            }
            let order = match self.pending.take() {
                Some((o, pos)) => {
                    spans.push((pos, pos + 1));
                    o
                }
                None => BondOrder::Implicit,
            };
            self.pairs.insert((p.min(idx), p.max(idx)));
            let bond_idx = self.mol.bonds.len();
            if opens_branch {
                if let Some(top) = self.stack.last_mut() {
                    top.first_bond = Some(bond_idx);
                }
            }
            self.mol.bonds.push(Bond {
                a: p,
                b: idx,
                order,
                ring: false,
                spans,
            });
        }
        self.pending_paren = None;
        self.last_dot = None;
        self.prev = Some(idx);
        Ok(end)
    }

    fn bond_symbol(&mut self, c: char, i: usize) -> Result<usize, SmilesError> {
        self.no_pending_bond()?;
        if self.prev.is_none() {
            return Err(SmilesError::new(i, "bond symbol without preceding atom"));
        }
        self.pending = bond_order_of(c).map(|o| (o, i));
        Ok(i + 1)
    }

    fn open_branch(&mut self, i: usize) -> Result<usize, SmilesError> {
        self.no_pending_bond()?;
        let Some(p) = self.prev else {
            let msg = if self.mol.atoms.is_empty() {
                "branch at start"
            } else {
                "branch without preceding atom"
            };
            return Err(SmilesError::new(i, msg));
        };
        if self.pending_paren.is_some() {
            return Err(SmilesError::new(i, "branch must start with an atom"));
        }
        self.stack.push(Branch {
            atom: p,
            open: i,
            first_bond: None,
        });
        self.pending_paren = Some(i);
        Ok(i + 1)
    }

    fn close_branch(&mut self, i: usize) -> Result<usize, SmilesError> {
        self.no_pending_bond()?;
        if self.stack.is_empty() {
            return Err(SmilesError::new(i, "unbalanced ')'"));
        }
        if self.pending_paren.is_some() {
            return Err(SmilesError::new(i, "empty branch"));
        }
        if let (None, Some(dot)) = (self.prev, self.last_dot) {
            return Err(SmilesError::new(dot, "'.' without following atom"));
        }
        let branch = self.stack.pop().expect("checked non-empty");
        if let Some(b) = branch.first_bond {
            self.mol.bonds[b].spans.push((i, i + 1));
        }
        self.prev = Some(branch.atom);
        Ok(i + 1)
    }

    /// A ring-closure digit (or `%nn`) at `i`: opens or closes a ring bond.
    fn ring_digit(&mut self, chars: &[char], i: usize) -> Result<usize, SmilesError> {
        let (number, span) = if chars[i] == '%' {
            match (chars.get(i + 1), chars.get(i + 2)) {
                (Some(d1), Some(d2)) if d1.is_ascii_digit() && d2.is_ascii_digit() => {
                    let n = d1.to_digit(10).unwrap_or(0) * 10 + d2.to_digit(10).unwrap_or(0);
                    (n, (i, i + 3))
                }
                _ => return Err(SmilesError::new(i, "'%' must be followed by two digits")),
            }
        } else {
            (chars[i].to_digit(10).unwrap_or(0), (i, i + 1))
        };
        let Some(p) = self.prev else {
            return Err(SmilesError::new(
                i,
                "ring-closure digit without preceding atom",
            ));
        };
        if self.pending_paren.is_some() {
            return Err(SmilesError::new(i, "branch must start with an atom"));
        }
        let here = self.pending.take();
        match self.rings.remove(&number) {
            Some(open) => self.close_ring(number, open, p, here, span, i)?,
            None => {
                self.rings.insert(
                    number,
                    OpenRing {
                        atom: p,
                        order: here.map(|(o, _)| o),
                        bond_span: here.map(|(_, pos)| (pos, pos + 1)),
                        digit_span: span,
                    },
                );
            }
        }
        Ok(span.1)
    }

    fn close_ring(
        &mut self,
        number: u32,
        open: OpenRing,
        p: usize,
        here: Option<(BondOrder, usize)>,
        span: (usize, usize),
        i: usize,
    ) -> Result<(), SmilesError> {
        if open.atom == p {
            return Err(SmilesError::new(i, format!("ring bond {number} to itself")));
        }
        let order = match (open.order, here) {
            (Some(o1), Some((o2, pos))) => {
                if o1 != o2 {
                    return Err(SmilesError::new(
                        pos,
                        format!("conflicting bond orders for ring bond {number}"),
                    ));
                }
                o1
            }
            (Some(o), None) | (None, Some((o, _))) => o,
            (None, None) => BondOrder::Implicit,
        };
        let key = (open.atom.min(p), open.atom.max(p));
        if !self.pairs.insert(key) {
            return Err(SmilesError::new(
                i,
                format!("ring bond {number} duplicates an existing bond"),
            ));
        }
        let mut spans = Vec::new();
        spans.extend(open.bond_span);
        spans.push(open.digit_span);
        if let Some((_, pos)) = here {
            spans.push((pos, pos + 1));
        }
        spans.push(span);
        self.mol.bonds.push(Bond {
            a: open.atom,
            b: p,
            order,
            ring: true,
            spans,
        });
        Ok(())
    }

    fn dot(&mut self, i: usize) -> Result<usize, SmilesError> {
        self.no_pending_bond()?;
        if self.prev.is_none() {
            return Err(SmilesError::new(i, "'.' without preceding atom"));
        }
        self.prev = None;
        self.pending_paren = None;
        self.last_dot = Some(i);
        Ok(i + 1)
    }

    /// Checks what must be closed at the end of the string.
    fn finish(self) -> Result<Molecule, SmilesError> {
        self.no_pending_bond()?;
        if let (None, Some(dot)) = (self.prev, self.last_dot) {
            return Err(SmilesError::new(dot, "'.' without following atom"));
        }
        if let Some(branch) = self.stack.first() {
            return Err(SmilesError::new(branch.open, "unclosed branch '('"));
        }
        if let Some((number, open)) = self.rings.iter().min_by_key(|(_, r)| r.digit_span.0) {
            return Err(SmilesError::new(
                open.digit_span.0,
                format!("unclosed ring bond {number}"),
            ));
        }
        Ok(self.mol)
    }
}

/// Error for a character that cannot start any SMILES element.
fn unexpected(chars: &[char], i: usize) -> SmilesError {
    let c = chars[i];
    if c.is_ascii_lowercase() && i > 0 && chars[i - 1].is_ascii_uppercase() {
        let two: String = [chars[i - 1], c].iter().collect();
        if is_element(&two) {
            return SmilesError::new(
                i - 1,
                format!("element '{two}' must be written in brackets"),
            );
        }
    }
    if c.is_ascii_uppercase() {
        // Try a two-letter element for a better message.
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let one = c.to_string();
        if is_element(&two) && two.len() == 2 {
            return SmilesError::new(i, format!("element '{two}' must be written in brackets"));
        }
        if is_element(&one) {
            return SmilesError::new(i, format!("element '{one}' must be written in brackets"));
        }
        return SmilesError::new(i, format!("unknown element '{one}'"));
    }
    if c == ']' {
        return SmilesError::new(i, "unbalanced ']'");
    }
    SmilesError::new(i, format!("unexpected character '{c}'"))
}

/// Parse an organic-subset atom or `*` starting at `i` (caller checked the first char).
fn parse_organic(chars: &[char], i: usize) -> (Atom, usize) {
    let c = chars[i];
    let next = chars.get(i + 1).copied();
    let (element, len) = match (c, next) {
        ('B', Some('r')) => ("Br".to_string(), 2),
        ('C', Some('l')) => ("Cl".to_string(), 2),
        _ => (c.to_string(), 1),
    };
    let aromatic = c.is_ascii_lowercase();
    (
        Atom {
            element,
            aromatic,
            charge: 0,
            hcount: None,
            span: (i, i + len),
            isotope: None,
            class: None,
            chirality: None,
            bracket: false,
        },
        i + len,
    )
}

/// Parse a bracket atom starting at the `[` at `start`. Returns the atom and the
/// index just past `]`.
fn parse_bracket(chars: &[char], start: usize) -> Result<(Atom, usize), SmilesError> {
    let Some(close) = chars[start + 1..].iter().position(|&c| c == ']') else {
        return Err(SmilesError::new(start, "unclosed bracket atom '['"));
    };
    let end = start + 1 + close; // index of ']'
    let mut i = start + 1;
    let bad =
        |pos: usize, what: &str| SmilesError::new(pos, format!("malformed bracket atom: {what}"));
    if i == end {
        return Err(bad(start, "empty brackets"));
    }
    // isotope
    let iso_start = i;
    while i < end && chars[i].is_ascii_digit() {
        i += 1;
    }
    let isotope = if i > iso_start {
        let text: String = chars[iso_start..i].iter().collect();
        match text.parse::<u16>() {
            Ok(v) if i - iso_start <= 3 => Some(v),
            _ => return Err(bad(iso_start, "isotope out of range")),
        }
    } else {
        None
    };
    // symbol
    if i >= end {
        return Err(bad(i, "missing element symbol"));
    }
    let c = chars[i];
    let (element, aromatic) = if c == '*' {
        i += 1;
        ("*".to_string(), false)
    } else if c.is_ascii_uppercase() {
        let two: String = chars[i..(i + 2).min(end)].iter().collect();
        if two.chars().count() == 2 && is_element(&two) {
            i += 2;
            (two, false)
        } else if is_element(&c.to_string()) {
            i += 1;
            (c.to_string(), false)
        } else {
            return Err(SmilesError::new(i, format!("unknown element '{c}'")));
        }
    } else if c.is_ascii_lowercase() {
        let two: String = chars[i..(i + 2).min(end)].iter().collect();
        if two.chars().count() == 2 && AROMATIC_BRACKET.contains(&two.as_str()) {
            i += 2;
            (two, true)
        } else if AROMATIC_BRACKET.contains(&c.to_string().as_str()) {
            i += 1;
            (c.to_string(), true)
        } else {
            return Err(SmilesError::new(
                i,
                format!("unknown aromatic element '{c}'"),
            ));
        }
    } else {
        return Err(bad(i, &format!("expected element symbol, found '{c}'")));
    };
    // chirality
    let mut chirality = None;
    if i < end && chars[i] == '@' {
        let cs = i;
        i += 1;
        if i < end && chars[i] == '@' {
            i += 1;
        } else if i + 1 < end {
            let tag: String = chars[i..i + 2].iter().collect();
            if ["TH", "AL", "SP", "TB", "OH"].contains(&tag.as_str()) {
                i += 2;
                let ds = i;
                while i < end && chars[i].is_ascii_digit() {
                    i += 1;
                }
                if i == ds {
                    return Err(bad(i, "chirality class needs a number"));
                }
            }
        }
        chirality = Some(chars[cs..i].iter().collect());
    }
    // hydrogen count
    let mut hcount = 0u8;
    if i < end && chars[i] == 'H' {
        i += 1;
        hcount = 1;
        if i < end && chars[i].is_ascii_digit() {
            hcount = chars[i].to_digit(10).unwrap_or(0) as u8;
            i += 1;
        }
    }
    // charge
    let mut charge: i32 = 0;
    if i < end && (chars[i] == '+' || chars[i] == '-') {
        let sign = chars[i];
        let s = if sign == '+' { 1 } else { -1 };
        i += 1;
        if i < end && chars[i].is_ascii_digit() {
            let ds = i;
            while i < end && chars[i].is_ascii_digit() {
                i += 1;
            }
            let text: String = chars[ds..i].iter().collect();
            let v: i32 = text.parse().unwrap_or(i32::MAX);
            if v > 15 {
                return Err(bad(ds, "charge out of range"));
            }
            charge = s * v;
        } else {
            charge = s;
            while i < end && chars[i] == sign {
                charge += s;
                i += 1;
            }
            if charge.abs() > 15 {
                return Err(bad(i - 1, "charge out of range"));
            }
        }
    }
    // class
    let mut class = None;
    if i < end && chars[i] == ':' {
        i += 1;
        let ds = i;
        while i < end && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i == ds {
            return Err(bad(i, "atom class needs a number"));
        }
        let text: String = chars[ds..i].iter().collect();
        class = Some(
            text.parse::<u32>()
                .map_err(|_| bad(ds, "atom class out of range"))?,
        );
    }
    if i != end {
        return Err(bad(i, &format!("unexpected '{}'", chars[i])));
    }
    Ok((
        Atom {
            element,
            aromatic,
            charge: charge as i8,
            hcount: Some(hcount),
            span: (start, end + 1),
            isotope,
            class,
            chirality,
            bracket: true,
        },
        end + 1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_closure_labels_renumber_as_rdkit_writes_them() {
        for (given, want) in [
            ("C0CC0", "C1CC1"),
            ("C%00CC%00", "C1CC1"),
            ("C1CC2CC2C1", "C1CC2CC2C1"),
            ("C9CC9C1CC1", "C1CC1C1CC1"),
            ("[13CH3]C0CC=0", "[13CH3]C1CC=1"),
            ("C%12CC%12", "C1CC1"),
            ("CCO", "CCO"),
        ] {
            assert_eq!(renumber_ring_closures(given), want, "{given}");
            let a = parse(given).unwrap();
            let b = parse(want).unwrap();
            assert_eq!(
                (a.atoms.len(), a.bonds.len()),
                (b.atoms.len(), b.bonds.len())
            );
        }
        // Ring bonds 0 and %00 are valid SMILES.
        assert!(parse("C0CCCCC0").is_ok());
        assert!(parse("C%00CCCCC%00").is_ok());
    }

    fn err(s: &str) -> SmilesError {
        match parse(s) {
            Ok(m) => panic!("{s} parsed unexpectedly: {m:?}"),
            Err(e) => e,
        }
    }

    fn err_pos(s: &str) -> usize {
        err(s).position
    }

    #[test]
    fn ethanol() {
        let m = parse("CCO").unwrap();
        assert_eq!(m.atoms.len(), 3);
        assert_eq!(m.bonds.len(), 2);
        assert_eq!(m.hydrogen_counts(), vec![3, 2, 1]);
        assert_eq!(m.atoms[2].span, (2, 3));
        assert!(m.ring_systems().is_empty());
    }

    #[test]
    fn benzene() {
        let m = parse("c1ccccc1").unwrap();
        assert_eq!(m.atoms.len(), 6);
        assert_eq!(m.bonds.len(), 6);
        assert!(m.atoms.iter().all(|a| a.aromatic));
        assert_eq!(m.hydrogen_counts(), vec![1; 6]);
        assert!(m.ring_bond_flags().iter().all(|&r| r));
        let rs = m.ring_systems();
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].rings, 1);
        assert!(m
            .effective_orders()
            .iter()
            .all(|&o| o == BondOrder::Aromatic));
        let closure = m.bonds.iter().find(|b| b.ring).unwrap();
        assert_eq!((closure.a, closure.b), (0, 5));
        assert_eq!(closure.spans, vec![(1, 2), (7, 8)]);
    }

    #[test]
    fn aspirin() {
        let s = "CC(=O)Oc1ccccc1C(=O)O";
        let m = parse(s).unwrap();
        assert_eq!(m.atoms.len(), 13);
        assert_eq!(m.bonds.len(), 13);
        let rs = m.ring_systems();
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].atoms.len(), 6);
        // C(=O): the branch bond carries '(' '=' ')'.
        let co = &m.bonds[1];
        assert_eq!((co.a, co.b, co.order), (1, 2, BondOrder::Double));
        assert_eq!(co.spans, vec![(2, 3), (3, 4), (5, 6)]);
        let h = m.hydrogen_counts();
        assert_eq!(h[0], 3);
        assert_eq!(h[1], 0);
        assert_eq!(h[12], 1); // acid OH
        assert_eq!(h[4], 0); // ring carbon bearing the ester O
    }

    #[test]
    fn caffeine() {
        let m = parse("Cn1cnc2c1c(=O)n(C)c(=O)n2C").unwrap();
        assert_eq!(m.atoms.len(), 14);
        let rs = m.ring_systems();
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].rings, 2);
        assert_eq!(rs[0].atoms.len(), 9);
        let h = m.hydrogen_counts();
        // aromatic n with three connections carries no H
        assert_eq!(h[1], 0);
        assert_eq!(h[2], 1); // the only aromatic C-H
        assert_eq!(h[3], 0);
        assert_eq!(h.iter().map(|&x| x as u32).sum::<u32>(), 10); // C8H10N4O2
    }

    #[test]
    fn salt() {
        let m = parse("[Na+].[Cl-]").unwrap();
        assert_eq!(m.atoms.len(), 2);
        assert!(m.bonds.is_empty());
        assert_eq!(m.atoms[0].element, "Na");
        assert_eq!(m.atoms[0].charge, 1);
        assert_eq!(m.atoms[0].span, (0, 5));
        assert_eq!(m.atoms[1].element, "Cl");
        assert_eq!(m.atoms[1].charge, -1);
        assert_eq!(m.atoms[1].span, (6, 11));
        assert_eq!(m.components(), vec![vec![0], vec![1]]);
    }

    #[test]
    fn alanine() {
        let m = parse("C[C@H](N)C(=O)O").unwrap();
        assert_eq!(m.atoms.len(), 6);
        let ca = &m.atoms[1];
        assert_eq!(ca.chirality.as_deref(), Some("@"));
        assert_eq!(ca.hcount, Some(1));
        assert_eq!(ca.span, (1, 6));
        assert_eq!(m.hydrogen_counts(), vec![3, 1, 2, 0, 0, 1]);
    }

    #[test]
    fn naphthalene() {
        let m = parse("c1ccc2ccccc2c1").unwrap();
        let rs = m.ring_systems();
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].rings, 2);
        assert_eq!(rs[0].atoms.len(), 10);
        let h = m.hydrogen_counts();
        assert_eq!(h.iter().map(|&x| x as u32).sum::<u32>(), 8);
    }

    #[test]
    fn cholesterol() {
        let s = "CC(C)CCCC(C)C1CCC2C1(CCC3C2CC=C4C3(CCC(C4)O)C)C";
        let m = parse(s).unwrap();
        assert_eq!(m.atoms.len(), 28);
        let rs = m.ring_systems();
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].rings, 4);
        assert_eq!(rs[0].atoms.len(), 17);
        let h: u32 = m.hydrogen_counts().iter().map(|&x| x as u32).sum();
        assert_eq!(h, 46); // C27H46O
    }

    #[test]
    fn percent_ring() {
        let m = parse("C%10CCCCC%10").unwrap();
        assert_eq!(m.atoms.len(), 6);
        let closure = m.bonds.iter().find(|b| b.ring).unwrap();
        assert_eq!(closure.spans, vec![(1, 4), (9, 12)]);
        assert_eq!(m.ring_systems()[0].rings, 1);
    }

    #[test]
    fn ring_bond_with_order() {
        let m = parse("C=1CCCCC1").unwrap();
        let closure = m.bonds.iter().find(|b| b.ring).unwrap();
        assert_eq!(closure.order, BondOrder::Double);
        assert_eq!(closure.spans, vec![(1, 2), (2, 3), (8, 9)]);
        assert!(parse("C=1CCCCC=1").is_ok());
        assert!(parse("C-1CCCCC1").is_ok());
    }

    #[test]
    fn brackets() {
        let m = parse("[13CH3:7][NH3+]").unwrap();
        assert_eq!(m.atoms[0].isotope, Some(13));
        assert_eq!(m.atoms[0].hcount, Some(3));
        assert_eq!(m.atoms[0].class, Some(7));
        assert_eq!(m.atoms[1].charge, 1);
        assert_eq!(parse("[Fe+2]").unwrap().atoms[0].charge, 2);
        assert_eq!(parse("[O--]").unwrap().atoms[0].charge, -2);
        assert_eq!(parse("[Cu++]").unwrap().atoms[0].charge, 2);
        let se = parse("c1cc[se]c1").unwrap();
        assert_eq!(se.atoms[3].element, "se");
        assert!(se.atoms[3].aromatic);
        assert!(parse("[as]1cccc1").is_ok());
        assert_eq!(
            parse("[C@@H](F)(Cl)Br").unwrap().atoms[0]
                .chirality
                .as_deref(),
            Some("@@")
        );
        assert!(parse("[C@TH1](F)(Cl)(Br)I").is_ok());
        assert_eq!(parse("[2H]").unwrap().atoms[0].element, "H");
        assert_eq!(parse("[Sc]").unwrap().atoms[0].element, "Sc");
        assert!(parse("*C(=O)O").is_ok());
        assert!(parse("[*]CC").is_ok());
        assert_eq!(parse("CSc1ccccc1").unwrap().atoms.len(), 8);
    }

    #[test]
    fn bonds_and_dots() {
        let m = parse("C#N").unwrap();
        assert_eq!(m.bonds[0].order, BondOrder::Triple);
        assert_eq!(m.hydrogen_counts(), vec![1, 0]);
        let m = parse("F/C=C/F").unwrap();
        assert_eq!(m.bonds[0].order, BondOrder::Single);
        let m = parse("c1ccccc1-c1ccccc1").unwrap();
        assert_eq!(m.ring_systems().len(), 2);
        let m = parse("c1ccccc1c1ccccc1").unwrap();
        let eff = m.effective_orders();
        assert_eq!(eff[6], BondOrder::Single);
        assert_eq!(parse("CCO.O").unwrap().components().len(), 2);
        assert!(parse("C(C)(C)C").is_ok());
        assert!(parse("C1CC2CCC1C2").is_ok()); // bridged bicycle
        assert_eq!(parse("C1CC2CCC1C2").unwrap().ring_systems()[0].rings, 2);
        assert_eq!(parse("C12(CCCC1)CCCC2").unwrap().ring_systems()[0].rings, 2); // spiro
        assert_eq!(parse("[C]").unwrap().implicit_hydrogens(0), 0);
        assert_eq!(
            parse("CS(=O)(=O)O").unwrap().hydrogen_counts(),
            vec![3, 0, 0, 0, 1]
        );
        assert_eq!(parse("c1cc[nH]c1").unwrap().hydrogen_counts()[3], 1);
        assert_eq!(parse("c1ccncc1").unwrap().hydrogen_counts()[3], 0);
        assert_eq!(parse("c1ccsc1").unwrap().hydrogen_counts()[3], 0);
    }

    #[test]
    fn display() {
        let e = err("C1CCCC");
        assert_eq!(
            e.to_string(),
            "invalid SMILES at position 1: unclosed ring bond 1"
        );
        let _: &dyn std::error::Error = &e;
    }

    #[test]
    fn error_positions() {
        assert_eq!(err_pos(""), 0);
        assert_eq!(err_pos("CCX"), 2); // unknown element
        assert!(err("CCX").message.contains("unknown element"));
        assert_eq!(err_pos("CC?C"), 2); // bad character
        assert_eq!(err_pos("CNa"), 1);
        assert!(err("CNa").message.contains("brackets"));
        assert_eq!(err_pos("C(C"), 1); // unclosed '('
        assert_eq!(err_pos("CC)C"), 2); // unbalanced ')'
        assert_eq!(err_pos("(C)C"), 0); // branch at start
        assert!(err("(C)C").message.contains("branch at start"));
        assert_eq!(err_pos("C.(C)"), 2);
        assert_eq!(err_pos("C1CCC"), 1); // ring never closed
        assert_eq!(err_pos("CC1CC2CC2"), 2);
        assert_eq!(err_pos("C%12CC"), 1);
        assert_eq!(err_pos("C11"), 2); // ring bond to itself
        assert!(err("C11").message.contains("itself"));
        assert_eq!(err_pos("C=1CCCCC#1"), 8); // conflicting orders
        assert!(err("C=1CCCCC#1").message.contains("conflicting"));
        assert_eq!(err_pos("C12CCCCC12"), 9); // duplicate bond
        assert_eq!(err_pos("CC="), 2); // bond w/o following atom
        assert_eq!(err_pos("CC=(C)"), 2);
        assert_eq!(err_pos("C(C=)C"), 3);
        assert_eq!(err_pos("C=.C"), 1);
        assert_eq!(err_pos("C1CC=1="), 6);
        assert_eq!(err_pos("=CC"), 0); // bond without preceding atom
        assert_eq!(err_pos("C=#C"), 1);
        assert_eq!(err_pos("C()C"), 2); // empty branch
        assert_eq!(err_pos("CC."), 2);
        assert_eq!(err_pos(".C"), 0);
        assert_eq!(err_pos("C..C"), 2);
        assert_eq!(err_pos("CC(=O)O>CC"), 7); // reaction
        assert!(err("CC>>CC").message.contains("reaction"));
        assert_eq!(err_pos("C[Na"), 1); // unclosed bracket
        assert_eq!(err_pos("C[]"), 1); // empty bracket
        assert_eq!(err_pos("C[Xy]"), 2); // unknown element
        assert_eq!(err_pos("C[NH4+x]"), 6); // junk in bracket
        assert_eq!(err_pos("C[C:]"), 4); // class without number
        assert_eq!(err_pos("C[q]"), 2); // unknown aromatic
        assert_eq!(err_pos("C[+]"), 2); // missing symbol
        assert_eq!(err_pos("C%1C"), 1); // bad %nn
        assert_eq!(err_pos("CC]"), 2);
        assert_eq!(err_pos("1CC"), 0);
        assert_eq!(err_pos("C(1CC)"), 2);
        assert_eq!(err_pos("CC\u{e9}C"), 2); // non-ASCII: char index, not byte
    }
}
