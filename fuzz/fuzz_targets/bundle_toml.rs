//! Bundle manifests: arbitrary bytes as the bundle.toml of a copy of the
//! tiny test bundle, opened (parsed, validated, files hashed).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

fn dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/bundles/tiny-vl");
        let d = std::env::temp_dir().join(format!("weft-fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        d
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    std::fs::write(dir().join("bundle.toml"), data).unwrap();
    if let Err(e) = weft::bundle::Bundle::open(dir()) {
        assert!(!e.to_string().is_empty());
    }
});
