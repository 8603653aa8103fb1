//! Encoders against the Python reference (golden outputs of `models/reference.py`
//! over the committed tiny bundles), and the bad-input matrix.

use std::path::{Path, PathBuf};

use serde_json::Value;
use weft::bundle::{Bundle, Modality};
use weft::encoder::{BundleEncoders, Encoded, EncoderOptions, ImageLimits, Input};
use weft::runtime::{Runtime, RuntimeOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn encoders(name: &str, options: EncoderOptions) -> BundleEncoders {
    let runtime = Runtime::load(&RuntimeOptions::default().with_project_dir(".weft")).unwrap();
    let bundle = Bundle::open(root().join("tests/bundles").join(name)).unwrap();
    BundleEncoders::new(runtime, bundle, options).unwrap()
}

fn cosine_distance(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    1.0 - dot / (na * nb)
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Every golden item of `bundle` is reproduced within 1e-3 cosine distance,
/// for the global embedding and for every real token.
fn check_golden(bundle: &str) {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join(format!("tests/golden/{bundle}.json"))).unwrap(),
    )
    .unwrap();
    let mut enc = encoders(bundle, EncoderOptions::default());
    let items = golden["items"].as_array().unwrap();
    let paths: Vec<PathBuf> = items
        .iter()
        .map(|i| root().join(i["input"].as_str().unwrap()))
        .collect();
    let inputs: Vec<Input<'_>> = items
        .iter()
        .zip(&paths)
        .map(|(item, path)| {
            let s = item["input"].as_str().unwrap();
            match item["modality"].as_str().unwrap() {
                "image" => Input::ImagePath(path),
                "text" => Input::Text(s),
                "molecule" => Input::Smiles(s),
                m => panic!("unknown modality {m}"),
            }
        })
        .collect();
    let results = enc.encode(&inputs);
    let mut checked = 0;
    for ((item, input), result) in items.iter().zip(&inputs).zip(results) {
        let name = item["input"].as_str().unwrap();
        if name.is_empty() {
            // The reference encodes "" as [CLS][SEP]; weft refuses empty text.
            let err = result.unwrap_err().to_string();
            assert!(err.contains("empty"), "{err}");
            continue;
        }
        let got: Encoded = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        let d = cosine_distance(&got.embedding, &floats(&item["embeds"]));
        assert!(d < 1e-3, "{bundle} {name}: embedding cosine distance {d}");
        let tokens = item["tokens"].as_array().unwrap();
        assert_eq!(got.n_tokens, tokens.len(), "{bundle} {name}: token count");
        let dim = got.embedding.len();
        for (t, want) in tokens.iter().enumerate() {
            let d = cosine_distance(&got.tokens[t * dim..(t + 1) * dim], &floats(want));
            assert!(d < 1e-3, "{bundle} {name}: token {t} cosine distance {d}");
        }
        if let Input::ImagePath(_) = input {
            assert_eq!(got.grid, Some([4, 4]));
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} golden items checked");
}

#[test]
fn tiny_vl_matches_the_python_reference() {
    check_golden("tiny-vl");
}

#[test]
fn tiny_mol_matches_the_python_reference() {
    check_golden("tiny-mol");
}

#[test]
fn truncation_is_reported_and_padding_is_per_batch() {
    let mut enc = encoders("tiny-vl", EncoderOptions::default());
    let long = "word ".repeat(20_000); // 100,000 characters
    let results = enc.encode(&[Input::Text("short"), Input::Text(&long)]);
    let short = results[0].as_ref().unwrap();
    assert!(short.truncated.is_none());
    assert_eq!(short.n_tokens, 3, "[CLS] short [SEP], no padding rows");
    let long = results[1].as_ref().unwrap();
    let t = long.truncated.expect("truncation must be reported");
    assert_eq!(t.kept_tokens, 16);
    assert_eq!(long.n_tokens, 16);
    // A long text is tokenized from a prefix: what lies past it is counted
    // in bytes, not tokenized.
    assert!(t.dropped_tokens >= 1, "{t:?}");
    assert!(t.skipped_bytes > 0 && t.skipped_bytes < 100_000, "{t:?}");
}

#[test]
fn a_long_text_is_tokenized_from_a_prefix_with_the_same_kept_tokens() {
    let bundle = Bundle::open(root().join("tests/bundles/tiny-vl")).unwrap();
    let spec = bundle.manifest().text.as_ref().unwrap();
    let tok =
        weft::encoder::SequenceTokenizer::from_spec(bundle.dir(), spec, Modality::Text).unwrap();
    // Whitespace runs, long words and multi-byte characters around the cut.
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for case in 0..200 {
        let mut text = String::new();
        while text.len() < 300 + case * 150 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let word = [
                "cat",
                "é",
                "  ",
                "dog\n",
                "x".repeat((s % 300) as usize).as_str(),
                "🐈",
            ][(s % 6) as usize]
                .to_string();
            text.push_str(&word);
            text.push(' ');
        }
        let full = tok.ids(&text).unwrap();
        let got = tok.tokenize(&text, "t").unwrap();
        assert_eq!(got.ids, full, "case {case}: {} bytes", text.len());
    }
    // One 10 MB word: bounded work (256 KiB at most are tokenized), the
    // same answer. 10 MB of spaces before the text: refused, not scanned.
    let word = "a".repeat(10 << 20);
    let t = tok.tokenize(&word, "word").unwrap();
    assert_eq!(t.ids, tok.ids(&word).unwrap());
    assert!(t.truncated.unwrap().skipped_bytes > 9 << 20);
    let spaces = format!("{}cat", " ".repeat(10 << 20));
    let e = tok.tokenize(&spaces, "spaces").unwrap_err().to_string();
    assert!(
        e.contains("spaces") && e.contains("no text in the first"),
        "{e}"
    );
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-encoder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A PNG claiming 50000 x 50000 pixels: valid signature, IHDR, a small IDAT and IEND.
fn png_bomb_header() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend(data);
        v.extend((data.len() as u32).to_be_bytes());
        v.extend(&body);
        v.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(50_000u32.to_be_bytes());
    ihdr.extend(50_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    // zlib stream of a few zero bytes (stored block)
    chunk(
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x04, 0x00, 0xfb, 0xff, 0, 0, 0, 0, 0, 0x04, 0x00, 0x01,
        ],
    );
    chunk(b"IEND", &[]);
    v
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn bad_items_get_their_own_error_and_the_rest_is_encoded() {
    let good_png = std::fs::read(root().join("tests/data/rgb_64x48.png")).unwrap();
    let jpg = std::fs::read(root().join("tests/data/exif_rot6_64x48.jpg")).unwrap();
    let truncated_jpeg = temp_file("truncated.jpg", &jpg[..jpg.len() / 3]);
    let bomb = temp_file("bomb.png", &png_bomb_header());
    let empty = temp_file("empty.jpg", b"");
    let text_as_jpg = temp_file("notes.jpg", b"this is a text file, not a picture\n");
    let good_path = root().join("tests/data/rgb_64x48.png");
    let long = "x ".repeat(50_000);

    // Batch of 2 so the bad items fall in several batches and the decode worker runs.
    let mut enc = encoders("tiny-mol", EncoderOptions::default().with_max_batch(2));
    let mut vl = encoders("tiny-vl", EncoderOptions::default().with_max_batch(2));

    let image_inputs = [
        Input::ImagePath(&truncated_jpeg),
        Input::ImagePath(&good_path),
        Input::ImagePath(&bomb),
        Input::ImagePath(&empty),
        Input::ImagePath(&text_as_jpg),
        Input::ImageBytes {
            name: "upload.png",
            bytes: &good_png,
        },
        Input::ImagePath(Path::new("/nonexistent/photo.jpg")),
    ];
    let r = vl.encode(&image_inputs);
    let err = |i: usize| r[i].as_ref().unwrap_err().to_string();
    assert!(err(0).contains("truncated.jpg"), "{}", err(0));
    assert!(r[1].is_ok());
    assert!(
        err(2).contains("bomb.png") && err(2).contains("pixels"),
        "{}",
        err(2)
    );
    assert!(
        err(3).contains("empty.jpg") && err(3).contains("empty"),
        "{}",
        err(3)
    );
    assert!(
        err(4).contains("notes.jpg") && err(4).contains("not a supported image"),
        "{}",
        err(4)
    );
    assert!(r[5].is_ok());
    assert!(err(6).contains("/nonexistent/photo.jpg"), "{}", err(6));
    assert_eq!(
        r[1].as_ref().unwrap().embedding,
        r[5].as_ref().unwrap().embedding
    );

    let r = enc.encode(&[
        Input::Text(&long),
        Input::Text(""),
        Input::Smiles("CC(=O)O"),
        Input::Smiles("C1CC§C1"),
        Input::Text("ethanol"),
        Input::Smiles("   "),
    ]);
    assert!(r[0].as_ref().unwrap().truncated.is_some());
    let e1 = r[1].as_ref().unwrap_err().to_string();
    assert!(e1.contains("item 1") && e1.contains("empty text"), "{e1}");
    assert!(r[2].is_ok());
    let e3 = r[3].as_ref().unwrap_err().to_string();
    assert!(
        e3.contains("invalid SMILES") && e3.contains("position 4"),
        "{e3}"
    );
    assert!(r[4].is_ok());
    assert!(r[5]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("empty SMILES"));
}

#[test]
fn results_do_not_depend_on_batch_size() {
    let paths: Vec<PathBuf> = [
        "rgb_64x48.png",
        "alpha_40x40.png",
        "grey_30x50.png",
        "exif_rot6_64x48.jpg",
    ]
    .iter()
    .map(|f| root().join("tests/data").join(f))
    .collect();
    let inputs: Vec<Input<'_>> = paths.iter().map(|p| Input::ImagePath(p)).collect();
    let all = encoders("tiny-vl", EncoderOptions::default()).encode(&inputs);
    let ones = encoders(
        "tiny-vl",
        EncoderOptions::default()
            .with_max_batch(1)
            .with_preprocess_threads(2),
    )
    .encode(&inputs);
    for (a, b) in all.iter().zip(&ones) {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        for (x, y) in a.embedding.iter().zip(&b.embedding) {
            assert!((x - y).abs() < 1e-5);
        }
    }
}

#[test]
fn memory_budget_bounds_the_batch() {
    let runtime = Runtime::load(&RuntimeOptions::default().with_project_dir(".weft")).unwrap();
    let bundle = Bundle::open(root().join("tests/bundles/tiny-vl")).unwrap();
    let small = weft::encoder::ImageEncoder::load(
        &runtime,
        &bundle,
        &EncoderOptions::default().with_memory_budget(1),
    )
    .unwrap();
    assert_eq!(small.batch_size(), 1);
    let big =
        weft::encoder::ImageEncoder::load(&runtime, &bundle, &EncoderOptions::default()).unwrap();
    assert_eq!(big.batch_size(), 32);
}

#[test]
fn file_size_limit_is_enforced() {
    let path = root().join("tests/data/rgb_64x48.png");
    let mut enc = encoders(
        "tiny-vl",
        EncoderOptions::default()
            .with_image_limits(ImageLimits::default().with_max_file_bytes(100)),
    );
    let err = enc.encode(&[Input::ImagePath(&path)])[0]
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rgb_64x48.png") && err.contains("limit"),
        "{err}"
    );
}

#[test]
fn a_modality_the_bundle_lacks_is_a_clear_error() {
    let mut enc = encoders("tiny-vl", EncoderOptions::default());
    let err = enc.encode(&[Input::Smiles("CCO")])[0]
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no molecule encoder"), "{err}");
    assert!(enc.encoder(Modality::Molecule).is_err());
}

#[test]
fn ring_bonds_0_and_percent_00_encode_as_the_same_molecule() {
    let mut enc = encoders("tiny-mol", EncoderOptions::default());
    let out = enc.encode(&[
        Input::Smiles("C1CCCCC1O"),
        Input::Smiles("C0CCCCC0O"),
        Input::Smiles("C%00CCCCC%00O"),
    ]);
    let want = out[0].as_ref().unwrap();
    for got in &out[1..] {
        assert_eq!(got.as_ref().unwrap().embedding, want.embedding);
    }
}
