//! Image preprocessing: decode with limits, orient, flatten alpha, resize,
//! crop, normalise into an NCHW `f32` slice, as the bundle's [`ImageSpec`] says.
//!
//! Each step is a small function tested without ONNX. The reference is
//! Pillow (`models/reference.py`, and every Python processor the importer
//! matches): `exif_transpose`, alpha composited on white, `resize` with the
//! manifest's filter (Pillow's own convolution, ported in `resample.rs`;
//! nearest neighbour through `fast_image_resize`), then a centre crop.

use std::io::Cursor;
use std::path::Path;

use fast_image_resize as fr;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::bundle::{AlphaMode, ChannelOrder, ImageSpec, Interpolation, ResizeMode, Rounding};
use crate::error::{Error, Result};

/// Limits that protect against hostile or broken files.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ImageLimits {
    /// Largest file accepted, in bytes. Default 64 MiB.
    pub max_file_bytes: u64,
    /// Largest decoded image, in pixels (width x height). Default 100 megapixels.
    pub max_pixels: u64,
    /// Largest decoded image, in bytes: pixels x channels x bytes per
    /// channel, as the decoder holds it before conversion to RGB8 (a 16-bit
    /// RGBA image takes 8 bytes a pixel). Default 512 MiB.
    pub max_decoded_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_file_bytes: 64 << 20,
            max_pixels: 100_000_000,
            max_decoded_bytes: 512 << 20,
        }
    }
}

impl ImageLimits {
    /// Sets the file size limit in bytes.
    pub fn with_max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    /// Sets the pixel limit.
    pub fn with_max_pixels(mut self, pixels: u64) -> Self {
        self.max_pixels = pixels;
        self
    }

    /// Sets the decoded-bytes limit.
    pub fn with_max_decoded_bytes(mut self, bytes: u64) -> Self {
        self.max_decoded_bytes = bytes;
        self
    }
}

/// What decoding an image will cost, read from its header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes the decoder allocates: pixels x channels x bytes per channel.
    pub decoded_bytes: u64,
    /// Channels of the decoded image (1 grey to 4 RGBA).
    pub channels: u8,
    /// Bits per channel of the decoded image (8, 16 or 32).
    pub bits_per_channel: u8,
}

impl HeaderInfo {
    /// Width x height.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// The header of an encoded image (no pixel data is decoded); `None` when
/// the format is unknown or the header does not parse (the decoder then
/// names the problem).
pub fn header_info(bytes: &[u8]) -> Option<HeaderInfo> {
    let decoder = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_decoder()
        .ok()?;
    Some(info_of(&decoder))
}

fn info_of(decoder: &impl ImageDecoder) -> HeaderInfo {
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    let channels = color.channel_count();
    HeaderInfo {
        width,
        height,
        decoded_bytes: decoder.total_bytes(),
        channels,
        bits_per_channel: color.bytes_per_pixel() * 8 / channels.max(1),
    }
}

/// Reads a file within the size limit.
pub(crate) fn read_limited(path: &Path, limits: &ImageLimits) -> Result<Vec<u8>> {
    let item = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| invalid(&item, format!("cannot read: {e}")))?;
    if meta.len() > limits.max_file_bytes {
        return Err(invalid(
            &path.display().to_string(),
            format!(
                "file is {} bytes, over the limit of {} bytes",
                meta.len(),
                limits.max_file_bytes
            ),
        ));
    }
    std::fs::read(path).map_err(|e| invalid(&item, format!("cannot read: {e}")))
}

fn invalid(item: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        item: item.to_string(),
        reason: reason.into(),
    }
}

/// Checks that a file's structure runs to its end marker: a JPEG's scans end
/// in EOI, a PNG's chunks reach IEND, a WebP holds the bytes its RIFF header
/// counts. Other formats are left to their decoders, which fail on short data.
fn complete(format: image::ImageFormat, b: &[u8]) -> std::result::Result<(), String> {
    match format {
        image::ImageFormat::Jpeg => jpeg_complete(b),
        image::ImageFormat::Png => png_complete(b),
        image::ImageFormat::WebP => {
            let want = b
                .get(4..8)
                .map(|s| u64::from(u32::from_le_bytes(s.try_into().expect("4"))) + 8);
            match want {
                Some(want) if want <= b.len() as u64 => Ok(()),
                Some(want) => Err(format!(
                    "the RIFF header counts {want} bytes, the file has {}",
                    b.len()
                )),
                None => Err("no RIFF header".into()),
            }
        }
        _ => Ok(()),
    }
}

/// Walks a JPEG's markers to its end-of-image marker.
fn jpeg_complete(b: &[u8]) -> std::result::Result<(), String> {
    let short = |at: usize, what: &str| {
        Err(format!(
            "{what} at byte {at} runs past the end ({} bytes)",
            b.len()
        ))
    };
    let mut i = 2; // after SOI
    loop {
        // Markers may be preceded by fill bytes 0xFF.
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (b.get(i), b.get(i + 1)) else {
            return if i >= b.len() {
                Err(format!("no end-of-image marker in {} bytes", b.len()))
            } else {
                Err(format!("no marker at byte {i}"))
            };
        };
        match marker {
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                let Some(len) = b.get(i + 2..i + 4) else {
                    return short(i, "a marker segment");
                };
                let end = i + 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
                if end > b.len() {
                    return short(i, "a marker segment");
                }
                i = end;
                if marker == 0xDA {
                    // Entropy-coded data: runs until a marker that is not
                    // a stuffed 0xFF00 or a restart marker.
                    loop {
                        match (b.get(i), b.get(i + 1)) {
                            (None, _) | (Some(&0xFF), None) => {
                                return Err(format!(
                                    "the image data ends without an end-of-image marker ({} bytes)",
                                    b.len()
                                ))
                            }
                            (Some(&0xFF), Some(&(0x00 | 0xD0..=0xD7))) => i += 2,
                            // A fill byte before a marker.
                            (Some(&0xFF), Some(&0xFF)) => i += 1,
                            (Some(&0xFF), Some(_)) => break,
                            _ => i += 1,
                        }
                    }
                }
            }
        }
    }
}

/// Walks a PNG's chunks to IEND.
fn png_complete(b: &[u8]) -> std::result::Result<(), String> {
    let mut i = 8; // after the signature
    loop {
        let Some(head) = b.get(i..i + 8) else {
            return Err(format!("no IEND chunk in {} bytes", b.len()));
        };
        let len = u32::from_be_bytes(head[..4].try_into().expect("4")) as usize;
        let end = i + 12 + len;
        if end > b.len() {
            return Err(format!(
                "the chunk at byte {i} runs past the end ({} bytes)",
                b.len()
            ));
        }
        if &head[4..8] == b"IEND" {
            return Ok(());
        }
        i = end;
    }
}

/// Decodes an image (first frame of a GIF), applies its EXIF orientation and
/// returns 8-bit RGB with alpha composited on white. `item` names it in errors.
pub fn decode(bytes: &[u8], item: &str, limits: &ImageLimits) -> Result<RgbImage> {
    decode_with(bytes, item, limits, AlphaMode::White)
}

/// [`decode`], with transparency handled as `alpha` says.
pub fn decode_with(
    bytes: &[u8],
    item: &str,
    limits: &ImageLimits,
    alpha: AlphaMode,
) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(invalid(item, "empty file"));
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(invalid(
            item,
            format!(
                "{} bytes, over the limit of {} bytes",
                bytes.len(),
                limits.max_file_bytes
            ),
        ));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| invalid(item, e.to_string()))?;
    let Some(format) = reader.format() else {
        return Err(invalid(
            item,
            "not a supported image (JPEG, PNG, WebP, GIF, BMP, TIFF)",
        ));
    };
    // The decoders fill a short file's missing rows with grey and say
    // nothing; a cut file must be refused, as Pillow refuses it.
    complete(format, bytes).map_err(|why| invalid(item, format!("truncated file: {why}")))?;
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| invalid(item, format!("cannot decode: {e}")))?;
    let info = info_of(&decoder);
    let (w, h, pixels) = (info.width, info.height, info.pixels());
    if pixels > limits.max_pixels {
        return Err(invalid(
            item,
            format!(
                "{w}x{h} = {pixels} pixels, over the limit of {} (decompression bomb guard)",
                limits.max_pixels
            ),
        ));
    }
    if info.decoded_bytes > limits.max_decoded_bytes {
        return Err(invalid(
            item,
            format!(
                "{w}x{h} pixels x {} channels x {} bits decode to {} bytes, over the limit of {} bytes (decompression bomb guard)",
                info.channels, info.bits_per_channel, info.decoded_bytes, limits.max_decoded_bytes
            ),
        ));
    }
    if pixels == 0 {
        return Err(invalid(item, "image has no pixels"));
    }
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder)
        .map_err(|e| invalid(item, format!("cannot decode: {e}")))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(match alpha {
        AlphaMode::White => to_rgb_on_white(img),
        // Pillow's `convert("RGB")`: the colour channels, transparency ignored.
        AlphaMode::Drop => img.to_rgb8(),
    })
}

/// Any colour type to RGB8; alpha is composited on white (grey, 16-bit and float are converted).
pub fn to_rgb_on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (src, dst) in rgba.pixels().zip(out.pixels_mut()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            // round(c * a/255 + 255 * (1 - a/255)), in integers
            let v = u32::from(src[c]) * a + 255 * (255 - a);
            dst[c] = ((v + 127) / 255) as u8;
        }
    }
    out
}

/// Size after scaling the shortest side to `shortest`; the long side is
/// `long * shortest / short` rounded as `rounding` says, in exact integers
/// (version-1 bundles: half up, as `models/reference.py`; transformers and
/// torchvision: down).
pub(crate) fn shortest_side_size(w: u32, h: u32, shortest: u32, rounding: Rounding) -> (u32, u32) {
    if rounding == Rounding::FloatRatio {
        let long =
            |a: u32, b: u32| ((f64::from(a) / f64::from(b)) * f64::from(shortest)).max(1.0) as u32;
        return if w < h {
            (shortest, long(h, w))
        } else {
            (long(w, h), shortest)
        };
    }
    let (w, h, s) = (u64::from(w), u64::from(h), u64::from(shortest));
    if w <= h {
        (s as u32, rounding.div(h * s, w).max(1) as u32)
    } else {
        (rounding.div(w * s, h).max(1) as u32, s as u32)
    }
}

/// Top-left of a centred crop: half the excess, rounded as `rounding` says
/// (down in transformers and version-1 bundles; half to even in torchvision).
pub(crate) fn centre_crop_origin(
    w: u32,
    h: u32,
    cw: u32,
    ch: u32,
    rounding: Rounding,
) -> (u32, u32) {
    let half = |excess: u32| rounding.div(u64::from(excess), 2) as u32;
    (half(w.saturating_sub(cw)), half(h.saturating_sub(ch)))
}

fn filter(interpolation: Interpolation) -> fr::ResizeAlg {
    match interpolation {
        Interpolation::Nearest => fr::ResizeAlg::Nearest,
        Interpolation::Bilinear => fr::ResizeAlg::Convolution(fr::FilterType::Bilinear),
        Interpolation::Bicubic => fr::ResizeAlg::Convolution(fr::FilterType::CatmullRom),
        Interpolation::Lanczos3 => fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3),
    }
}

fn resize(
    img: &RgbImage,
    w: u32,
    h: u32,
    interpolation: Interpolation,
    item: &str,
) -> Result<RgbImage> {
    if img.width() == w && img.height() == h {
        return Ok(img.clone());
    }
    if let Some(out) = super::resample::resize_rgb8(
        img.as_raw(),
        img.width() as usize,
        img.height() as usize,
        w as usize,
        h as usize,
        interpolation,
    ) {
        return RgbImage::from_raw(w, h, out)
            .ok_or_else(|| invalid(item, "resize produced a wrong buffer"));
    }
    let mut dst = fr::images::Image::new(w, h, fr::PixelType::U8x3);
    let options = fr::ResizeOptions::new().resize_alg(filter(interpolation));
    fr::Resizer::new()
        .resize(img, &mut dst, &options)
        .map_err(|e| invalid(item, format!("resize failed: {e}")))?;
    RgbImage::from_raw(w, h, dst.into_vec())
        .ok_or_else(|| invalid(item, "resize produced a wrong buffer"))
}

/// Resizes and crops to the model's input size (RGB8, `size` = `[height, width]`).
pub fn fit(img: &RgbImage, spec: &ImageSpec, item: &str) -> Result<RgbImage> {
    let (th, tw) = (spec.size[0] as u32, spec.size[1] as u32);
    match spec.resize {
        ResizeMode::Squash => resize(img, tw, th, spec.interpolation, item),
        ResizeMode::ShortestSideCrop => {
            let shortest = spec.resize_shortest.map_or(th.min(tw), |s| s as u32);
            let (nw, nh) =
                shortest_side_size(img.width(), img.height(), shortest, spec.resize_rounding);
            let (cw, ch) = (tw.min(nw), th.min(nh));
            let (left, top) = centre_crop_origin(nw, nh, cw, ch, spec.crop_rounding);
            if cw == tw && ch == th && (nw, nh) != img.dimensions() {
                // Only the pixels the crop keeps.
                let size = |v: u32| v as usize;
                if let Some(out) = super::resample::resize_crop_rgb8(
                    img.as_raw(),
                    (size(img.width()), size(img.height())),
                    (size(nw), size(nh)),
                    (size(left), size(top), size(cw), size(ch)),
                    spec.interpolation,
                ) {
                    return RgbImage::from_raw(cw, ch, out)
                        .ok_or_else(|| invalid(item, "resize produced a wrong buffer"));
                }
            }
            let resized = resize(img, nw, nh, spec.interpolation, item)?;
            let cropped = image::imageops::crop_imm(&resized, left, top, cw, ch).to_image();
            if cw == tw && ch == th {
                Ok(cropped)
            } else {
                // The crop is larger than the resized image (resize_shortest < size):
                // torchvision pads with zeros; we keep it simple and resize up.
                resize(&cropped, tw, th, spec.interpolation, item)
            }
        }
    }
}

/// Writes `img` (already at the model size) as normalised planar channels into `out` (`3*h*w`).
pub fn normalise_into(img: &RgbImage, spec: &ImageSpec, out: &mut [f32]) {
    let plane = (img.width() * img.height()) as usize;
    debug_assert_eq!(out.len(), 3 * plane);
    let order: [usize; 3] = match spec.channel_order {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    };
    let mul: [f32; 3] = std::array::from_fn(|c| spec.scale / spec.std[c]);
    let add: [f32; 3] = std::array::from_fn(|c| -spec.mean[c] / spec.std[c]);
    for (i, px) in img.pixels().enumerate() {
        for (c, &src) in order.iter().enumerate() {
            out[c * plane + i] = f32::from(px[src]) * mul[c] + add[c];
        }
    }
}

/// The whole chain for one encoded file: decode, fit, normalise into `out`.
pub fn preprocess(
    bytes: &[u8],
    item: &str,
    spec: &ImageSpec,
    limits: &ImageLimits,
    out: &mut [f32],
) -> Result<()> {
    let rgb = decode_with(bytes, item, limits, spec.alpha)?;
    let fitted = fit(&rgb, spec, item)?;
    normalise_into(&fitted, spec, out);
    Ok(())
}

/// The chain for decoded RGB8 pixels (`width * height * 3` bytes): fit, normalise into `out`.
pub fn preprocess_rgb8(
    width: u32,
    height: u32,
    pixels: &[u8],
    item: &str,
    spec: &ImageSpec,
    limits: &ImageLimits,
    out: &mut [f32],
) -> Result<()> {
    let count = u64::from(width) * u64::from(height);
    if count == 0 {
        return Err(invalid(item, "image has no pixels"));
    }
    if count > limits.max_pixels {
        return Err(invalid(
            item,
            format!(
                "{width}x{height} = {count} pixels, over the limit of {}",
                limits.max_pixels
            ),
        ));
    }
    if pixels.len() as u64 != count * 3 {
        return Err(invalid(
            item,
            format!(
                "{} bytes of pixels for {width}x{height} RGB8 (expected {})",
                pixels.len(),
                count * 3
            ),
        ));
    }
    let img = RgbImage::from_raw(width, height, pixels.to_vec())
        .ok_or_else(|| invalid(item, "pixel buffer does not match its size"))?;
    let fitted = fit(&img, spec, item)?;
    normalise_into(&fitted, spec, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ImageSpec {
        toml::from_str(
            r#"
            model = "m.onnx"
            model_sha256 = "00"
            dim = 4
            inputs = [{ name = "pixel_values", dtype = "float32" }]
            embeds_output = "embeds"
            size = [4, 4]
            resize = "shortest_side_crop"
            resize_shortest = 4
            interpolation = "bilinear"
            scale = 0.00392156862745098
            mean = [0.5, 0.5, 0.5]
            std = [0.5, 0.5, 0.5]
            channel_order = "rgb"
            "#,
        )
        .unwrap()
    }

    fn png(img: &DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn sizes_follow_the_reference() {
        let up = Rounding::HalfUp;
        assert_eq!(shortest_side_size(640, 480, 256, up), (341, 256));
        assert_eq!(shortest_side_size(480, 640, 256, up), (256, 341));
        assert_eq!(shortest_side_size(100, 100, 256, up), (256, 256));
        assert_eq!(
            centre_crop_origin(341, 256, 224, 224, Rounding::Floor),
            (58, 16)
        );
        assert_eq!(shortest_side_size(3, 2, 4, up), (6, 4));
        assert_eq!(
            centre_crop_origin(256, 256, 224, 224, Rounding::Floor),
            (16, 16)
        );
    }

    #[test]
    fn immich_rounds_in_doubles() {
        // int((115 / 112) * 224) = 229 in doubles; exactly it is 230.
        assert_eq!(
            shortest_side_size(112, 115, 224, Rounding::FloatRatio),
            (224, 229)
        );
        assert_eq!(
            shortest_side_size(112, 115, 224, Rounding::Floor),
            (224, 230)
        );
    }

    #[test]
    fn processors_round_differently() {
        // 451x300 (chelsea) to 224: 336.7 -> transformers int() 336, half up 337.
        assert_eq!(
            shortest_side_size(451, 300, 224, Rounding::Floor),
            (336, 224)
        );
        assert_eq!(
            shortest_side_size(451, 300, 224, Rounding::HalfUp),
            (337, 224)
        );
        // torchvision CenterCrop: int(round(117 / 2)) = 58 (half to even), int(round(119 / 2)) = 60.
        assert_eq!(
            centre_crop_origin(341, 224, 224, 224, Rounding::HalfEven),
            (58, 0)
        );
        assert_eq!(
            centre_crop_origin(343, 224, 224, 224, Rounding::HalfEven),
            (60, 0)
        );
        assert_eq!(
            centre_crop_origin(343, 224, 224, 224, Rounding::Floor),
            (59, 0)
        );
    }

    #[test]
    fn alpha_is_composited_on_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([0, 0, 0, 255]));
        let rgb = to_rgb_on_white(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 0, 0]);
    }

    #[test]
    fn alpha_can_be_dropped_as_pillow_convert_does() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([10, 20, 30, 0]));
        rgba.put_pixel(1, 0, image::Rgba([40, 50, 60, 128]));
        let bytes = png(&DynamicImage::ImageRgba8(rgba));
        let rgb = decode_with(&bytes, "a.png", &ImageLimits::default(), AlphaMode::Drop).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [10, 20, 30]);
        assert_eq!(rgb.get_pixel(1, 0).0, [40, 50, 60]);
        let white = decode(&bytes, "a.png", &ImageLimits::default()).unwrap();
        assert_eq!(white.get_pixel(0, 0).0, [255, 255, 255]);
    }

    #[test]
    fn grey_16_bit_becomes_rgb8() {
        let grey =
            image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(3, 2, image::Luma([65535u16]));
        let bytes = png(&DynamicImage::ImageLuma16(grey));
        let rgb = decode(&bytes, "grey16.png", &ImageLimits::default()).unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
    }

    #[test]
    fn the_decoded_bytes_limit_counts_channels_and_bit_depth() {
        let (w, h) = (300u32, 200u32);
        let rgba16 = image::ImageBuffer::<image::Rgba<u16>, _>::from_pixel(
            w,
            h,
            image::Rgba([1u16, 2, 3, 65535]),
        );
        let deep = png(&DynamicImage::ImageRgba16(rgba16));
        let flat = png(&DynamicImage::ImageRgb8(RgbImage::from_pixel(
            w,
            h,
            image::Rgb([1, 2, 3]),
        )));
        let px = u64::from(w * h);
        let info = header_info(&deep).unwrap();
        assert_eq!(
            (info.pixels(), info.channels, info.bits_per_channel),
            (px, 4, 16)
        );
        assert_eq!(info.decoded_bytes, px * 8);
        assert_eq!(header_info(&flat).unwrap().decoded_bytes, px * 3);
        assert_eq!(header_info(b"not an image"), None);
        // Same pixels, same pixel limit: the 16-bit RGBA one decodes to 8
        // bytes a pixel and is over a limit the RGB8 one (3) is under.
        let limits = ImageLimits::default()
            .with_max_pixels(px)
            .with_max_decoded_bytes(px * 4);
        let e = decode(&deep, "deep.png", &limits).unwrap_err().to_string();
        assert!(
            e.contains("deep.png") && e.contains("4 channels x 16 bits") && e.contains("480000"),
            "{e}"
        );
        assert_eq!(
            decode(&flat, "flat.png", &limits).unwrap().dimensions(),
            (w, h)
        );
    }

    #[test]
    fn normalisation_is_planar_and_scaled() {
        let img = RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 128]));
        let mut out = vec![0f32; 48];
        normalise_into(&img, &spec(), &mut out);
        assert!((out[0] - 1.0).abs() < 1e-6);
        assert!((out[16] + 1.0).abs() < 1e-6);
        assert!((out[32] - (128.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6);
    }

    #[test]
    fn bad_inputs_name_the_item() {
        let limits = ImageLimits::default();
        let e = decode(b"", "empty.jpg", &limits).unwrap_err().to_string();
        assert!(e.contains("empty.jpg") && e.contains("empty"), "{e}");
        let e = decode(b"hello, I am text", "notes.jpg", &limits)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("notes.jpg") && e.contains("not a supported image"),
            "{e}"
        );
        let full = png(&DynamicImage::ImageRgb8(RgbImage::new(8, 8)));
        let e = decode(&full[..full.len() / 2], "cut.png", &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut.png") && e.contains("truncated"), "{e}");
        let small = ImageLimits::default().with_max_pixels(10);
        let e = decode(&full, "big.png", &small).unwrap_err().to_string();
        assert!(
            e.contains("big.png") && e.contains("decompression bomb"),
            "{e}"
        );
    }

    fn noisy(w: u32, h: u32) -> DynamicImage {
        let mut s = 7u32;
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |_, _| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let [a, b, c, _] = s.to_le_bytes();
            image::Rgb([a, b, c])
        }))
    }

    #[test]
    fn a_truncated_file_is_refused_at_every_cut() {
        let limits = ImageLimits::default();
        let img = noisy(64, 48);
        for (name, format) in [
            ("cut.jpg", image::ImageFormat::Jpeg),
            ("cut.png", image::ImageFormat::Png),
            ("cut.webp", image::ImageFormat::WebP),
        ] {
            let mut full = Vec::new();
            img.write_to(&mut Cursor::new(&mut full), format).unwrap();
            decode(&full, name, &limits).unwrap();
            // Trailing bytes after the end marker are not truncation.
            let mut padded = full.clone();
            padded.extend_from_slice(&[0; 100]);
            decode(&padded, name, &limits).unwrap();
            for cut in (1..full.len()).step_by(13).chain([full.len() - 1]) {
                let e = decode(&full[..cut], name, &limits)
                    .err()
                    .unwrap_or_else(|| panic!("{name} cut at {cut} of {} decoded", full.len()))
                    .to_string();
                assert!(e.contains(name), "{e}");
            }
        }
    }

    #[test]
    fn jpeg_scan_data_with_stuffing_and_restart_markers_is_walked() {
        let ok = [
            0xFF, 0xD8, // SOI
            0xFF, 0xDA, 0x00, 0x02, // SOS (empty header)
            0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56, // data, stuffed FF, RST3
            0xFF, 0xFF, 0xD4, 0x78, // fill byte, RST4, data
            0xFF, 0xFF, 0xD9, // fill byte, EOI
        ];
        assert_eq!(jpeg_complete(&ok), Ok(()));
        assert!(jpeg_complete(&ok[..ok.len() - 1]).is_err());
        assert!(jpeg_complete(&ok[..14])
            .unwrap_err()
            .contains("end-of-image"));
    }

    #[test]
    fn fit_crops_the_centre() {
        // 8x4 image, left half black, right half white; crop to 4x4 from the centre.
        let mut img = RgbImage::new(8, 4);
        for x in 4..8 {
            for y in 0..4 {
                img.put_pixel(x, y, image::Rgb([255, 255, 255]));
            }
        }
        let out = fit(&img, &spec(), "t").unwrap();
        assert_eq!(out.dimensions(), (4, 4));
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(3, 0).0, [255, 255, 255]);
    }
}
