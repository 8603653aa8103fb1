//! `bundle.toml`: the manifest of a model bundle (format version 1).
//!
//! ```toml
//! format_version = 1
//! name = "starter-vl"
//! version = "0.1.0"
//! license = "..."
//! description = "..."
//!
//! [zero_shot]
//! logit_scale = 100.0
//! templates = ["a photo of a {}."]
//!
//! [text]                      # also [molecule], same keys
//! model = "text.onnx"
//! model_sha256 = "<hex>"
//! dim = 384
//! inputs = [{ name = "input_ids", dtype = "int64" }, { name = "attention_mask", dtype = "int64" }]
//! embeds_output = "embeds"    # [B, D], L2-normalised
//! tokens_output = "tokens"    # [B, T, D], optional: without it no late interaction
//! tokenizer = "tokenizer.json"
//! tokenizer_sha256 = "<hex>"
//! max_length = 256
//!
//! [image]
//! model = "image.onnx"
//! model_sha256 = "<hex>"
//! dim = 384
//! inputs = [{ name = "pixel_values", dtype = "float32" }]
//! embeds_output = "embeds"
//! tokens_output = "tokens"    # [B, rows*cols, D], row-major
//! patch_grid = [7, 7]
//! size = [224, 224]           # height, width
//! resize = "shortest_side_crop"   # or "squash"
//! resize_shortest = 256
//! interpolation = "bilinear"  # nearest | bilinear | bicubic | lanczos3
//! scale = 0.00392156862745098
//! mean = [0.5, 0.5, 0.5]
//! std = [0.5, 0.5, 0.5]
//! channel_order = "rgb"
//! ```

use serde::{Deserialize, Serialize};

/// The manifest format this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Manifest {
    /// Manifest format version; only [`FORMAT_VERSION`] is read.
    pub format_version: u32,
    /// Bundle name, e.g. `starter-vl`.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// Licence notes for every weight file.
    #[serde(default)]
    pub license: String,
    /// One line about the bundle.
    #[serde(default)]
    pub description: String,
    /// Zero-shot defaults.
    #[serde(default)]
    pub zero_shot: ZeroShot,
    /// Text encoder.
    pub text: Option<SequenceSpec>,
    /// Image encoder.
    pub image: Option<ImageSpec>,
    /// SMILES (molecule) encoder.
    pub molecule: Option<SequenceSpec>,
}

/// Zero-shot classification defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct ZeroShot {
    /// Multiplier of cosine similarities before the softmax (CLIP's logit scale).
    #[serde(default = "default_logit_scale")]
    pub logit_scale: f32,
    /// Prompt templates; `{}` is replaced by the label.
    #[serde(default = "default_templates")]
    pub templates: Vec<String>,
}

fn default_logit_scale() -> f32 {
    100.0
}

fn default_templates() -> Vec<String> {
    vec!["{}".to_string()]
}

impl Default for ZeroShot {
    fn default() -> Self {
        ZeroShot {
            logit_scale: default_logit_scale(),
            templates: default_templates(),
        }
    }
}

/// The ONNX part shared by every encoder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct ModelSpec {
    /// ONNX file, relative to the bundle folder.
    pub model: String,
    /// Lowercase hex sha256 of the ONNX file.
    pub model_sha256: String,
    /// Embedding dimension D of `embeds` and `tokens`.
    pub dim: usize,
    /// Model inputs, by name and element type.
    pub inputs: Vec<InputSpec>,
    /// Name of the `[B, D]` output.
    pub embeds_output: String,
    /// Name of the `[B, T, D]` output, if the encoder has token outputs.
    #[serde(default)]
    pub tokens_output: Option<String>,
}

/// One model input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputSpec {
    /// Input name in the ONNX graph.
    pub name: String,
    /// Element type: `int64`, `int32` or `float32`.
    pub dtype: String,
}

/// A tokenized-sequence encoder (text or SMILES).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct SequenceSpec {
    /// The ONNX part.
    #[serde(flatten)]
    pub model: ModelSpec,
    /// HF `tokenizers` JSON file, relative to the bundle folder.
    pub tokenizer: String,
    /// Lowercase hex sha256 of the tokenizer file.
    pub tokenizer_sha256: String,
    /// Maximum tokens per item, special tokens included; longer input is truncated (and reported).
    pub max_length: usize,
}

/// An image encoder and its preprocessing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct ImageSpec {
    /// The ONNX part.
    #[serde(flatten)]
    pub model: ModelSpec,
    /// Patch grid of the token output, `[rows, cols]`, tokens row-major.
    #[serde(default)]
    pub patch_grid: Option<[usize; 2]>,
    /// Model input `[height, width]`.
    pub size: [usize; 2],
    /// How the image is brought to `size`.
    pub resize: ResizeMode,
    /// For [`ResizeMode::ShortestSideCrop`]: the shortest side is scaled to this before the centre crop.
    #[serde(default)]
    pub resize_shortest: Option<usize>,
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// Pixels (0..=255) are multiplied by this first.
    pub scale: f32,
    /// Then `(x - mean) / std`, per channel in `channel_order`.
    pub mean: [f32; 3],
    /// See `mean`.
    pub std: [f32; 3],
    /// Channel order of the input tensor.
    pub channel_order: ChannelOrder,
}

/// How an image is brought to the model's input size.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Scale the shortest side to `resize_shortest` (aspect kept), then centre-crop to `size`.
    ShortestSideCrop,
    /// Scale both sides to `size`, aspect not kept.
    Squash,
}

/// Resampling filter (Pillow semantics: antialiased when downscaling).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear (triangle filter).
    Bilinear,
    /// Bicubic (Catmull-Rom, a = -0.5 as in Pillow).
    Bicubic,
    /// Lanczos with 3 lobes.
    Lanczos3,
}

/// Channel order of the image tensor.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red.
    Bgr,
}
