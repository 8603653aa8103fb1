//! Payload filters from arbitrary JSON text, applied to a payload.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(f) = weft::search::Filter::parse(s) {
            let payload =
                serde_json::json!({"kind": "photo", "year": 2021, "tag": ["cat"], "n": 1.5});
            let _ = f.matches(&payload);
        }
    }
});
