//! Zero-shot classification of a photo, a text or a SMILES.
//!
//! ```sh
//! cargo run --release --example classify -- .weft/data/photos/coffee.png "cat,dog,cup of coffee"
//! cargo run --release --example classify -- --smiles "CCO" "alcohol,ketone,aromatic compound"
//! ```

use weft::classify::ClassifyOptions;
use weft::{Content, Engine};

fn main() -> weft::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, bundle, labels) = match args.as_slice() {
        [flag, smiles, labels] if flag == "--smiles" => {
            (Content::Smiles(smiles.clone()), "starter-mol", labels)
        }
        [path, labels] => (Content::ImagePath(path.into()), "starter-vl", labels),
        _ => {
            eprintln!("usage: classify IMAGE LABELS | classify --smiles SMILES LABELS");
            std::process::exit(2);
        }
    };
    let labels: Vec<String> = labels.split(',').map(|l| l.trim().to_string()).collect();
    let engine = Engine::builder().project_dir(".weft").build()?;
    let bundle = engine.bundle(bundle)?;
    let result = engine.classify(&bundle, input, &labels, &ClassifyOptions::default())?;
    for l in &result.labels {
        println!("{:>6.2}%  {}", l.probability * 100.0, l.label);
    }
    Ok(())
}
