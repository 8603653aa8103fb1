//! Text <-> molecule retrieval on the held-out split of the starter-mol
//! bundle (`models/build.sh` writes `.weft/data/molecules/test.tsv`):
//! Hits@1, Hits@10 and MRR for global, token FILIP, motif OT and
//! multi-grained scoring, next to the random baseline, as a markdown table.
//! The multi-grained rows are the fixed 0.6/0.2/0.2 blend and, when
//! `.weft/data/molecules/train_summary.json` has them, the weights that
//! `models/build_mol.py` picked on the validation split.
//!
//! `cargo run --release --example eval_molecules [-- --limit N] [--split val]`
//! (`--split val` scores the validation split instead: for checking the
//! numpy replica of the scorers, never for reporting).

use std::path::PathBuf;

use weft::bundle::{Bundle, Modality};
use weft::encoder::{BundleEncoders, EncoderOptions, Input};
use weft::runtime::{Runtime, RuntimeOptions};
use weft::search::{
    search, Candidates, Direction, Query, Scorer, SearchOptions, SearchScratch, DEFAULT_EPSILON,
};
use weft::store::{Collection, CollectionConfig, TokenDtype};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let limit: usize = args
        .iter()
        .position(|a| a == "--limit")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let split = match args.iter().position(|a| a == "--split") {
        None => "test",
        Some(i) => args
            .get(i + 1)
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("--split needs a value: test or val"))?,
    };
    anyhow::ensure!(
        split == "test" || split == "val",
        "--split is test or val, not {split}"
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = root.join(".weft/data/molecules");
    let test = std::fs::read_to_string(data.join(format!("{split}.tsv")))?;
    // the multi-grained weights build_mol.py picked on the validation split (written by the same
    // build as the bundle: models/build.sh rebuilds both together)
    let val_weights: Option<[f32; 3]> = std::fs::read_to_string(data.join("train_summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| serde_json::from_value(v["multi_weights_val"].clone()).ok());
    let mut rows: Vec<(String, String)> = Vec::new();
    for line in test.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() >= 2 && !f[0].is_empty() && !f[1].is_empty() {
            rows.push((f[0].to_string(), f[1].to_string()));
        }
    }
    rows.truncate(limit);
    let n = rows.len();
    let bundle = Bundle::open(root.join(".weft/models/starter-mol"))?;
    let runtime = Runtime::load(&RuntimeOptions::default().with_project_dir(".weft"))?;
    let mut enc = BundleEncoders::new(runtime, bundle.clone(), EncoderOptions::default())?;
    let t0 = std::time::Instant::now();
    let mols = enc.encode(
        &rows
            .iter()
            .map(|(s, _)| Input::Smiles(s))
            .collect::<Vec<_>>(),
    );
    let names = enc.encode(&rows.iter().map(|(_, t)| Input::Text(t)).collect::<Vec<_>>());
    eprintln!(
        "encoded {n} SMILES and {n} names in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let tmp = std::env::temp_dir().join(format!("weft-eval-mol-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let cfg = || {
        CollectionConfig::for_bundle(&bundle)
            .with_token_dtype(TokenDtype::F32)
            .with_checkpoint_items(100_000)
    };
    let mol_coll = Collection::create(tmp.join("mols"), cfg())?;
    let text_coll = Collection::create(tmp.join("names"), cfg())?;
    let mut mol_q = Vec::new();
    let mut text_q = Vec::new();
    for (i, ((smiles, name), (m, t))) in rows.iter().zip(mols.into_iter().zip(names)).enumerate() {
        let (m, t) = (m?, t?);
        let id = format!("{i}");
        mol_q.push(Query::from_encoded(m.clone()).with_smiles(smiles));
        text_q.push(Query::from_encoded(t.clone()));
        mol_coll.add(
            m.into_item(&id, Modality::Molecule)
                .with_payload(serde_json::json!({ "smiles": smiles })),
        )?;
        text_coll.add(
            t.into_item(&id, Modality::Text)
                .with_payload(serde_json::json!({ "name": name })),
        )?;
    }
    mol_coll.commit()?;
    text_coll.commit()?;
    let mut scorers = vec![
        ("global (molecule-level)", Scorer::Global),
        ("token FILIP", Scorer::Filip(Direction::QueryToItem)),
        (
            "motif OT (Sinkhorn)",
            Scorer::MotifOt {
                epsilon: DEFAULT_EPSILON,
            },
        ),
        (
            "multi-grained 0.6/0.2/0.2",
            Scorer::MultiGrained {
                global: 0.6,
                token: 0.2,
                motif: 0.2,
            },
        ),
    ];
    let val_label;
    if let Some([g, t, m]) = val_weights {
        val_label = format!("multi-grained {g}/{t}/{m} (weights picked on val)");
        scorers.push((
            val_label.as_str(),
            Scorer::MultiGrained {
                global: g,
                token: t,
                motif: m,
            },
        ));
    }
    let harmonic: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
    println!("| scoring | text->mol Hits@1 | Hits@10 | MRR | mol->text Hits@1 | Hits@10 | MRR |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| random (expected) | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
        1.0 / n as f64,
        10.0 / n as f64,
        harmonic / n as f64,
        1.0 / n as f64,
        10.0 / n as f64,
        harmonic / n as f64
    );
    let mut scratch = SearchScratch::new();
    for (label, scorer) in scorers {
        let t = std::time::Instant::now();
        let mut row = Vec::new();
        for (queries, coll) in [(&text_q, &mol_coll), (&mol_q, &text_coll)] {
            let snap = coll.snapshot();
            let opts = SearchOptions::default()
                .with_k(n)
                .with_scorer(scorer)
                .with_candidates(Candidates::Exact);
            let (mut h1, mut h10, mut mrr) = (0.0, 0.0, 0.0);
            for (i, q) in queries.iter().enumerate() {
                let hits = search(&snap, q, &opts, &mut scratch)?;
                let rank = hits
                    .iter()
                    .position(|h| h.id == i.to_string())
                    .map_or(n, |r| r + 1);
                h1 += f64::from(u8::from(rank == 1));
                h10 += f64::from(u8::from(rank <= 10));
                mrr += 1.0 / rank as f64;
            }
            let nf = n as f64;
            row.extend([h1 / nf, h10 / nf, mrr / nf]);
        }
        println!(
            "| {label} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            row[0], row[1], row[2], row[3], row[4], row[5]
        );
        eprintln!("{label}: {:.1}s", t.elapsed().as_secs_f64());
    }
    println!(
        "\nN = {n} {split} molecules (split by InChIKey skeleton), names as text; exhaustive scoring."
    );
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
