//! Indexes a molecule file (CSV with a SMILES column) and searches it by a
//! text and by a SMILES; molecule queries keep their SMILES, so the motif
//! scorers can use it.
//!
//! ```sh
//! cargo run --release --example molecules -- .weft/data/molecules/sample.csv "an aromatic alcohol"
//! ```

use weft::search::Scorer;
use weft::{Content, Engine, SearchOptions, SearchQuery};

fn main() -> weft::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .unwrap_or_else(|| ".weft/data/molecules/sample.csv".into());
    let text = args.next().unwrap_or_else(|| "an aromatic alcohol".into());
    let engine = Engine::builder().project_dir(".weft").build()?;
    let mols = engine.open_or_create(".weft/collections/example-molecules", "starter-mol")?;
    mols.index(&[&file], |_| {})?;
    let scorer: Scorer = "multi".parse()?;
    let options = SearchOptions::default().with_k(5).with_scorer(scorer);
    println!("text: {text}");
    for hit in mols.search(text.as_str(), &options)? {
        println!("  {:.3}  {}  {}", hit.score, hit.id, hit.payload["smiles"]);
    }
    let smiles = "c1ccccc1O";
    println!("smiles: {smiles}");
    let query = SearchQuery::Content(Content::Smiles(smiles.into()));
    for hit in mols.search(query, &options)? {
        println!("  {:.3}  {}  {}", hit.score, hit.id, hit.payload["smiles"]);
    }
    Ok(())
}
