//! Prints `weft::chem::motifs` of SMILES strings as JSON lines, one per input
//! line, for the Python parity check (`models/check_motif_parity.py`):
//!
//! ```text
//! {"smiles": "CCO", "motifs": [{"kind": "Chain", "label": "alkyl chain", "tokens": [0, 1], "atoms": [0, 1]}, ...]}
//! {"smiles": "C1CC", "error": "invalid SMILES at position 1: unclosed ring bond 1"}
//! ```
//!
//! `kind` is the `MotifKind` variant as `{:?}` prints it; `error` is the
//! `SmilesError` as `Display` prints it. Input lines are split like
//! `str::lines` (a trailing `\r` is dropped) and are otherwise used as they are.
//!
//! ```sh
//! cargo build --release --example dump_motifs
//! target/release/examples/dump_motifs smiles.txt > motifs_rust.jsonl
//! ```

use std::io::{BufWriter, Write};

use serde_json::{json, Value};
use weft::chem::{motifs, Motif, MotifKind};

fn kind_name(kind: MotifKind) -> String {
    format!("{kind:?}")
}

fn motif_json(m: &Motif) -> Value {
    json!({
        "kind": kind_name(m.kind),
        "label": m.label,
        "tokens": m.tokens,
        "atoms": m.atoms,
    })
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: dump_motifs SMILES_FILE (one SMILES per line)"))?;
    let text = std::fs::read_to_string(&path)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for smiles in text.lines() {
        let record = match motifs(smiles) {
            Ok(ms) => {
                let list: Vec<Value> = ms.iter().map(motif_json).collect();
                json!({ "smiles": smiles, "motifs": list })
            }
            Err(e) => json!({ "smiles": smiles, "error": e.to_string() }),
        };
        writeln!(out, "{record}")?;
    }
    out.flush()?;
    Ok(())
}
