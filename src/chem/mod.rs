//! Chemistry support for text <-> molecule retrieval.
//!
//! * [`smiles`]: a dependency-free OpenSMILES (subset) parser with char positions
//!   for every atom, bond symbol, ring-closure digit and branch parenthesis, plus
//!   graph helpers (ring membership, ring systems, implicit hydrogens).
//! * [`motif`]: a hand-written scanner reproducing the rxnfp SMILES token regex,
//!   and a grouping of tokens into chemical motifs (rings, ring systems,
//!   functional groups, chains, ions).
//! * [`ot`]: log-domain entropic optimal transport (Sinkhorn) and an OT
//!   similarity between text token embeddings and motif embeddings.

pub mod motif;
pub mod ot;
pub mod smiles;

pub use motif::{motifs, motifs_from_molecule, tokenize, Motif, MotifKind};
pub use ot::{cosine_cost, motif_embeddings, ot_similarity, sinkhorn, Transport};
pub use smiles::{
    parse, renumber_ring_closures, Atom, Bond, BondOrder, Molecule, RingSystem, SmilesError,
};
