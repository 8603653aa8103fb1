//! Indexes a folder of photos into a collection and searches it by text.
//!
//! ```sh
//! cargo run --release --example index_and_search -- .weft/data/photos "a photo of a cat"
//! ```

use weft::{Engine, SearchOptions};

fn main() -> weft::Result<()> {
    let mut args = std::env::args().skip(1);
    let folder = args.next().unwrap_or_else(|| ".weft/data/photos".into());
    let query = args.next().unwrap_or_else(|| "a photo of a cat".into());
    let engine = Engine::builder().project_dir(".weft").build()?;
    let photos = engine.open_or_create(".weft/collections/example-photos", "starter-vl")?;
    let report = photos.index(&[&folder], |p| {
        eprint!("\r{}/{} files", p.files_done, p.files_total)
    })?;
    eprintln!();
    println!(
        "{} files indexed, {} unchanged; {} items",
        report.files_indexed,
        report.files_unchanged,
        photos.info().items
    );
    for hit in photos.search(query.as_str(), &SearchOptions::default().with_k(5))? {
        println!("{:.3}  {}", hit.score, hit.id);
    }
    Ok(())
}
