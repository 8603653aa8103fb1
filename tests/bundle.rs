//! Bundle verification through the public API.

use std::path::{Path, PathBuf};

use weft::bundle::{Bundle, Modality};
use weft::encoder::{EncoderOptions, SequenceEncoder};
use weft::runtime::{Runtime, RuntimeOptions};
use weft::Error;

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bundles")
        .join(name)
}

/// A private copy of a tiny bundle to damage.
fn copy_of(name: &str, tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("weft-bundle-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(tiny(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    dst
}

fn edit_manifest(dir: &Path, from: &str, to: &str) {
    let p = dir.join("bundle.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "manifest has no `{from}`");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn tiny_bundles_load_and_report_their_encoders() {
    let vl = Bundle::open(tiny("tiny-vl")).unwrap();
    assert_eq!(vl.name(), "tiny-vl");
    assert_eq!(vl.modalities(), [Modality::Text, Modality::Image]);
    assert_eq!(vl.dim(), 32);
    assert!(vl.has_tokens(Modality::Image));
    assert_eq!(vl.hash().len(), 64);
    let mol = Bundle::open(tiny("tiny-mol")).unwrap();
    assert_eq!(mol.modalities(), [Modality::Text, Modality::Molecule]);
}

#[test]
fn a_changed_model_file_is_refused_by_name() {
    let dir = copy_of("tiny-vl", "changed");
    let model = dir.join("image.onnx");
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&model, bytes).unwrap();
    let err = Bundle::open(&dir).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    assert!(err.to_string().contains("image.onnx"), "{err}");
}

#[test]
fn a_changed_tokenizer_is_refused_by_name() {
    let dir = copy_of("tiny-vl", "tok");
    let tok = dir.join("tokenizer.json");
    let mut text = std::fs::read_to_string(&tok).unwrap();
    text.push(' ');
    std::fs::write(&tok, text).unwrap();
    let err = Bundle::open(&dir).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("checksum"),
        "{err}"
    );
}

#[test]
fn an_unknown_model_file_is_refused_by_name() {
    let dir = copy_of("tiny-vl", "unknown");
    std::fs::copy(dir.join("text.onnx"), dir.join("extra.onnx")).unwrap();
    let err = Bundle::open(&dir).unwrap_err().to_string();
    assert!(
        err.contains("extra.onnx") && err.contains("unknown model file"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let dir = copy_of("tiny-vl", "missing");
    std::fs::remove_file(dir.join("text.onnx")).unwrap();
    let err = Bundle::open(&dir).unwrap_err().to_string();
    assert!(err.contains("text.onnx"), "{err}");
}

#[test]
fn manifest_errors_are_specific() {
    let dir = copy_of("tiny-vl", "version");
    edit_manifest(&dir, "format_version = 1", "format_version = 3");
    let err = Bundle::open(&dir).unwrap_err().to_string();
    assert!(
        err.contains("format_version 3") && err.contains("bundle.toml"),
        "{err}"
    );

    // Version 2 maps inputs by role: a version-1 manifest relabelled is refused by name.
    let dir = copy_of("tiny-vl", "v2-roles");
    edit_manifest(&dir, "format_version = 1", "format_version = 2");
    let err = Bundle::open(&dir).unwrap_err().to_string();
    assert!(
        err.contains("input_ids") && err.contains("no role"),
        "{err}"
    );

    let dir = copy_of("tiny-vl", "sigmoid");
    edit_manifest(
        &dir,
        "logit_scale = 100.0",
        "logit_scale = 100.0\nscoring = \"sigmoid\"",
    );
    let err = Bundle::open(&dir).unwrap_err().to_string();
    assert!(err.contains("logit_bias"), "{err}");

    let dir = copy_of("tiny-vl", "template");
    edit_manifest(&dir, "\"a photo of a {}.\"", "\"a photo\"");
    let err = Bundle::open(&dir).unwrap_err().to_string();
    assert!(err.contains("placeholder"), "{err}");

    let dir = copy_of("tiny-vl", "escape");
    edit_manifest(&dir, "model = \"text.onnx\"", "model = \"../text.onnx\"");
    let err = Bundle::open(&dir).unwrap_err().to_string();
    assert!(err.contains("plain file name"), "{err}");

    let dir = copy_of("tiny-vl", "dims");
    edit_manifest(&dir, "dim = 32", "dim = 16");
    let err = Bundle::open(&dir).unwrap_err().to_string();
    assert!(err.contains("share one space"), "{err}");
}

#[test]
fn session_io_is_checked_against_the_manifest() {
    let runtime = Runtime::load(&RuntimeOptions::default().with_project_dir(".weft")).unwrap();
    let cases = [
        (
            "embeds_output = \"embeds\"",
            "embeds_output = \"pooled\"",
            "`pooled`",
        ),
        (
            "{ name = \"input_ids\", dtype = \"int64\" }",
            "{ name = \"input_ids\", dtype = \"int32\" }",
            "input_ids",
        ),
        ("dim = 32", "dim = 64", "dimension 32"),
    ];
    for (i, (from, to, expect)) in cases.iter().enumerate() {
        let dir = copy_of("tiny-mol", &format!("io{i}"));
        // Change the text encoder only: replace in the [text] table and the
        // matching molecule value so that the dims stay consistent.
        let p = dir.join("bundle.toml");
        let text = std::fs::read_to_string(&p).unwrap().replace(from, to);
        std::fs::write(&p, text).unwrap();
        let bundle = Bundle::open(&dir).unwrap();
        let err = SequenceEncoder::load(
            &runtime,
            &bundle,
            Modality::Text,
            &EncoderOptions::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(expect) && msg.contains("text.onnx"),
            "case {i}: {msg}"
        );
    }
}
