//! Text <-> image retrieval on the captioned real photos with the starter-vl
//! bundle: R@1 / R@5 per scorer, and the effect of token pooling (pool
//! factor 1, 2, 3) on token storage and on late-interaction quality.
//!
//! `cargo run --release --example eval_photos`

use std::path::PathBuf;

use weft::bundle::{Bundle, Modality};
use weft::encoder::{BundleEncoders, Encoded, EncoderOptions, Input};
use weft::runtime::{Runtime, RuntimeOptions};
use weft::search::{search, Candidates, Direction, Query, Scorer, SearchOptions, SearchScratch};
use weft::store::{Collection, CollectionConfig, TokenDtype};

fn recall(coll: &Collection, queries: &[Query], scorer: Scorer) -> anyhow::Result<(f64, f64)> {
    let snap = coll.snapshot();
    let n = queries.len();
    let opts = SearchOptions::default()
        .with_k(n)
        .with_scorer(scorer)
        .with_candidates(Candidates::Exact);
    let mut scratch = SearchScratch::new();
    let (mut r1, mut r5) = (0.0, 0.0);
    for (i, q) in queries.iter().enumerate() {
        let hits = search(&snap, q, &opts, &mut scratch)?;
        let rank = hits
            .iter()
            .position(|h| h.id == i.to_string())
            .map_or(n, |r| r + 1);
        r1 += f64::from(u8::from(rank == 1));
        r5 += f64::from(u8::from(rank <= 5));
    }
    Ok((r1 / n as f64, r5 / n as f64))
}

fn collection(
    dir: PathBuf,
    bundle: &Bundle,
    pool: f32,
    items: &[Encoded],
    modality: Modality,
) -> anyhow::Result<Collection> {
    let c = Collection::create(
        dir,
        CollectionConfig::for_bundle(bundle)
            .with_token_dtype(TokenDtype::F16)
            .with_pool_factor(pool),
    )?;
    for (i, e) in items.iter().enumerate() {
        c.add(e.clone().into_item(i.to_string(), modality))?;
    }
    c.commit()?;
    Ok(c)
}

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let photos = root.join(".weft/data/photos");
    let captions = std::fs::read_to_string(photos.join("captions.tsv"))?;
    let pairs: Vec<(PathBuf, String)> = captions
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(f, c)| (photos.join(f), c.to_string()))
        .collect();
    let bundle = Bundle::open(root.join(".weft/models/starter-vl"))?;
    let mut enc = BundleEncoders::new(
        Runtime::load(&RuntimeOptions::default().with_project_dir(".weft"))?,
        bundle.clone(),
        EncoderOptions::default(),
    )?;
    let images: Vec<Encoded> = enc
        .encode(
            &pairs
                .iter()
                .map(|(p, _)| Input::ImagePath(p))
                .collect::<Vec<_>>(),
        )
        .into_iter()
        .collect::<weft::Result<_>>()?;
    let texts: Vec<Encoded> = enc
        .encode(
            &pairs
                .iter()
                .map(|(_, c)| Input::Text(c))
                .collect::<Vec<_>>(),
        )
        .into_iter()
        .collect::<weft::Result<_>>()?;
    let tmp = std::env::temp_dir().join(format!("weft-eval-photos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let scorers = [
        ("global", Scorer::Global),
        ("FILIP query->item", Scorer::Filip(Direction::QueryToItem)),
        ("FILIP symmetric", Scorer::Filip(Direction::Symmetric)),
        ("MaxSim", Scorer::MaxSim),
        ("hybrid 0.5", Scorer::Hybrid { weight: 0.5 }),
    ];
    println!("| pool factor | scorer | text->image R@1 | R@5 | image->text R@1 | R@5 | image tokens/item | token bytes/item (f16) |");
    println!("|---|---|---|---|---|---|---|---|");
    for pool in [1.0f32, 2.0, 3.0] {
        let img_coll = collection(
            tmp.join(format!("img-{pool}")),
            &bundle,
            pool,
            &images,
            Modality::Image,
        )?;
        let txt_coll = collection(
            tmp.join(format!("txt-{pool}")),
            &bundle,
            pool,
            &texts,
            Modality::Text,
        )?;
        let snap = img_coll.snapshot();
        let tokens_per_item: f64 = snap
            .live_docs()
            .map(|d| snap.meta(d).map_or(0, |m| m.n_tokens))
            .sum::<usize>() as f64
            / pairs.len() as f64;
        let bytes = tokens_per_item * bundle.dim() as f64 * 2.0;
        let text_q: Vec<Query> = texts.iter().cloned().map(Query::from_encoded).collect();
        let img_q: Vec<Query> = images.iter().cloned().map(Query::from_encoded).collect();
        for (name, scorer) in scorers {
            if pool > 1.0 && scorer == Scorer::Global {
                continue; // pooling does not touch global embeddings
            }
            let (t1, t5) = recall(&img_coll, &text_q, scorer)?;
            let (i1, i5) = recall(&txt_coll, &img_q, scorer)?;
            println!("| {pool} | {name} | {t1:.2} | {t5:.2} | {i1:.2} | {i5:.2} | {tokens_per_item:.1} | {bytes:.0} |");
        }
    }
    println!("\nN = {} captioned photos from registry packages; exhaustive scoring; one photo = {:.2} of R@1.", pairs.len(), 1.0 / pairs.len() as f64);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
