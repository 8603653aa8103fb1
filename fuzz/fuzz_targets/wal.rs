//! Write-ahead log replay on arbitrary bytes (dimension 8).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

fn path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("weft-fuzz-wal-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join("wal-0.log")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    std::fs::write(path(), data).unwrap();
    if let Ok(valid_len) = weft::store::fuzz_wal_replay(path(), 8) {
        assert!(valid_len as usize <= data.len());
    }
});
