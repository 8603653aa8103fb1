//! `weft models import` on exports made by the real exporters (optimum,
//! transformers.js's configs, torch.onnx of open_clip, Immich's exporter),
//! tiny random-weight models from `models/fixtures.py`, against goldens from
//! the PyTorch forward pass and the Python tokenizers and processors.
//!
//! Photos come from `.weft/data/photos` (models/build.sh fetches them); the
//! tests that need them are skipped without them unless WEFT_REQUIRE_STARTER
//! is set (scripts/test.sh sets it).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use weft::bundle::{Bundle, Modality, Padding, ZeroShotScoring};
use weft::encoder::image::{decode, fit, ImageLimits};
use weft::encoder::{BundleEncoders, EncoderOptions, Input, SequenceTokenizer};
use weft::import::{import, ImportOptions, ImportReport};
use weft::runtime::{Runtime, RuntimeOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/import").join(name)
}

fn runtime() -> Arc<Runtime> {
    Runtime::load(&RuntimeOptions::default().with_project_dir(".weft")).unwrap()
}

fn photos() -> Option<PathBuf> {
    let dir = root().join(".weft/data/photos");
    if dir.join("chelsea.png").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("WEFT_REQUIRE_STARTER").is_none(),
        "WEFT_REQUIRE_STARTER is set but {} is missing: run models/build.sh",
        dir.display()
    );
    eprintln!("SKIPPED: {} missing (run models/build.sh)", dir.display());
    None
}

struct Imported {
    _dir: TempDir,
    report: ImportReport,
    bundle: Bundle,
}

fn import_fixture(name: &str, options: ImportOptions) -> Imported {
    let dir = TempDir::new(&options.name);
    let report = import(&runtime(), &fixture(name), dir.path(), &options)
        .unwrap_or_else(|e| panic!("import {name}: {e}"));
    let bundle = Bundle::open(&report.bundle).unwrap();
    Imported {
        _dir: dir,
        report,
        bundle,
    }
}

fn golden(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("golden.json")).unwrap())
        .unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn pixels(family: &str, photo: &str) -> Vec<u8> {
    let path = fixture("pixels")
        .join(family)
        .join(format!("{photo}.rgb8.gz"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Pooled embeddings and tokens against PyTorch, for images fed the Python
/// processor's pixels and for texts.
fn check_parity(name: &str, pixel_family: &str, options: ImportOptions) -> Imported {
    let imp = import_fixture(name, options);
    let gold = golden(name);
    let mut enc =
        BundleEncoders::new(runtime(), imp.bundle.clone(), EncoderOptions::default()).unwrap();
    let spec = imp.bundle.image_spec().unwrap().clone();
    let [h, w] = spec.size;
    let photo_dir = photos();
    let mut compared = 0;
    for (photo, want) in gold["photos"].as_object().unwrap() {
        // The whole pipeline from the photo file (weft's decode and resize).
        if let Some(dir) = &photo_dir {
            let path = dir.join(photo);
            let got = enc.encode(&[Input::ImagePath(&path)]).remove(0).unwrap();
            let c = cos(&got.embedding, &floats(&want["embedding"]));
            assert!(
                c >= 0.999,
                "{name} {photo}: from the file, pooled embedding cosine {c} < 0.999"
            );
        }
        if !fixture("pixels")
            .join(pixel_family)
            .join(format!("{photo}.rgb8.gz"))
            .is_file()
        {
            continue;
        }
        compared += 1;
        let px = pixels(pixel_family, photo);
        let got = enc
            .encode(&[Input::Rgb8 {
                name: photo,
                width: w as u32,
                height: h as u32,
                pixels: &px,
            }])
            .remove(0)
            .unwrap();
        let c = cos(&got.embedding, &floats(&want["embedding"]));
        assert!(
            c >= 0.9999,
            "{name} {photo}: pooled embedding cosine {c} < 0.9999"
        );
        if let Some(tokens) = want.get("tokens").and_then(Value::as_array) {
            let dim = got.embedding.len();
            assert_eq!(got.n_tokens, tokens.len(), "{name} {photo}: patch tokens");
            for (t, tw) in tokens.iter().enumerate() {
                let c = cos(&got.tokens[t * dim..(t + 1) * dim], &floats(tw));
                assert!(
                    c >= 0.999,
                    "{name} {photo}: patch token {t} cosine {c} < 0.999"
                );
            }
        } else {
            assert_eq!(
                got.n_tokens, 0,
                "{name}: a global-only image side has no tokens"
            );
        }
    }
    assert!(
        compared > 0,
        "{name}: no photo had the Python processor's pixels"
    );
    for (text, want) in gold["texts"].as_object().unwrap() {
        let got = enc.encode(&[Input::Text(text)]).remove(0).unwrap();
        let c = cos(&got.embedding, &floats(&want["embedding"]));
        assert!(
            c >= 0.9999,
            "{name} {text:?}: pooled embedding cosine {c} < 0.9999"
        );
        let tokens = want["tokens"].as_array().unwrap();
        let dim = got.embedding.len();
        assert_eq!(got.n_tokens, tokens.len(), "{name} {text:?}: text tokens");
        for (t, tw) in tokens.iter().enumerate() {
            let c = cos(&got.tokens[t * dim..(t + 1) * dim], &floats(tw));
            assert!(c >= 0.999, "{name} {text:?}: token {t} cosine {c} < 0.999");
        }
    }
    imp
}

/// The Rust preprocessing of the photos against the Python processor's pixels.
fn check_pixels(imp: &Imported, family: &str) {
    let Some(photos) = photos() else { return };
    let spec = imp.bundle.image_spec().unwrap();
    let dir = fixture("pixels").join(family);
    let mut worst_all = 0;
    let mut worst_jpeg = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let photo = file.trim_end_matches(".rgb8.gz");
        let bytes = std::fs::read(photos.join(photo)).unwrap();
        let img = decode(&bytes, photo, &ImageLimits::default()).unwrap();
        let ours = fit(&img, spec, photo).unwrap().into_raw();
        let theirs = pixels(family, photo);
        assert_eq!(ours.len(), theirs.len(), "{family} {photo}: size");
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        let off = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
        eprintln!(
            "{family} {photo}: max pixel difference {worst}/255, {off} of {} values differ",
            ours.len()
        );
        if photo.ends_with(".jpg") {
            worst_jpeg = worst_jpeg.max(worst);
        } else {
            worst_all = worst_all.max(worst);
        }
    }
    // Lossless sources: the preprocessing (resize, crop) is Pillow's, exactly.
    assert!(
        worst_all <= 1,
        "{family}: a pixel differs by {worst_all}/255 from the Python processor"
    );
    // JPEG: the decoders differ (zune-jpeg here, libjpeg-turbo in Pillow) by
    // up to 2/255 on a fraction of a percent of values before any resize.
    assert!(
        worst_jpeg <= 2,
        "{family}: a JPEG pixel differs by {worst_jpeg}/255"
    );
}

#[test]
fn hf_single_file_clip() {
    let imp = check_parity("hf-clip", "hf-clip", ImportOptions::new("clip"));
    check_pixels(&imp, "hf-clip");
    let m = imp.bundle.manifest();
    assert_eq!(m.zero_shot.scoring, ZeroShotScoring::Softmax);
    assert!(
        (m.zero_shot.logit_scale - 4.2f32.exp()).abs() < 1e-3,
        "logit scale read from the graph"
    );
    assert_eq!(m.zero_shot.templates.len(), 80);
    assert_eq!(imp.bundle.image_spec().unwrap().patch_grid, Some([7, 7]));
    assert!(imp.bundle.has_tokens(Modality::Text) && imp.bundle.has_tokens(Modality::Image));
    // The single file was cut: neither part needs the other's input.
    let text = &imp.bundle.sequence_spec(Modality::Text).unwrap().model;
    assert!(
        text.inputs.iter().all(|i| i.name != "pixel_values"),
        "{:?}",
        text.inputs
    );
    let image = &imp.bundle.image_spec().unwrap().model;
    assert_eq!(image.inputs.len(), 1);
    assert_eq!(imp.report.layout.as_str(), "hf-single");
}

#[test]
fn hf_split_clip_with_decomposed_layer_norm() {
    let imp = check_parity("hf-clip-split", "hf-clip", ImportOptions::new("clip-split"));
    let m = imp.bundle.manifest();
    assert!(
        (m.zero_shot.logit_scale - 4.2f32.exp()).abs() < 1e-3,
        "from model.safetensors"
    );
    assert!(
        imp.bundle.image_spec().unwrap().model.normalize_embeds,
        "split exports are not normalised"
    );
}

#[test]
fn open_clip_dynamo_export_with_external_data() {
    let imp = check_parity("open-clip", "open-clip", ImportOptions::new("oc"));
    check_pixels(&imp, "open-clip");
    let image = &imp.bundle.image_spec().unwrap().model;
    assert!(
        !image.external_data.is_empty(),
        "the dynamo exporter writes .onnx.data files"
    );
    let text = imp.bundle.sequence_spec(Modality::Text).unwrap();
    assert_eq!(text.padding, Padding::MaxLength);
    assert_eq!(text.pad_id, Some(0));
}

#[test]
fn mobileclip_is_global_only_on_the_image_side() {
    let imp = check_parity("mobileclip", "mobileclip", ImportOptions::new("mc"));
    check_pixels(&imp, "mobileclip");
    assert!(!imp.bundle.has_tokens(Modality::Image));
    assert!(imp.bundle.has_tokens(Modality::Text));
    let why = &imp
        .report
        .tokens
        .iter()
        .find(|t| t.modality == Modality::Image)
        .unwrap()
        .detail;
    assert!(why.contains("convolutional"), "{why}");
}

#[test]
fn immich_layout() {
    let imp = check_parity(
        "immich",
        "immich",
        ImportOptions::new("im").with_logit_scale(Some(100.0)),
    );
    check_pixels(&imp, "immich");
    let image = &imp.bundle.image_spec().unwrap().model;
    assert_eq!(image.fixed_batch, Some(1), "Immich exports a batch of one");
    let text = imp.bundle.sequence_spec(Modality::Text).unwrap();
    assert_eq!(text.model.inputs[0].dtype, "int32");
}

#[test]
fn immich_without_a_logit_scale_is_refused_with_what_was_looked_for() {
    let dir = TempDir::new("immich-refused");
    let err = import(
        &runtime(),
        &fixture("immich"),
        dir.path(),
        &ImportOptions::new("x"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--logit-scale") && err.contains("Looked in"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "nothing is left behind: {left:?}");
}

#[test]
fn hf_siglip_single_file() {
    let imp = check_parity("hf-siglip", "hf-siglip", ImportOptions::new("sig"));
    check_pixels(&imp, "hf-siglip");
    let m = imp.bundle.manifest();
    let gold = golden("hf-siglip");
    assert_eq!(m.zero_shot.scoring, ZeroShotScoring::Sigmoid);
    assert!((m.zero_shot.logit_scale - gold["logit_scale"].as_f64().unwrap() as f32).abs() < 1e-3);
    assert!(
        (m.zero_shot.logit_bias.unwrap() - gold["logit_bias"].as_f64().unwrap() as f32).abs()
            < 1e-4
    );
    let text = imp.bundle.sequence_spec(Modality::Text).unwrap();
    assert_eq!(
        text.padding,
        Padding::MaxLength,
        "SigLIP pools the last position"
    );
    assert!(
        imp.report
            .facts
            .iter()
            .any(|f| f.field == "text.padding" && f.source.contains("probed")),
        "the padding was checked by running the graph: {:?}",
        imp.report.facts
    );
    assert_eq!(
        imp.bundle.image_spec().unwrap().resize,
        weft::bundle::ResizeMode::Squash
    );
    assert!(
        !imp.bundle.has_tokens(Modality::Image),
        "SigLIP pools with an attention head"
    );
}

#[test]
fn hf_siglip_split() {
    let imp = check_parity(
        "hf-siglip-split",
        "hf-siglip",
        ImportOptions::new("sig-split"),
    );
    let m = imp.bundle.manifest();
    assert_eq!(m.zero_shot.scoring, ZeroShotScoring::Sigmoid);
    assert!(m.zero_shot.logit_bias.is_some());
}

#[test]
fn tokens_none_makes_a_global_only_bundle() {
    let imp = import_fixture("hf-clip", ImportOptions::new("plain").with_tokens(false));
    assert!(!imp.bundle.has_tokens(Modality::Image));
    assert!(!imp.bundle.has_tokens(Modality::Text));
}

fn check_tokenizer(golden_file: &str, bundle: &Bundle) {
    let gold: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(golden_file)).unwrap()).unwrap();
    let spec = bundle.sequence_spec(Modality::Text).unwrap();
    let tok = SequenceTokenizer::from_spec(bundle.dir(), spec, Modality::Text).unwrap();
    let strings = gold["strings"].as_array().unwrap();
    assert!(strings.len() >= 1000, "{} strings", strings.len());
    let mut wrong = Vec::new();
    for s in strings {
        let text = s["text"].as_str().unwrap();
        let mut want: Vec<u32> = s["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        // open_clip pads with 0 to the context length: compare up to the end token.
        if let Some(pad) = gold.get("pad").and_then(Value::as_u64) {
            while want.len() > 1 && want.last() == Some(&(pad as u32)) {
                want.pop();
            }
        }
        let got = tok.ids(text).unwrap();
        if got != want {
            wrong.push(format!("{text:?}: weft {got:?} python {want:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        strings.len(),
        wrong
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn open_clip_tokenizer_matches_python_on_1000_strings() {
    let imp = import_fixture("open-clip", ImportOptions::new("oc-tok").with_tokens(false));
    check_tokenizer("tokenizer-open-clip.json", &imp.bundle);
}

#[test]
fn siglip_tokenizer_matches_python_on_1000_strings() {
    let imp = import_fixture(
        "hf-siglip",
        ImportOptions::new("sig-tok").with_tokens(false),
    );
    check_tokenizer("tokenizer-siglip.json", &imp.bundle);
}

#[test]
fn hf_clip_tokenizer_matches_python_on_1000_strings() {
    let imp = import_fixture("hf-clip", ImportOptions::new("hf-tok").with_tokens(false));
    check_tokenizer("tokenizer-hf-clip.json", &imp.bundle);
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("weft-import-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The manifest an import writes is fixed by its inputs: byte for byte the
/// committed golden (`WEFT_BLESS=1` rewrites it after a deliberate change).
/// `tests/golden/bundle-v1.toml` is a version-1 manifest; both must keep reading.
#[test]
fn manifests_of_both_formats_match_their_goldens() {
    let imp = import_fixture("hf-clip", ImportOptions::new("golden"));
    // The weft version is in the manifest; the golden holds a placeholder.
    let written = std::fs::read_to_string(imp.report.bundle.join("bundle.toml"))
        .unwrap()
        .replace(env!("CARGO_PKG_VERSION"), "WEFT_VERSION");
    let golden = root().join("tests/golden/bundle-v2.toml");
    if std::env::var_os("WEFT_BLESS").is_some() {
        std::fs::write(&golden, &written).unwrap();
    }
    assert_eq!(
        written,
        std::fs::read_to_string(&golden).unwrap(),
        "the imported manifest changed; if on purpose, rerun with WEFT_BLESS=1"
    );
    let v2: weft::bundle::Manifest = toml::from_str(&written).unwrap();
    assert_eq!(v2.import.as_ref().unwrap().weft_version, "WEFT_VERSION");
    assert_eq!(v2.format_version, 2);
    let text = &v2.text.as_ref().unwrap().model;
    assert!(text.inputs.iter().all(|i| i.role.is_some()));
    assert!(v2
        .import
        .as_ref()
        .unwrap()
        .facts
        .iter()
        .any(|f| f.contains("preprocessor_config.json")));

    let v1_text = std::fs::read_to_string(root().join("tests/golden/bundle-v1.toml")).unwrap();
    assert_eq!(
        v1_text,
        std::fs::read_to_string(root().join("tests/bundles/tiny-vl/bundle.toml")).unwrap(),
        "the version-1 golden is tiny-vl's manifest"
    );
    let v1: weft::bundle::Manifest = toml::from_str(&v1_text).unwrap();
    assert_eq!(v1.format_version, 1);
    let inputs = &v1.text.as_ref().unwrap().model.inputs;
    assert_eq!(inputs[0].role, None);
    assert_eq!(
        inputs[0].resolved_role(false),
        Some(weft::bundle::InputRole::Ids)
    );
    assert_eq!(
        v1.image.as_ref().unwrap().resize_rounding,
        weft::bundle::Rounding::HalfUp
    );
    assert_eq!(v1.zero_shot.scoring, ZeroShotScoring::Softmax);
    Bundle::open(root().join("tests/bundles/tiny-vl")).unwrap();
}

/// The converted tokenizer on CLIP's real 49,408-token vocabulary (taken
/// from the open-clip-torch wheel by models/fetch.py) against open_clip.
#[test]
fn clip_bpe_conversion_matches_open_clip_on_the_full_vocabulary() {
    let vocab = root().join(".weft/src/open_clip/bpe_simple_vocab_16e6.txt.gz");
    if !vocab.is_file() {
        assert!(
            std::env::var_os("WEFT_REQUIRE_STARTER").is_none(),
            "WEFT_REQUIRE_STARTER is set but {} is missing: run models/build.sh",
            vocab.display()
        );
        eprintln!("SKIPPED: {} missing (run models/build.sh)", vocab.display());
        return;
    }
    let (json, sizes) = weft::import::tokenizer::clip_bpe_json(&vocab).unwrap();
    assert_eq!(sizes.size, 49408);
    assert_eq!((sizes.start, sizes.end), (49406, 49407));
    let dir = TempDir::new("full-vocab");
    std::fs::write(dir.path().join("tokenizer.json"), json).unwrap();
    let spec: weft::bundle::SequenceSpec = toml::from_str(
        r#"
        model = "text.onnx"
        model_sha256 = "00"
        dim = 512
        inputs = [{ name = "text", dtype = "int64", role = "ids" }]
        embeds_output = "text_embeds"
        tokenizer = "tokenizer.json"
        tokenizer_sha256 = "00"
        max_length = 77
        padding = "max_length"
        pad_id = 0
        text_cleanup = "clip"
        "#,
    )
    .unwrap();
    let tok = SequenceTokenizer::from_spec(dir.path(), &spec, Modality::Text).unwrap();
    let gold: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tokenizer-open-clip-full.json")).unwrap(),
    )
    .unwrap();
    let strings = gold["strings"].as_array().unwrap();
    assert!(strings.len() >= 1000);
    let wrong: Vec<String> = strings
        .iter()
        .filter_map(|s| {
            let text = s["text"].as_str().unwrap();
            let want: Vec<u32> = s["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            let got = tok.ids(text).unwrap();
            (got != want).then(|| format!("{text:?}: weft {got:?} open_clip {want:?}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        strings.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
}
