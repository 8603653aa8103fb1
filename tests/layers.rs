//! Layers point down (ARCHITECTURE.md): a module may use only modules of a
//! lower layer. This reads every `crate::` path in the library's sources
//! (comments left out) and fails naming the file, line and both layers.

use std::path::{Path, PathBuf};

/// The layers, lowest first. A module not listed fails the test, so a new
/// module is placed on purpose.
const LAYERS: &[&[&str]] = &[
    &["modality", "chem", "onnx", "cache"],
    &["error", "Error", "ErrorKind", "Result", "OnnxError"],
    &["sys", "handle_sigbus"],
    &["format"],
    &["runtime", "bundle"],
    &["score"],
    &["index"],
    &["store"],
    &["encoder"],
    &["search", "ingest", "import", "doctor"],
    &["classify"],
    &["engine"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_only_use_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        // The faces (CLI, daemon) are a separate crate's worth of code: they
        // use `weft::`, not `crate::`; lib.rs only declares the modules.
        if matches!(module.as_str(), "cli" | "main" | "lib") {
            continue;
        }
        let Some(own) = layer(&module) else {
            problems.push(format!(
                "{}: module `{module}` is in no layer",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let used: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used.is_empty() || used == module {
                    continue;
                }
                checked += 1;
                match layer(&used) {
                    Some(l) if l < own => {}
                    Some(l) => problems.push(format!(
                        "{}:{}: `{module}` (layer {own}) uses `crate::{used}` (layer {l})",
                        rel.display(),
                        i + 1
                    )),
                    None => problems.push(format!(
                        "{}:{}: `crate::{used}` is in no layer",
                        rel.display(),
                        i + 1
                    )),
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} crate:: paths found");
    assert!(
        problems.is_empty(),
        "imports that point up:\n{}",
        problems.join("\n")
    );
}

/// The faces (CLI, daemon, C and Python bindings) wire nothing themselves: runtime, bundles,
/// encoders and collections come from `weft::Engine`.
#[test]
fn the_faces_wire_nothing_themselves() {
    let wiring = [
        "Runtime::load",
        "Bundle::open",
        "BundleEncoders::new",
        "Classifier::new",
        "Classifier::with_cache",
        "Collection::create",
        "Collection::open",
        "Collection::repair",
        "bundle::resolve",
        "bundle::scan",
        "ingest::sync",
        "tag_collection",
        "\"MANIFEST\"",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = vec![src.join("main.rs")];
    rust_files(&src.join("cli"), &mut files);
    // The bindings are faces too.
    rust_files(&root.join("capi/src"), &mut files);
    rust_files(&root.join("python/src"), &mut files);
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for w in wiring {
                if code.contains(w) {
                    found.push(format!("{}:{}: {w}", file.display(), i + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "wiring outside the Engine:\n{}",
        found.join("\n")
    );
}
