//! Image preprocessing: decode with limits, orient, flatten alpha, resize,
//! crop, normalise into an NCHW `f32` slice, as the bundle's [`ImageSpec`] says.
//!
//! Each step is a small function tested without ONNX. The reference is
//! Pillow (`models/reference.py`): `exif_transpose`, alpha composited on white,
//! `resize` with the manifest's filter (antialiased, as `fast_image_resize`'s
//! convolution), then a centre crop.

use std::io::Cursor;
use std::path::Path;

use fast_image_resize as fr;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::bundle::{ChannelOrder, ImageSpec, Interpolation, ResizeMode};
use crate::error::{Error, Result};

/// Limits that protect against hostile or broken files.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ImageLimits {
    /// Largest file accepted, in bytes. Default 64 MiB.
    pub max_file_bytes: u64,
    /// Largest decoded image, in pixels (width x height). Default 100 megapixels.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_file_bytes: 64 << 20,
            max_pixels: 100_000_000,
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

/// Decodes an image (first frame of a GIF), applies its EXIF orientation and
/// returns 8-bit RGB with alpha composited on white. `item` names it in errors.
pub fn decode(bytes: &[u8], item: &str, limits: &ImageLimits) -> Result<RgbImage> {
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
    if reader.format().is_none() {
        return Err(invalid(
            item,
            "not a supported image (JPEG, PNG, WebP, GIF, BMP, TIFF)",
        ));
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| invalid(item, format!("cannot decode: {e}")))?;
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > limits.max_pixels {
        return Err(invalid(
            item,
            format!(
                "{w}x{h} = {pixels} pixels, over the limit of {} (decompression bomb guard)",
                limits.max_pixels
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
    Ok(to_rgb_on_white(img))
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
/// `floor(long * shortest / short + 1/2)` in exact integers (as `models/reference.py`).
pub(crate) fn shortest_side_size(w: u32, h: u32, shortest: u32) -> (u32, u32) {
    let (w, h, s) = (u64::from(w), u64::from(h), u64::from(shortest));
    if w <= h {
        (s as u32, ((2 * h * s + w) / (2 * w)).max(1) as u32)
    } else {
        (((2 * w * s + h) / (2 * h)).max(1) as u32, s as u32)
    }
}

/// Top-left of a centred crop; the offset rounds down (as `models/reference.py`).
pub(crate) fn centre_crop_origin(w: u32, h: u32, cw: u32, ch: u32) -> (u32, u32) {
    (w.saturating_sub(cw) / 2, h.saturating_sub(ch) / 2)
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
            let (nw, nh) = shortest_side_size(img.width(), img.height(), shortest);
            let resized = resize(img, nw, nh, spec.interpolation, item)?;
            let (cw, ch) = (tw.min(nw), th.min(nh));
            let (left, top) = centre_crop_origin(nw, nh, cw, ch);
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
    let rgb = decode(bytes, item, limits)?;
    let fitted = fit(&rgb, spec, item)?;
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
        assert_eq!(shortest_side_size(640, 480, 256), (341, 256));
        assert_eq!(shortest_side_size(480, 640, 256), (256, 341));
        assert_eq!(shortest_side_size(100, 100, 256), (256, 256));
        assert_eq!(centre_crop_origin(341, 256, 224, 224), (58, 16));
        assert_eq!(shortest_side_size(3, 2, 4), (6, 4));
        assert_eq!(centre_crop_origin(256, 256, 224, 224), (16, 16));
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
    fn grey_16_bit_becomes_rgb8() {
        let grey =
            image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(3, 2, image::Luma([65535u16]));
        let bytes = png(&DynamicImage::ImageLuma16(grey));
        let rgb = decode(&bytes, "grey16.png", &ImageLimits::default()).unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
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
        assert!(e.contains("cut.png") && e.contains("decode"), "{e}");
        let small = ImageLimits::default().with_max_pixels(10);
        let e = decode(&full, "big.png", &small).unwrap_err().to_string();
        assert!(
            e.contains("big.png") && e.contains("decompression bomb"),
            "{e}"
        );
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
