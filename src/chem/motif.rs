//! rxnfp SMILES tokenization and grouping of tokens into chemical motifs.
//!
//! [`tokenize`] is a hand-written scanner equivalent to `re.findall` with the
//! rxnfp regex
//! `(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|\%[0-9]{2}|[0-9])`:
//! characters that match no alternative are skipped, exactly like `findall`.
//!
//! [`motifs`] parses the SMILES, then groups atoms into motifs in this order of
//! precedence: single-atom charged components (ions), ring systems (every ring
//! atom stays in its ring motif), functional groups found on the remaining
//! atoms, and finally chains (connected leftovers). Each motif also owns the
//! bond symbols, ring-closure digits and branch parentheses of the bonds whose
//! two ends both belong to it.

use std::collections::HashMap;

use super::smiles::{parse, BondOrder, Molecule, SmilesError};

/// Char spans `[start, end)` of the rxnfp tokens of `smiles`, in order.
///
/// Behaves exactly like `re.findall` with the rxnfp regex: characters matching
/// no alternative (e.g. `H` outside brackets, a `%` not followed by two digits,
/// whitespace, non-ASCII) are skipped.
pub fn tokenize(smiles: &str) -> Vec<(usize, usize)> {
    let chars: Vec<char> = smiles.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied();
        let len = match chars[i] {
            '[' => match chars[i + 1..].iter().position(|&c| c == ']') {
                Some(k) if k > 0 => k + 2,
                _ => 0,
            },
            'B' if next == Some('r') => 2,
            'C' if next == Some('l') => 2,
            'B'
            | 'C'
            | 'N'
            | 'O'
            | 'S'
            | 'P'
            | 'F'
            | 'I'
            | 'b'
            | 'c'
            | 'n'
            | 'o'
            | 's'
            | 'p'
            | '('
            | ')'
            | '.'
            | '='
            | '#'
            | '-'
            | '+'
            | '\\'
            | '/'
            | ':'
            | '~'
            | '@'
            | '?'
            | '>'
            | '*'
            | '$'
            | '0'..='9' => 1,
            '%' => match (next, chars.get(i + 2)) {
                (Some(a), Some(b)) if a.is_ascii_digit() && b.is_ascii_digit() => 3,
                _ => 0,
            },
            _ => 0,
        };
        if len == 0 {
            i += 1;
        } else {
            out.push((i, i + len));
            i += len;
        }
    }
    out
}

/// Coarse category of a motif.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MotifKind {
    /// A single ring (ring system with one independent cycle).
    Ring,
    /// Fused, spiro or bridged rings (two or more independent cycles).
    RingSystem,
    /// A functional group (carboxylic acid, hydroxyl, amine, halide, ...).
    FunctionalGroup,
    /// Connected leftover atoms (mostly carbon chains).
    Chain,
    /// A charged single-atom component such as `[Na+]`.
    Ion,
}

/// A group of SMILES tokens forming one chemical motif.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Motif {
    /// Category.
    pub kind: MotifKind,
    /// Human-readable label: `"benzene ring"`, `"carboxylic acid"`,
    /// `"phenol hydroxyl"`, `"ring system (2 rings)"`, `"alkyl chain"`, `"Na+ ion"`...
    pub label: String,
    /// Ascending indices into [`tokenize`]`(smiles)` (0-based, no `[CLS]`):
    /// the member atoms plus the bond, ring-digit and parenthesis tokens of
    /// bonds between member atoms.
    pub tokens: Vec<usize>,
    /// Ascending indices into [`Molecule::atoms`] of the member atoms.
    pub atoms: Vec<usize>,
}

/// Parse `smiles` and group its tokens into motifs, ordered by first atom.
///
/// Every atom token belongs to exactly one motif; every token belongs to at
/// most one motif (punctuation between motifs belongs to none).
pub fn motifs(smiles: &str) -> Result<Vec<Motif>, SmilesError> {
    let mol = parse(smiles)?;
    let tokens = tokenize(smiles);
    Ok(motifs_from_molecule(&mol, &tokens))
}

/// Group an already-parsed molecule into motifs; `tokens` must be
/// [`tokenize`] of the same SMILES the molecule was parsed from.
pub fn motifs_from_molecule(mol: &Molecule, tokens: &[(usize, usize)]) -> Vec<Motif> {
    let mut ctx = Ctx::new(mol);
    ctx.ions();
    ctx.rings();
    ctx.nitro();
    ctx.sulfur_phosphorus_oxo();
    ctx.carbonyls();
    ctx.nitriles();
    ctx.oxo();
    ctx.hydroxyls();
    ctx.ethers();
    ctx.nitrogens();
    ctx.polyhalo();
    ctx.halides();
    ctx.sulfurs();
    ctx.leftovers();
    ctx.attach_hydrogens();

    let token_at: HashMap<usize, usize> = tokens
        .iter()
        .enumerate()
        .map(|(idx, &(start, _))| (start, idx))
        .collect();
    let mut out: Vec<Motif> = ctx
        .groups
        .iter()
        .map(|(kind, label, atoms)| {
            let mut atoms = atoms.clone();
            atoms.sort_unstable();
            Motif {
                kind: *kind,
                label: label.clone(),
                tokens: Vec::new(),
                atoms,
            }
        })
        .collect();
    for (idx, motif) in out.iter_mut().enumerate() {
        for &a in &motif.atoms {
            if let Some(&t) = token_at.get(&mol.atoms[a].span.0) {
                motif.tokens.push(t);
            }
        }
        for bond in &mol.bonds {
            if ctx.owner[bond.a] == Some(idx) && ctx.owner[bond.b] == Some(idx) {
                for span in &bond.spans {
                    if let Some(&t) = token_at.get(&span.0) {
                        motif.tokens.push(t);
                    }
                }
            }
        }
        motif.tokens.sort_unstable();
        motif.tokens.dedup();
    }
    out.sort_by_key(|m| m.atoms.first().copied().unwrap_or(usize::MAX));
    out
}

/// Working state of the grouping.
struct Ctx<'a> {
    mol: &'a Molecule,
    adj: Vec<Vec<(usize, usize)>>,
    order: Vec<BondOrder>,
    in_ring: Vec<bool>,
    h: Vec<u8>,
    attached_h: Vec<Option<usize>>,
    owner: Vec<Option<usize>>,
    groups: Vec<(MotifKind, String, Vec<usize>)>,
}

fn is_halogen(sym: &str) -> bool {
    matches!(sym, "f" | "cl" | "br" | "i")
}

impl<'a> Ctx<'a> {
    fn new(mol: &'a Molecule) -> Self {
        let full = mol.adjacency();
        // Explicit hydrogen atoms ([H], [2H]) bonded to one non-hydrogen atom
        // are folded into their parent: removed from the working graph and
        // counted as hydrogens of the parent.
        let attached_h: Vec<Option<usize>> = (0..mol.atoms.len())
            .map(|i| match full[i][..] {
                [(p, _)] if mol.atoms[i].element == "H" && mol.atoms[p].element != "H" => Some(p),
                _ => None,
            })
            .collect();
        let mut h = mol.hydrogen_counts();
        for &p in attached_h.iter().flatten() {
            h[p] = h[p].saturating_add(1);
        }
        let adj = full
            .into_iter()
            .map(|v| {
                v.into_iter()
                    .filter(|&(j, _)| attached_h[j].is_none())
                    .collect()
            })
            .collect();
        Self {
            mol,
            adj,
            order: mol.effective_orders(),
            in_ring: mol.ring_atom_flags(),
            h,
            attached_h,
            owner: vec![None; mol.atoms.len()],
            groups: Vec::new(),
        }
    }

    /// Give explicit hydrogen atoms the motif of their parent atom.
    fn attach_hydrogens(&mut self) {
        for i in 0..self.mol.atoms.len() {
            if let Some(p) = self.attached_h[i] {
                if let Some(g) = self.owner[p] {
                    self.owner[i] = Some(g);
                    self.groups[g].2.push(i);
                }
            }
        }
    }

    fn el(&self, i: usize) -> String {
        self.mol.atoms[i].symbol_lower()
    }

    fn is_c(&self, i: usize) -> bool {
        self.mol.atoms[i].is_carbon()
    }

    fn deg(&self, i: usize) -> usize {
        self.adj[i].len()
    }

    /// Unclaimed and not in a ring.
    fn free(&self, i: usize) -> bool {
        self.owner[i].is_none() && !self.in_ring[i]
    }

    /// Neighbours with effective bond orders.
    fn nbrs(&self, i: usize) -> Vec<(usize, BondOrder)> {
        self.adj[i]
            .iter()
            .map(|&(j, e)| (j, self.order[e]))
            .collect()
    }

    /// Free, terminal oxygens doubly bonded to `i`.
    fn oxo_of(&self, i: usize) -> Vec<usize> {
        self.nbrs(i)
            .into_iter()
            .filter(|&(j, o)| {
                o == BondOrder::Double && self.el(j) == "o" && self.deg(j) == 1 && self.free(j)
            })
            .map(|(j, _)| j)
            .collect()
    }

    /// Record a motif; only atoms not yet claimed are taken.
    fn claim(&mut self, kind: MotifKind, label: impl Into<String>, atoms: &[usize]) {
        let idx = self.groups.len();
        let mut taken = Vec::new();
        for &a in atoms {
            if self.owner[a].is_none() {
                self.owner[a] = Some(idx);
                taken.push(a);
            }
        }
        if !taken.is_empty() {
            self.groups.push((kind, label.into(), taken));
        }
    }

    fn fg(&mut self, label: impl Into<String>, atoms: &[usize]) {
        self.claim(MotifKind::FunctionalGroup, label, atoms);
    }

    fn ions(&mut self) {
        for comp in self.mol.components() {
            if let [a] = comp[..] {
                let atom = &self.mol.atoms[a];
                if atom.charge != 0 {
                    let mut sym = atom.element.clone();
                    match self.h[a] {
                        0 => {}
                        1 => sym.push('H'),
                        n => sym.push_str(&format!("H{n}")),
                    }
                    let sign = if atom.charge > 0 { '+' } else { '-' };
                    let mag = atom.charge.unsigned_abs();
                    let charge = if mag == 1 {
                        sign.to_string()
                    } else {
                        format!("{mag}{sign}")
                    };
                    self.claim(MotifKind::Ion, format!("{sym}{charge} ion"), &[a]);
                }
            }
        }
    }

    fn rings(&mut self) {
        for sys in self.mol.ring_systems() {
            if sys.rings == 1 {
                let label = self.ring_label(&sys.atoms);
                self.claim(MotifKind::Ring, label, &sys.atoms);
            } else {
                let label = format!("ring system ({} rings)", sys.rings);
                self.claim(MotifKind::RingSystem, label, &sys.atoms);
            }
        }
    }

    /// Atoms of a single ring in cyclic order.
    fn cycle_order(&self, atoms: &[usize]) -> Vec<usize> {
        let mut order = vec![atoms[0]];
        let mut prev = usize::MAX;
        let mut cur = atoms[0];
        while order.len() < atoms.len() {
            let next = self.adj[cur]
                .iter()
                .map(|&(j, _)| j)
                .find(|&j| j != prev && atoms.binary_search(&j).is_ok() && !order.contains(&j));
            match next {
                Some(j) => {
                    order.push(j);
                    prev = cur;
                    cur = j;
                }
                None => break,
            }
        }
        order
    }

    fn bond_between(&self, a: usize, b: usize) -> Option<BondOrder> {
        self.adj[a]
            .iter()
            .find(|&&(j, _)| j == b)
            .map(|&(_, e)| self.order[e])
    }

    fn ring_label(&self, atoms: &[usize]) -> String {
        let cycle = self.cycle_order(atoms);
        let k = cycle.len();
        let syms: Vec<String> = cycle.iter().map(|&a| self.el(a)).collect();
        let hetero: Vec<usize> = (0..k).filter(|&p| syms[p] != "c").collect();
        let mut names: Vec<&str> = hetero.iter().map(|&p| syms[p].as_str()).collect();
        names.sort_unstable();
        let ring_double: Vec<bool> = (0..k)
            .map(|p| self.bond_between(cycle[p], cycle[(p + 1) % k]) == Some(BondOrder::Double))
            .collect();
        let doubles = ring_double.iter().filter(|&&d| d).count();
        let all_aromatic = cycle.iter().all(|&a| self.mol.atoms[a].aromatic);
        let lone_pair_hetero = hetero.iter().any(|&p| {
            matches!(syms[p].as_str(), "n" | "o" | "s")
                && !ring_double[p]
                && !ring_double[(p + k - 1) % k]
        });
        let aromatic = all_aromatic
            || (k == 6 && doubles == 3)
            || (k == 5 && doubles == 2 && lone_pair_hetero);
        // Ring distance between the first two heteroatoms.
        let dist = if hetero.len() >= 2 {
            let d = hetero[1] - hetero[0];
            d.min(k - d)
        } else {
            0
        };
        let name = if aromatic {
            match (k, names.as_slice()) {
                (6, []) => "benzene ring".to_string(),
                (6, ["n"]) => "pyridine ring".to_string(),
                (6, ["n", "n"]) => match dist {
                    1 => "pyridazine ring",
                    2 => "pyrimidine ring",
                    _ => "pyrazine ring",
                }
                .to_string(),
                (6, ["n", "n", "n"]) => "triazine ring".to_string(),
                (5, ["o"]) => "furan ring".to_string(),
                (5, ["s"]) => "thiophene ring".to_string(),
                (5, ["n"]) => "pyrrole ring".to_string(),
                (5, ["n", "n"]) => if dist == 1 {
                    "pyrazole ring"
                } else {
                    "imidazole ring"
                }
                .to_string(),
                (5, ["n", "o"]) => if dist == 1 {
                    "isoxazole ring"
                } else {
                    "oxazole ring"
                }
                .to_string(),
                (5, ["n", "s"]) => if dist == 1 {
                    "isothiazole ring"
                } else {
                    "thiazole ring"
                }
                .to_string(),
                (5, ["n", "n", "n"]) => "triazole ring".to_string(),
                (5, ["n", "n", "n", "n"]) => "tetrazole ring".to_string(),
                (5, ["n", "n", "o"]) => "oxadiazole ring".to_string(),
                (5, ["n", "n", "s"]) => "thiadiazole ring".to_string(),
                (_, []) => format!("aromatic {k}-membered ring"),
                _ => format!("aromatic {k}-membered heterocycle"),
            }
        } else if names.is_empty() {
            let base = match k {
                3 => "cycloprop",
                4 => "cyclobut",
                5 => "cyclopent",
                6 => "cyclohex",
                7 => "cyclohept",
                8 => "cyclooct",
                _ => "",
            };
            let suffix = match doubles {
                0 => "ane",
                1 => "ene",
                2 => "adiene",
                _ => "atriene",
            };
            if base.is_empty() {
                format!("{k}-membered carbocycle")
            } else {
                format!("{base}{suffix} ring")
            }
        } else if doubles == 0 {
            match (k, names.as_slice()) {
                (3, ["o"]) => "epoxide ring".to_string(),
                (3, ["n"]) => "aziridine ring".to_string(),
                (4, ["n"]) => "azetidine ring".to_string(),
                (4, ["o"]) => "oxetane ring".to_string(),
                (5, ["o"]) => "tetrahydrofuran ring".to_string(),
                (5, ["n"]) => "pyrrolidine ring".to_string(),
                (5, ["s"]) => "tetrahydrothiophene ring".to_string(),
                (5, ["o", "o"]) => "dioxolane ring".to_string(),
                (5, ["n", "s"]) => "thiazolidine ring".to_string(),
                (5, ["n", "o"]) => "oxazolidine ring".to_string(),
                (5, ["n", "n"]) => if dist == 1 {
                    "pyrazolidine ring"
                } else {
                    "imidazolidine ring"
                }
                .to_string(),
                (6, ["o"]) => "tetrahydropyran ring".to_string(),
                (6, ["n"]) => "piperidine ring".to_string(),
                (6, ["s"]) => "thiane ring".to_string(),
                (6, ["n", "n"]) if dist == 3 => "piperazine ring".to_string(),
                (6, ["n", "o"]) if dist == 3 => "morpholine ring".to_string(),
                (6, ["o", "o"]) if dist == 3 => "dioxane ring".to_string(),
                _ => format!("{k}-membered heterocycle"),
            }
        } else {
            format!("{k}-membered heterocycle")
        };
        name
    }

    fn nitro(&mut self) {
        for n in 0..self.mol.atoms.len() {
            if self.el(n) != "n" || !self.free(n) {
                continue;
            }
            let os: Vec<(usize, BondOrder)> = self
                .nbrs(n)
                .into_iter()
                .filter(|&(j, _)| self.el(j) == "o" && self.deg(j) == 1 && self.free(j))
                .collect();
            if os.len() != 2 {
                continue;
            }
            let doubles = os.iter().filter(|&&(_, o)| o == BondOrder::Double).count();
            let anion = os
                .iter()
                .any(|&(j, o)| o == BondOrder::Single && self.mol.atoms[j].charge < 0);
            if doubles == 2 || (doubles == 1 && anion) {
                self.fg("nitro", &[n, os[0].0, os[1].0]);
            }
        }
    }

    fn sulfur_phosphorus_oxo(&mut self) {
        for x in 0..self.mol.atoms.len() {
            if !self.free(x) {
                continue;
            }
            let el = self.el(x);
            if self.mol.atoms[x].aromatic || (el != "s" && el != "p") {
                continue;
            }
            let mut oxo = self.oxo_of(x);
            let thio: Vec<usize> = if el == "p" {
                self.nbrs(x)
                    .into_iter()
                    .filter(|&(j, o)| {
                        o == BondOrder::Double
                            && self.el(j) == "s"
                            && self.deg(j) == 1
                            && self.free(j)
                    })
                    .map(|(j, _)| j)
                    .collect()
            } else {
                Vec::new()
            };
            let thio_label = !thio.is_empty() && oxo.is_empty();
            oxo.extend(&thio);
            if oxo.is_empty() {
                continue;
            }
            let nbrs = self.nbrs(x);
            let single_o: Vec<usize> = nbrs
                .iter()
                .filter(|&&(j, o)| o == BondOrder::Single && self.el(j) == "o" && self.free(j))
                .map(|&(j, _)| j)
                .collect();
            let mut atoms = vec![x];
            atoms.extend(&oxo);
            if el == "p" {
                let total_o = oxo.len() + single_o.len();
                atoms.extend(&single_o);
                let label = match (total_o, thio_label) {
                    (4.., true) => "thiophosphate",
                    (_, true) => "thiophosphoryl",
                    (0..=2, false) => "phosphoryl",
                    (3, false) => "phosphonate",
                    (_, false) => "phosphate",
                };
                self.fg(label, &atoms);
                continue;
            }
            if oxo.len() == 1 {
                self.fg("sulfoxide", &atoms);
                continue;
            }
            let acid_o: Vec<usize> = single_o
                .iter()
                .copied()
                .filter(|&j| self.deg(j) == 1)
                .collect();
            let ester_o: Vec<usize> = single_o
                .iter()
                .copied()
                .filter(|&j| self.deg(j) == 2)
                .collect();
            let n_nbr = nbrs
                .iter()
                .find(|&&(j, _)| self.el(j) == "n")
                .map(|&(j, _)| j);
            let label = if !acid_o.is_empty() {
                atoms.extend(&acid_o);
                if acid_o.iter().any(|&j| self.mol.atoms[j].charge < 0) {
                    "sulfonate"
                } else {
                    "sulfonic acid"
                }
            } else if let Some(nn) = n_nbr {
                if self.free(nn) {
                    atoms.push(nn);
                }
                "sulfonamide"
            } else if !ester_o.is_empty() {
                atoms.extend(&ester_o);
                "sulfonate ester"
            } else {
                "sulfone"
            };
            self.fg(label, &atoms);
        }
    }

    fn carbonyls(&mut self) {
        for c in 0..self.mol.atoms.len() {
            if !self.is_c(c) || !self.free(c) {
                continue;
            }
            let Some(&oxo) = self.oxo_of(c).first() else {
                continue;
            };
            let others: Vec<(usize, BondOrder)> = self
                .nbrs(c)
                .into_iter()
                .filter(|&(j, _)| j != oxo)
                .collect();
            let single = |sym: &str| -> Vec<usize> {
                others
                    .iter()
                    .filter(|&&(j, o)| o == BondOrder::Single && self.el(j) == sym)
                    .map(|&(j, _)| j)
                    .collect()
            };
            let os = single("o");
            let ns = single("n");
            let ss = single("s");
            let hal: Vec<usize> = others
                .iter()
                .filter(|&&(j, _)| is_halogen(&self.el(j)))
                .map(|&(j, _)| j)
                .collect();
            let mut atoms = vec![c, oxo];
            let keep_free = |v: &[usize]| -> Vec<usize> {
                v.iter().copied().filter(|&j| self.free(j)).collect()
            };
            let label = if let Some(&acid) = os.iter().find(|&&j| self.deg(j) == 1) {
                if self.free(acid) {
                    atoms.push(acid);
                }
                if self.mol.atoms[acid].charge < 0 {
                    "carboxylate"
                } else {
                    "carboxylic acid"
                }
            } else if !os.is_empty() {
                atoms.extend(keep_free(&os));
                if !ns.is_empty() {
                    atoms.extend(keep_free(&ns));
                    "carbamate"
                } else if os.len() >= 2 {
                    "carbonate"
                } else {
                    "ester"
                }
            } else if !ns.is_empty() {
                atoms.extend(keep_free(&ns));
                if ns.len() >= 2 {
                    "urea"
                } else {
                    "amide"
                }
            } else if !hal.is_empty() {
                atoms.extend(keep_free(&hal));
                "acyl halide"
            } else if !ss.is_empty() {
                atoms.extend(keep_free(&ss));
                "thioester"
            } else if self.h[c] >= 1 {
                "aldehyde"
            } else {
                "ketone"
            };
            self.fg(label, &atoms);
        }
    }

    fn nitriles(&mut self) {
        for c in 0..self.mol.atoms.len() {
            if !self.is_c(c) || !self.free(c) {
                continue;
            }
            let n = self.nbrs(c).into_iter().find(|&(j, o)| {
                o == BondOrder::Triple && self.el(j) == "n" && self.deg(j) == 1 && self.free(j)
            });
            if let Some((n, _)) = n {
                self.fg("nitrile", &[c, n]);
            }
        }
    }

    /// Remaining terminal `=O` (e.g. on a ring carbon: lactam, lactone, quinone).
    fn oxo(&mut self) {
        for o in 0..self.mol.atoms.len() {
            if self.el(o) != "o" || !self.free(o) || self.deg(o) != 1 {
                continue;
            }
            let (r, order) = self.nbrs(o)[0];
            if order == BondOrder::Double {
                let label = if self.is_c(r) {
                    "carbonyl"
                } else {
                    "oxo group"
                };
                self.fg(label, &[o]);
            }
        }
    }

    fn hydroxyls(&mut self) {
        for o in 0..self.mol.atoms.len() {
            if self.el(o) != "o" || !self.free(o) || self.deg(o) != 1 {
                continue;
            }
            let (r, order) = self.nbrs(o)[0];
            if order != BondOrder::Single {
                continue;
            }
            let arom = self.mol.atoms[r].aromatic;
            let label = if self.mol.atoms[o].charge < 0 {
                match (self.is_c(r), arom) {
                    (true, true) => "phenolate",
                    (true, false) => "alkoxide",
                    _ => "oxide anion",
                }
            } else if self.h[o] >= 1 {
                if arom {
                    "phenol hydroxyl"
                } else {
                    "hydroxyl"
                }
            } else {
                continue;
            };
            self.fg(label, &[o]);
        }
    }

    fn ethers(&mut self) {
        for o in 0..self.mol.atoms.len() {
            if self.el(o) != "o" || !self.free(o) || self.deg(o) != 2 {
                continue;
            }
            let nbrs = self.nbrs(o);
            if nbrs.iter().any(|&(_, b)| b != BondOrder::Single) {
                continue;
            }
            if let Some(&(peer, _)) = nbrs.iter().find(|&&(j, _)| self.el(j) == "o") {
                let mut atoms = vec![o];
                if self.free(peer) {
                    atoms.push(peer);
                }
                self.fg("peroxide", &atoms);
            } else if nbrs.iter().any(|&(j, _)| self.is_c(j)) {
                self.fg("ether", &[o]);
            }
        }
    }

    fn nitrogens(&mut self) {
        for n in 0..self.mol.atoms.len() {
            if self.el(n) != "n" || !self.free(n) {
                continue;
            }
            let nbrs = self.nbrs(n);
            if nbrs
                .iter()
                .any(|&(j, o)| o == BondOrder::Double && self.is_c(j))
            {
                self.fg("imine", &[n]);
                continue;
            }
            if nbrs.iter().any(|&(_, o)| o != BondOrder::Single) {
                continue;
            }
            let carbons = nbrs.iter().filter(|&&(j, _)| self.is_c(j)).count();
            if carbons < nbrs.len() {
                if let Some(&(peer, _)) = nbrs.iter().find(|&&(j, _)| self.el(j) == "n") {
                    let mut atoms = vec![n];
                    if self.free(peer) {
                        atoms.push(peer);
                    }
                    self.fg("hydrazine", &atoms);
                }
                continue;
            }
            let label = if self.mol.atoms[n].charge > 0 {
                if carbons == 4 {
                    "quaternary ammonium"
                } else {
                    "ammonium"
                }
            } else {
                match carbons {
                    1 => "primary amine",
                    2 => "secondary amine",
                    3 => "tertiary amine",
                    _ => continue,
                }
            };
            self.fg(label, &[n]);
        }
    }

    /// Carbons bearing two or three identical halogens: CF3, CCl3, CHF2...
    fn polyhalo(&mut self) {
        for c in 0..self.mol.atoms.len() {
            if !self.is_c(c) || !self.free(c) || self.mol.atoms[c].aromatic {
                continue;
            }
            for (hal, name) in [
                ("f", "fluoro"),
                ("cl", "chloro"),
                ("br", "bromo"),
                ("i", "iodo"),
            ] {
                let xs: Vec<usize> = self
                    .nbrs(c)
                    .into_iter()
                    .filter(|&(j, _)| self.el(j) == hal && self.free(j))
                    .map(|(j, _)| j)
                    .collect();
                if xs.len() >= 2 {
                    let label = match xs.len() {
                        2 => format!("di{name}methyl group"),
                        3 => format!("tri{name}methyl group"),
                        _ => format!("tetra{name}methane"),
                    };
                    let mut atoms = vec![c];
                    atoms.extend(&xs);
                    self.fg(label, &atoms);
                    break;
                }
            }
        }
    }

    fn halides(&mut self) {
        for x in 0..self.mol.atoms.len() {
            if !self.free(x) || self.deg(x) == 0 {
                continue;
            }
            let label = match self.el(x).as_str() {
                "f" => "fluoro",
                "cl" => "chloro",
                "br" => "bromo",
                "i" => "iodo",
                _ => continue,
            };
            self.fg(label, &[x]);
        }
    }

    fn sulfurs(&mut self) {
        for s in 0..self.mol.atoms.len() {
            if self.el(s) != "s" || !self.free(s) {
                continue;
            }
            let nbrs = self.nbrs(s);
            if nbrs.iter().any(|&(_, o)| o != BondOrder::Single) {
                continue;
            }
            if let Some(&(peer, _)) = nbrs.iter().find(|&&(j, _)| self.el(j) == "s") {
                let mut atoms = vec![s];
                if self.free(peer) {
                    atoms.push(peer);
                }
                self.fg("disulfide", &atoms);
            } else if nbrs.len() == 1 && self.h[s] >= 1 {
                self.fg("thiol", &[s]);
            } else if nbrs.len() == 2 && nbrs.iter().all(|&(j, _)| self.is_c(j)) {
                self.fg("thioether", &[s]);
            }
        }
    }

    /// Connected components of unclaimed atoms become chains.
    fn leftovers(&mut self) {
        let n = self.mol.atoms.len();
        let mut seen = vec![false; n];
        for start in 0..n {
            if seen[start] || self.owner[start].is_some() || self.attached_h[start].is_some() {
                continue;
            }
            let mut comp = vec![start];
            seen[start] = true;
            let mut k = 0;
            while k < comp.len() {
                let v = comp[k];
                k += 1;
                for &(w, _) in &self.adj[v] {
                    if !seen[w] && self.owner[w].is_none() {
                        seen[w] = true;
                        comp.push(w);
                    }
                }
            }
            let all_carbon = comp.iter().all(|&a| self.is_c(a));
            let mut has_double = false;
            let mut has_triple = false;
            for &a in &comp {
                for &(_, e) in &self.adj[a] {
                    match self.order[e] {
                        BondOrder::Double => has_double = true,
                        BondOrder::Triple => has_triple = true,
                        _ => {}
                    }
                }
            }
            let (kind, label) = if all_carbon && comp.len() == 1 {
                let label = if self.deg(start) == 0 {
                    "methane"
                } else if has_double || self.h[start] == 2 {
                    "methylene group"
                } else if self.h[start] >= 3 || self.deg(start) == 1 {
                    "methyl group"
                } else {
                    "alkyl carbon"
                };
                (MotifKind::Chain, label.to_string())
            } else if all_carbon {
                let internal = |want: BondOrder| {
                    self.mol
                        .bonds
                        .iter()
                        .zip(&self.order)
                        .any(|(b, &o)| o == want && comp.contains(&b.a) && comp.contains(&b.b))
                };
                let label = if internal(BondOrder::Triple) {
                    "alkynyl chain"
                } else if internal(BondOrder::Double) {
                    "alkenyl chain"
                } else {
                    "alkyl chain"
                };
                (MotifKind::Chain, label.to_string())
            } else if comp.len() == 1 {
                let _ = has_triple;
                let label = match self.mol.atoms[start].element.as_str() {
                    "*" => "wildcard atom".to_string(),
                    e => format!("{e} atom"),
                };
                (MotifKind::FunctionalGroup, label)
            } else {
                (MotifKind::Chain, "heteroatom chain".to_string())
            };
            self.claim(kind, label, &comp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &[&str] = &[
        "CCO",
        "c1ccccc1",
        "CC(=O)Oc1ccccc1C(=O)O",
        "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
        "[Na+].[Cl-]",
        "C[C@H](N)C(=O)O",
        "c1ccc2ccccc2c1",
        "CC(C)CCCC(C)C1CCC2C1(CCC3C2CC=C4C3(CCC(C4)O)C)C",
        "C%10CCCCC%10",
        "OC(=O)c1ccccc1O",
        "C=1CCCCC1",
        "F/C=C/F",
        "[13CH3:7][NH3+]",
        "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",
        "CN1CCC[C@H]1c2cccnc2",
        "O=[N+]([O-])c1ccc(Cl)cc1",
        "CS(=O)(=O)N",
        "OP(=O)(O)OCC",
        "C#N",
        "CC(=O)Nc1ccc(O)cc1",
        "COC",
        "CCN(CC)CC",
        "CCS",
        "CSSC",
        "C1=CC=CC=C1",
        "O1CCOCC1",
        "c1ccoc1",
        "c1cscn1",
        "C1CCNCC1",
        "CC(=O)Cl",
        "NC(N)=O",
        "CC=O",
        "CC(C)=O",
        "CC#CC",
        "C=CC",
        "[Si](C)(C)(C)C",
        "c1ccccc1-c1ccccc1",
        "C12(CCCC1)CCCC2",
        "[Ca+2].[O-]C(=O)C",
        "N",
        "O",
        "CC[N+](C)(C)C",
        "[2H]C([2H])([2H])O",
        "[H][H]",
        "CCOP(=S)(OCC)Oc1ccc([N+](=O)[O-])cc1",
        "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O",
        "CC1(C)S[C@@H]2[C@H](NC(=O)Cc3ccccc3)C(=O)N2[C@H]1C(=O)O",
        "[Cu+2].[O-]S(=O)(=O)[O-]",
    ];

    /// Token texts of `tokenize(s)` (compared against outputs of Python
    /// `re.findall` with the rxnfp regex).
    fn token_strings(s: &str) -> Vec<String> {
        tokenize(s)
            .iter()
            .map(|&(a, b)| s.chars().skip(a).take(b - a).collect())
            .collect()
    }

    fn labels(s: &str) -> Vec<String> {
        motifs(s).unwrap().into_iter().map(|m| m.label).collect()
    }

    #[test]
    fn tokenizer_matches_regex_examples() {
        assert_eq!(
            token_strings("CC(=O)Oc1ccccc1C(=O)O"),
            vec![
                "C", "C", "(", "=", "O", ")", "O", "c", "1", "c", "c", "c", "c", "c", "1", "C",
                "(", "=", "O", ")", "O"
            ]
        );
        assert_eq!(token_strings("[Na+].[Cl-]"), vec!["[Na+]", ".", "[Cl-]"]);
        assert_eq!(
            token_strings("C[C@H](N)C(=O)O"),
            vec!["C", "[C@H]", "(", "N", ")", "C", "(", "=", "O", ")", "O"]
        );
        assert_eq!(
            token_strings("C%10CCCCC%10"),
            vec!["C", "%10", "C", "C", "C", "C", "C", "%10"]
        );
        assert_eq!(token_strings("BrCCCl"), vec!["Br", "C", "C", "Cl"]);
        assert_eq!(token_strings("CC>>CC"), vec!["C", "C", ">", ">", "C", "C"]);
        // unmatched characters are skipped like re.findall
        assert_eq!(token_strings("C%1C"), vec!["C", "1", "C"]);
        assert_eq!(token_strings("C[]C"), vec!["C", "C"]);
        assert_eq!(token_strings("[Na"), vec!["N"]);
        assert_eq!(token_strings("[[C]"), vec!["[[C]"]);
        assert_eq!(token_strings("CH4 x"), vec!["C", "4"]);
        assert_eq!(token_strings("Ba"), vec!["B"]);
        assert_eq!(
            token_strings("C~C@?*$"),
            vec!["C", "~", "C", "@", "?", "*", "$"]
        );
        assert_eq!(tokenize("é[Na+]"), vec![(1, 6)]);
    }

    #[test]
    fn tokens_cover_valid_smiles() {
        for s in REAL {
            let toks = tokenize(s);
            let joined: String = toks
                .iter()
                .map(|&(a, b)| s.chars().skip(a).take(b - a).collect::<String>())
                .collect();
            assert_eq!(&joined, s, "tokens do not cover {s}");
        }
        assert_eq!(tokenize("Cn1cnc2c1c(=O)n(C)c(=O)n2C").len(), 26);
        assert_eq!(
            tokenize("CC(C)CCCC(C)C1CCC2C1(CCC3C2CC=C4C3(CCC(C4)O)C)C").len(),
            47
        );
    }

    #[test]
    fn partition_invariants() {
        for s in REAL {
            let mol = parse(s).unwrap();
            let toks = tokenize(s);
            let ms = motifs(s).unwrap();
            let mut atom_owner = vec![0usize; mol.atoms.len()];
            let mut tok_owner = vec![0usize; toks.len()];
            for m in &ms {
                assert!(!m.atoms.is_empty(), "{s}: empty motif {m:?}");
                for &a in &m.atoms {
                    atom_owner[a] += 1;
                }
                for &t in &m.tokens {
                    tok_owner[t] += 1;
                }
                assert!(m.tokens.windows(2).all(|w| w[0] < w[1]));
            }
            assert!(atom_owner.iter().all(|&c| c == 1), "{s}: {ms:?}");
            assert!(tok_owner.iter().all(|&c| c <= 1), "{s}: {ms:?}");
            for atom in &mol.atoms {
                let t = toks.iter().position(|&(a, _)| a == atom.span.0).unwrap();
                assert_eq!(toks[t], atom.span);
                assert_eq!(tok_owner[t], 1, "{s}: atom token {t} unowned");
            }
        }
    }

    #[test]
    fn aspirin() {
        let ms = motifs("CC(=O)Oc1ccccc1C(=O)O").unwrap();
        let l: Vec<&str> = ms.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(
            l,
            vec!["methyl group", "ester", "benzene ring", "carboxylic acid"]
        );
        // tokens: C C ( = O ) O c 1 c c c c c 1 C ( = O ) O
        assert_eq!(ms[0].tokens, vec![0]);
        assert_eq!(ms[1].tokens, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(ms[1].kind, MotifKind::FunctionalGroup);
        assert_eq!(ms[2].tokens, vec![7, 8, 9, 10, 11, 12, 13, 14]);
        assert_eq!(ms[2].kind, MotifKind::Ring);
        assert_eq!(ms[3].tokens, vec![15, 16, 17, 18, 19, 20]);
    }

    #[test]
    fn salicylic_acid() {
        let ms = motifs("OC(=O)c1ccccc1O").unwrap();
        let l: Vec<&str> = ms.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(
            l,
            vec!["carboxylic acid", "benzene ring", "phenol hydroxyl"]
        );
        assert_eq!(ms[0].tokens, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(ms[2].tokens, vec![14]);
    }

    #[test]
    fn ethanol() {
        let ms = motifs("CCO").unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].kind, MotifKind::Chain);
        assert_eq!(ms[0].label, "alkyl chain");
        assert_eq!(ms[0].tokens, vec![0, 1]);
        assert_eq!(ms[1].label, "hydroxyl");
        assert_eq!(ms[1].tokens, vec![2]);
    }

    #[test]
    fn salt() {
        let ms = motifs("[Na+].[Cl-]").unwrap();
        assert_eq!(ms.len(), 2);
        assert!(ms.iter().all(|m| m.kind == MotifKind::Ion));
        assert_eq!(ms[0].label, "Na+ ion");
        assert_eq!(ms[1].label, "Cl- ion");
        assert_eq!(ms[0].tokens, vec![0]);
        assert_eq!(ms[1].tokens, vec![2]);
    }

    #[test]
    fn naphthalene() {
        let ms = motifs("c1ccc2ccccc2c1").unwrap();
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].kind, MotifKind::RingSystem);
        assert_eq!(ms[0].label, "ring system (2 rings)");
        assert_eq!(ms[0].tokens, (0..14).collect::<Vec<_>>());
    }

    #[test]
    fn assorted_labels() {
        assert_eq!(
            labels("Cn1cnc2c1c(=O)n(C)c(=O)n2C"),
            vec![
                "methyl group",
                "ring system (2 rings)",
                "carbonyl",
                "methyl group",
                "carbonyl",
                "methyl group"
            ]
        );
        assert_eq!(
            labels("CC(C)CCCC(C)C1CCC2C1(CCC3C2CC=C4C3(CCC(C4)O)C)C"),
            vec![
                "alkyl chain",
                "ring system (4 rings)",
                "hydroxyl",
                "methyl group",
                "methyl group"
            ]
        );
        assert_eq!(
            labels("C[C@H](N)C(=O)O"),
            vec!["alkyl chain", "primary amine", "carboxylic acid"]
        );
        assert_eq!(labels("C%10CCCCC%10"), vec!["cyclohexane ring"]);
        assert_eq!(labels("C1=CC=CC=C1"), vec!["benzene ring"]);
        assert_eq!(
            labels("O=[N+]([O-])c1ccc(Cl)cc1"),
            vec!["nitro", "benzene ring", "chloro"]
        );
        assert_eq!(labels("CS(=O)(=O)N"), vec!["methyl group", "sulfonamide"]);
        assert_eq!(labels("OP(=O)(O)OCC"), vec!["phosphate", "alkyl chain"]);
        assert_eq!(labels("CC#N"), vec!["methyl group", "nitrile"]);
        assert_eq!(
            labels("CC(=O)Nc1ccc(O)cc1"),
            vec!["methyl group", "amide", "benzene ring", "phenol hydroxyl"]
        );
        assert_eq!(labels("COC"), vec!["methyl group", "ether", "methyl group"]);
        assert_eq!(
            labels("CCN(CC)CC"),
            vec![
                "alkyl chain",
                "tertiary amine",
                "alkyl chain",
                "alkyl chain"
            ]
        );
        assert_eq!(labels("CCS"), vec!["alkyl chain", "thiol"]);
        assert_eq!(
            labels("CSSC"),
            vec!["methyl group", "disulfide", "methyl group"]
        );
        assert_eq!(labels("O1CCOCC1"), vec!["dioxane ring"]);
        assert_eq!(labels("c1ccoc1"), vec!["furan ring"]);
        assert_eq!(labels("c1cscn1"), vec!["thiazole ring"]);
        assert_eq!(labels("c1ccncc1"), vec!["pyridine ring"]);
        assert_eq!(labels("c1cncnc1"), vec!["pyrimidine ring"]);
        assert_eq!(labels("c1cc[nH]c1"), vec!["pyrrole ring"]);
        assert_eq!(labels("c1cnc[nH]1"), vec!["imidazole ring"]);
        assert_eq!(labels("C1CCNCC1"), vec!["piperidine ring"]);
        assert_eq!(labels("C1COCCN1"), vec!["morpholine ring"]);
        assert_eq!(labels("CC(=O)Cl"), vec!["methyl group", "acyl halide"]);
        assert_eq!(labels("NC(N)=O"), vec!["urea"]);
        assert_eq!(labels("CC=O"), vec!["methyl group", "aldehyde"]);
        assert_eq!(
            labels("CC(C)=O"),
            vec!["methyl group", "ketone", "methyl group"]
        );
        assert_eq!(labels("CC#CC"), vec!["alkynyl chain"]);
        assert_eq!(labels("C=CC"), vec!["alkenyl chain"]);
        assert_eq!(
            labels("c1ccccc1-c1ccccc1"),
            vec!["benzene ring", "benzene ring"]
        );
        assert_eq!(labels("C12(CCCC1)CCCC2"), vec!["ring system (2 rings)"]);
        assert_eq!(
            labels("[Ca+2].[O-]C(=O)C"),
            vec!["Ca2+ ion", "carboxylate", "methyl group"]
        );
        assert_eq!(labels("CC[N+](C)(C)C")[1], "quaternary ammonium");
        assert_eq!(labels("[NH4+]"), vec!["NH4+ ion"]);
        assert_eq!(
            labels("CCOC(C)=O"),
            vec!["alkyl chain", "ester", "methyl group"]
        );
        assert_eq!(
            labels("CN1CCC[C@H]1c2cccnc2"),
            vec!["methyl group", "pyrrolidine ring", "pyridine ring"]
        );
    }

    #[test]
    fn more_labels() {
        assert_eq!(
            labels("FC(F)(F)c1ccccc1"),
            vec!["trifluoromethyl group", "benzene ring"]
        );
        assert_eq!(labels("ClC(Cl)(Cl)Cl"), vec!["tetrachloromethane"]);
        assert_eq!(
            labels("CCOP(=S)(OCC)Oc1ccccc1"),
            vec![
                "alkyl chain",
                "thiophosphate",
                "alkyl chain",
                "benzene ring"
            ]
        );
        assert_eq!(
            labels("OCC1CCCCO1"),
            vec!["hydroxyl", "methylene group", "tetrahydropyran ring"]
        );
        assert_eq!(labels("*C(=O)O"), vec!["wildcard atom", "carboxylic acid"]);
        assert_eq!(labels("C"), vec!["methane"]);
        assert_eq!(labels("NC(N)N")[1], "alkyl carbon");
    }

    #[test]
    fn explicit_hydrogens_join_parent() {
        let ms = motifs("[2H]C([2H])([2H])O").unwrap();
        let l: Vec<&str> = ms.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(l, vec!["methyl group", "hydroxyl"]);
        // [2H] C ( [2H] ) ( [2H] ) O
        assert_eq!(ms[0].tokens, vec![0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(ms[0].atoms, vec![0, 1, 2, 3]);
        let ms = motifs("[H]OC").unwrap();
        assert_eq!(ms[0].label, "hydroxyl");
        assert_eq!(ms[0].tokens, vec![0, 1]);
    }

    #[test]
    fn invalid_smiles_propagates_error() {
        let e = motifs("C1CC").unwrap_err();
        assert_eq!(e.position, 1);
    }
}
