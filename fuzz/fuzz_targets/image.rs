//! Image decoding through weft's limits (format sniffing, completeness
//! checks, decoders, orientation, alpha).
#![no_main]

use weft::encoder::ImageLimits;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = ImageLimits::default().with_max_pixels(4_000_000);
    match weft::encoder::image::decode(data, "fuzz", &limits) {
        Ok(img) => assert!(u64::from(img.width()) * u64::from(img.height()) <= 4_000_000),
        Err(e) => assert!(e.to_string().contains("fuzz")),
    }
});
