//! `include/weft.h` is what cbindgen makes of `src/ffi.rs` today: a stale
//! header fails here (run with `WEFT_BLESS=1` to rewrite it).

use std::path::Path;

#[test]
fn include_weft_h_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi.rs"))
        .generate()
        .expect("cbindgen reads src/ffi.rs");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = crate_dir.join("../include/weft.h");
    if std::env::var_os("WEFT_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: regenerate it with `WEFT_BLESS=1 cargo test -p weft-capi --test header` and commit it",
        path.display()
    );
}
