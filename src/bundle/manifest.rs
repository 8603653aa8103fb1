//! `bundle.toml`: the manifest of a model bundle (format versions 1 and 2).
//!
//! Version 1 is what weft's own builders write: encoders emit L2-normalised
//! `embeds` and `tokens` outputs and inputs are known by name. Version 2
//! (what `weft models import` writes) maps an unmodified export instead: it
//! names which output is the pooled embedding and whether weft normalises it,
//! which graph input carries ids, mask, type ids or pixels, how text is
//! cleaned and padded, and how zero-shot scores (softmax, or a sigmoid with a
//! bias). Every version-2 key has a default that means what version 1 meant.
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

/// The newest manifest format this build reads (and the one `weft models import` writes).
pub const FORMAT_VERSION: u32 = 2;
/// The oldest manifest format this build reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Manifest {
    /// Manifest format version, [`OLDEST_FORMAT_VERSION`] to [`FORMAT_VERSION`].
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
    /// Where an imported bundle came from (version 2; informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportInfo>,
}

/// Provenance of an imported bundle: the layout, and where each value came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[non_exhaustive]
pub struct ImportInfo {
    /// The export layout, e.g. `hf-single`, `open-clip`.
    pub layout: String,
    /// The export folder's name (not its path).
    pub source: String,
    /// The weft version that imported it.
    pub weft_version: String,
    /// `field = value  <- source` lines: every value and the file and key it was read from.
    #[serde(default)]
    pub facts: Vec<String>,
    /// What the import did to the graphs, and why a side has no token output.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Zero-shot classification defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct ZeroShot {
    /// How label scores become probabilities.
    #[serde(default)]
    pub scoring: ZeroShotScoring,
    /// Multiplier of cosine similarities (CLIP's and SigLIP's logit scale, `exp(t)`).
    #[serde(default = "default_logit_scale")]
    pub logit_scale: f32,
    /// SigLIP's logit bias `b`: probability = sigmoid(scale * cosine + b). Sigmoid scoring only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<f32>,
    /// Prompt templates; `{}` is replaced by the label.
    #[serde(default = "default_templates")]
    pub templates: Vec<String>,
}

/// How zero-shot label scores become probabilities.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ZeroShotScoring {
    /// CLIP: a softmax over the labels of `logit_scale * cosine`.
    #[default]
    Softmax,
    /// SigLIP: an independent sigmoid per label of `logit_scale * cosine + logit_bias`.
    Sigmoid,
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
            scoring: ZeroShotScoring::Softmax,
            logit_scale: default_logit_scale(),
            logit_bias: None,
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
    /// External data files of the ONNX graph (weights of models over 2 GB), with their sha256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_data: Vec<DataFile>,
    /// Model inputs, by name and element type.
    pub inputs: Vec<InputSpec>,
    /// Name of the `[B, D]` output.
    pub embeds_output: String,
    /// Name of the `[B, T, D]` output, if the encoder has token outputs.
    #[serde(default)]
    pub tokens_output: Option<String>,
    /// weft L2-normalises `embeds_output` (the graph does not). Version 1: false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub normalize_embeds: bool,
    /// weft L2-normalises every row of `tokens_output`. Version 1: false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub normalize_tokens: bool,
    /// The graph's batch dimension is fixed to this size (e.g. 1 in Immich's
    /// exports); weft runs batches of at most this many items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_batch: Option<usize>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A file the ONNX graph reads its weights from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DataFile {
    /// File name inside the bundle folder.
    pub file: String,
    /// Lowercase hex sha256.
    pub sha256: String,
}

/// One model input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputSpec {
    /// Input name in the ONNX graph.
    pub name: String,
    /// Element type: `int64`, `int32` or `float32`.
    pub dtype: String,
    /// What weft feeds into it. Version 1 manifests leave it out: the role
    /// then follows from the name (`input_ids`, `attention_mask`,
    /// `token_type_ids`; an image model's first input is the pixels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<InputRole>,
}

/// What an input carries.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputRole {
    /// Token ids `[B, T]`.
    Ids,
    /// Attention mask `[B, T]`: 1 for real tokens, 0 for padding.
    Mask,
    /// Token type ids `[B, T]`, all 0.
    TypeIds,
    /// Pixels `[B, 3, H, W]`.
    Pixels,
}

impl InputSpec {
    /// The role, from the manifest or (version 1) from the name.
    pub fn resolved_role(&self, image: bool) -> Option<InputRole> {
        self.role.or(match self.name.as_str() {
            "input_ids" => Some(InputRole::Ids),
            "attention_mask" => Some(InputRole::Mask),
            "token_type_ids" => Some(InputRole::TypeIds),
            _ if image => Some(InputRole::Pixels),
            _ => None,
        })
    }
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
    /// How a batch is padded. Version 1: `longest`.
    #[serde(default, skip_serializing_if = "is_longest")]
    pub padding: Padding,
    /// Id written in padding positions. Version 1: the tokenizer's `[PAD]` / `<pad>`, else 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_id: Option<u32>,
    /// Clean-up applied to text before the tokenizer (the Python pipeline's own). Version 1: `none`.
    #[serde(default, skip_serializing_if = "is_no_cleanup")]
    pub text_cleanup: TextCleanup,
}

fn is_longest(p: &Padding) -> bool {
    *p == Padding::Longest
}

fn is_no_cleanup(c: &TextCleanup) -> bool {
    *c == TextCleanup::None
}

/// Clean-up applied to text before its tokenizer, as the model's own Python
/// pipeline does it (implemented in `encoder::cleanup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextCleanup {
    /// Text is tokenized as given.
    #[default]
    None,
    /// open_clip / OpenAI CLIP (`clean="lower"`): ftfy, HTML unescape, whitespace, lower case.
    Clip,
    /// open_clip `clean="whitespace"`: ftfy, HTML unescape, whitespace.
    ClipWhitespace,
    /// open_clip `clean="canonicalize"`: ftfy, HTML unescape, no ASCII punctuation, lower case.
    ClipCanonicalize,
    /// Whitespace runs collapsed to one space, ends trimmed (Immich).
    Whitespace,
    /// Whitespace collapsed, ASCII punctuation removed, lower case (Immich's SigLIP models).
    WhitespaceCanonicalize,
    /// transformers' SiglipTokenizer: `▁` in front, lower case, no ASCII punctuation, whitespace collapsed.
    Siglip,
}

/// How a batch of sequences is padded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// To the longest item of the batch.
    #[default]
    Longest,
    /// Every item to `max_length` (models that pool a fixed position, such as SigLIP).
    MaxLength,
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
    /// How the long side is rounded after scaling the shortest one. Version 1: `round`.
    #[serde(default = "round_half_up", skip_serializing_if = "is_round_half_up")]
    pub resize_rounding: Rounding,
    /// How the centre-crop offset is rounded. Version 1: `floor`.
    #[serde(default, skip_serializing_if = "is_floor")]
    pub crop_rounding: Rounding,
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
    /// Transparent pixels: composited on white (version 1), or the alpha
    /// channel dropped as Pillow's `convert("RGB")` does in the Python processors.
    #[serde(default, skip_serializing_if = "is_white")]
    pub alpha: AlphaMode,
}

fn is_white(a: &AlphaMode) -> bool {
    *a == AlphaMode::White
}

/// What happens to transparency.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlphaMode {
    /// Composited on an opaque white background.
    #[default]
    White,
    /// The alpha channel is ignored (the colour under it is kept).
    Drop,
}

fn round_half_up() -> Rounding {
    Rounding::HalfUp
}

fn is_round_half_up(r: &Rounding) -> bool {
    *r == Rounding::HalfUp
}

fn is_floor(r: &Rounding) -> bool {
    *r == Rounding::Floor
}

/// How a fractional pixel count or offset is rounded (processors differ, and
/// a one-pixel difference moves every resampled pixel).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Down: `int(x)` (transformers, torchvision's Resize, Immich, and crops in weft v1).
    #[default]
    Floor,
    /// Half up: `floor(x + 1/2)` (weft's version-1 resize).
    HalfUp,
    /// Half to even: Python's `round` (torchvision's CenterCrop).
    HalfEven,
    /// For the long side only: `int((long / short) * size)` in doubles, as
    /// Immich computes it (one pixel less than exact for some sizes).
    FloatRatio,
}

impl Rounding {
    /// `num / den` rounded this way (`den > 0`).
    pub fn div(self, num: u64, den: u64) -> u64 {
        let (q, r) = (num / den, num % den);
        match self {
            Rounding::Floor | Rounding::FloatRatio => q,
            Rounding::HalfUp => (2 * num + den) / (2 * den),
            Rounding::HalfEven => {
                if 2 * r > den || (2 * r == den && q % 2 == 1) {
                    q + 1
                } else {
                    q
                }
            }
        }
    }
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
