//! Bounded fuzzing on stable: deterministic random and mutated inputs for
//! every parser that reads untrusted bytes (SMILES, the write-ahead log,
//! filter JSON, bundle.toml, images). Each target runs a fixed number of
//! cases (`WEFT_FUZZ_CASES` scales them) and passes when nothing panics
//! and every outcome is a value or a named error.

use std::path::{Path, PathBuf};

use weft::bundle::{Bundle, Modality};
use weft::encoder::image::decode;
use weft::encoder::ImageLimits;
use weft::search::Filter;
use weft::store::{Collection, CollectionConfig, NewItem};

mod common;

use common::{cases, copy_dir, mutate, Rng};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn fuzz_smiles_parser() {
    let alphabet: Vec<char> = "CNOSPFIBrcnosp[]()=#$:/\\@+-%0123456789H.*"
        .chars()
        .collect();
    let seeds = [
        "CCO",
        "c1ccccc1",
        "C[C@@H](N)C(=O)O",
        "C%10CC%10",
        "[NH4+].[Cl-]",
        "C0CC0",
    ];
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..cases(20_000) {
        let s: String = if rng.below(2) == 0 {
            (0..rng.below(40))
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect()
        } else {
            let seed = seeds[rng.below(seeds.len())].as_bytes();
            String::from_utf8_lossy(&mutate(&mut rng, seed)).into_owned()
        };
        if let Err(e) = weft::chem::parse(&s) {
            assert!(e.position <= s.chars().count(), "{s:?}: {e}");
        }
    }
}

fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut r = Rng(seed | 1);
    let v: Vec<f32> = (0..dim)
        .map(|_| (r.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-fuzz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn fuzz_wal_replay() {
    let dim = 8;
    let dir = tempdir("wal");
    {
        let c = Collection::create(&dir, CollectionConfig::new("t", "h", dim)).unwrap();
        for batch in 0..3u64 {
            for i in 0..4u64 {
                let n = batch * 4 + i;
                let tokens: Vec<f32> = (0..2).flat_map(|t| vector(n * 7 + t, dim)).collect();
                c.add(
                    NewItem::new(format!("i{n}"), Modality::Text, vector(n, dim))
                        .with_tokens(tokens, None)
                        .with_payload(serde_json::json!({ "n": n })),
                )
                .unwrap();
            }
            c.delete(&format!("i{}", batch * 4)).unwrap();
            c.commit().unwrap();
        }
    }
    let seed = std::fs::read(dir.join("wal-0.log")).unwrap();
    let copy = tempdir("wal-copy");
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..cases(1_500) {
        copy_dir(&dir, &copy);
        let bytes = mutate(&mut rng, &seed);
        std::fs::write(copy.join("wal-0.log"), &bytes).unwrap();
        match Collection::open(&copy) {
            Err(e) => assert!(e.to_string().contains("wal-0.log"), "{e}"),
            Ok(c) => {
                assert!(c.snapshot().len() <= 9);
                if c.info().damaged.is_some() {
                    assert!(Collection::open_writer(&copy).is_err());
                    assert_eq!(std::fs::read(copy.join("wal-0.log")).unwrap(), bytes);
                }
            }
        }
    }
}

#[test]
fn fuzz_filter_json() {
    let seeds = [
        r#"{"kind": "photo", "year": {"gte": 2020}, "tag": {"in": ["cat", "dog"]}}"#,
        r#"{"a": {"lt": 3, "gt": 1}, "b": {"ne": null}, "c": true}"#,
        r#"{"and": [{"x": 1}, {"or": [{"y": 2}, {"not": {"z": 3}}]}]}"#,
    ];
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..cases(20_000) {
        let seed = seeds[rng.below(seeds.len())].as_bytes();
        let text = String::from_utf8_lossy(&mutate(&mut rng, seed)).into_owned();
        if let Ok(f) = Filter::parse(&text) {
            let payload = serde_json::json!({"kind": "photo", "year": 2021, "tag": "cat", "a": 2});
            let _ = f.matches(&payload);
        }
    }
    // Deep nesting is an error, not a stack overflow.
    let deep = format!("{}{}", "{\"not\":".repeat(100_000), "}".repeat(100_000));
    let _ = Filter::parse(&deep);
}

#[test]
fn fuzz_bundle_manifest() {
    let src = Path::new(ROOT).join("tests/bundles/tiny-vl");
    let seed = std::fs::read(src.join("bundle.toml")).unwrap();
    let copy = tempdir("bundle");
    copy_dir(&src, &copy);
    let mut rng = Rng(0x5eed_0004);
    for _ in 0..cases(600) {
        let bytes = mutate(&mut rng, &seed);
        std::fs::write(copy.join("bundle.toml"), &bytes).unwrap();
        if let Err(e) = Bundle::open(&copy) {
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn fuzz_image_decoders() {
    let limits = ImageLimits::default().with_max_pixels(4_000_000);
    let seeds: Vec<(&str, Vec<u8>)> = ["rgb_64x48.png", "exif_rot6_64x48.jpg", "alpha_40x40.png"]
        .iter()
        .filter_map(|n| {
            std::fs::read(Path::new(ROOT).join("tests/data").join(n))
                .ok()
                .map(|b| (*n, b))
        })
        .collect();
    assert!(!seeds.is_empty());
    let mut rng = Rng(0x5eed_0005);
    for _ in 0..cases(2_000) {
        let (name, seed) = &seeds[rng.below(seeds.len())];
        let bytes = mutate(&mut rng, seed);
        match decode(&bytes, name, &limits) {
            Ok(img) => assert!(u64::from(img.width()) * u64::from(img.height()) <= 4_000_000),
            Err(e) => assert!(e.to_string().contains(name), "{e}"),
        }
    }
}
