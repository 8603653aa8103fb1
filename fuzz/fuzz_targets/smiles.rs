//! The SMILES parser and ring-label renumbering on arbitrary text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Err(e) = weft::chem::parse(s) {
            assert!(e.position <= s.chars().count());
        }
        let renumbered = weft::chem::renumber_ring_closures(s);
        if weft::chem::parse(s).is_ok() {
            // Renumbering keeps a valid SMILES valid.
            assert!(
                weft::chem::parse(&renumbered).is_ok(),
                "{s:?} -> {renumbered:?}"
            );
        }
    }
});
