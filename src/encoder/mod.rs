//! Encoders: bundle inputs in, global embeddings and token matrices out.
//!
//! * [`Encoder`] is the plug-in trait (one per modality); [`ImageEncoder`] and
//!   [`SequenceEncoder`] (text and SMILES) implement it over ONNX sessions.
//! * [`BundleEncoders`] loads a bundle's encoders lazily, so a text query never
//!   loads the image model.
//! * Batches follow a memory budget ([`EncoderOptions::memory_budget`]); an
//!   oversized request is split. Image decoding of the next batch runs on a
//!   worker thread while ONNX Runtime encodes the current one.
//! * One bad item is an `Err` in its own slot; the rest of the batch is encoded.

pub mod cleanup;
pub mod image;
mod resample;
pub mod sequence;

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array2, ArrayView4};
use ort::session::SessionInputValue;
use ort::value::{Tensor, TensorRef};

pub use self::cleanup::Cleanup;
pub use self::image::ImageLimits;
pub use self::sequence::{SequenceTokenizer, Truncation};

use crate::bundle::{
    self, Bundle, ImageSpec, InputRole, Modality, ModelSpec, Padding, SequenceSpec,
};
use crate::error::{Error, Result};
use crate::runtime::{ActiveProvider, ModelSession, Runtime, SessionOptions};

/// Encoder settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EncoderOptions {
    /// Session settings (device, fallback, threads).
    pub session: SessionOptions,
    /// Most items in one ONNX call. Default 32.
    pub max_batch: usize,
    /// Bytes one batch may take (inputs, an estimate of activations, outputs).
    /// The batch size is the largest that fits, at least 1. Default 512 MiB.
    pub memory_budget: usize,
    /// File and pixel limits for images.
    pub image_limits: ImageLimits,
    /// Threads decoding images next to inference. Default: half the cores, at least 1.
    pub preprocess_threads: usize,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            session: SessionOptions::default(),
            max_batch: 32,
            memory_budget: 512 << 20,
            image_limits: ImageLimits::default(),
            preprocess_threads: (crate::runtime::default_threads() / 2).max(1),
        }
    }
}

impl EncoderOptions {
    /// Sets the session options.
    pub fn with_session(mut self, session: SessionOptions) -> Self {
        self.session = session;
        self
    }

    /// Sets the largest batch.
    pub fn with_max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// Sets the memory budget in bytes.
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// Sets the image limits.
    pub fn with_image_limits(mut self, limits: ImageLimits) -> Self {
        self.image_limits = limits;
        self
    }

    /// Sets the number of preprocessing threads.
    pub fn with_preprocess_threads(mut self, n: usize) -> Self {
        self.preprocess_threads = n;
        self
    }

    fn validate(&self) -> Result<()> {
        let bad = |name: &str, reason: &str| {
            Err(Error::InvalidConfig {
                name: name.into(),
                reason: reason.into(),
            })
        };
        if self.max_batch == 0 {
            return bad("max_batch", "must be at least 1");
        }
        if self.preprocess_threads == 0 {
            return bad("preprocess_threads", "must be at least 1");
        }
        Ok(())
    }
}

/// One input to encode.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Natural-language text.
    Text(&'a str),
    /// A molecule as SMILES.
    Smiles(&'a str),
    /// An image file.
    ImagePath(&'a Path),
    /// Encoded image bytes (any supported format); `name` names it in errors.
    ImageBytes {
        /// Name used in errors.
        name: &'a str,
        /// The file's bytes.
        bytes: &'a [u8],
    },
    /// Decoded 8-bit RGB pixels, row-major, `width * height * 3` bytes (a
    /// camera frame, or an image an app decoded itself). They are resized
    /// and normalised as a file would be.
    Rgb8 {
        /// Name used in errors.
        name: &'a str,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The pixels.
        pixels: &'a [u8],
    },
}

impl Input<'_> {
    /// The modality this input needs.
    pub fn modality(&self) -> Modality {
        match self {
            Input::Text(_) => Modality::Text,
            Input::Smiles(_) => Modality::Molecule,
            Input::ImagePath(_) | Input::ImageBytes { .. } | Input::Rgb8 { .. } => Modality::Image,
        }
    }

    /// A short name for errors: the path, the given name, or the start of the text.
    pub fn describe(&self, index: usize) -> String {
        match self {
            Input::ImagePath(p) => p.display().to_string(),
            Input::ImageBytes { name, .. } | Input::Rgb8 { name, .. } => (*name).to_string(),
            Input::Text(t) | Input::Smiles(t) => {
                let head: String = t.chars().take(40).collect();
                let more = if t.chars().count() > 40 { "..." } else { "" };
                format!("item {index} ({:?}{more})", head)
            }
        }
    }
}

/// What an encoder returns for one item.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Encoded {
    /// Global embedding, `dim` floats, L2-normalised.
    pub embedding: Vec<f32>,
    /// Real tokens only (padding removed), row-major `n_tokens x dim`; empty
    /// when the encoder has no token output.
    pub tokens: Vec<f32>,
    /// Number of token rows.
    pub n_tokens: usize,
    /// Patch grid `[rows, cols]` of an image's tokens.
    pub grid: Option<[usize; 2]>,
    /// Set when text or SMILES was cut to the model's maximum length.
    pub truncated: Option<Truncation>,
}

impl Encoded {
    /// A store item with this output's vectors (no source, no payload).
    pub fn into_item(self, id: impl Into<String>, modality: Modality) -> crate::store::NewItem {
        crate::store::NewItem {
            id: id.into(),
            modality,
            source: String::new(),
            payload: serde_json::Value::Null,
            embedding: self.embedding,
            tokens: self.tokens,
            grid: self.grid,
        }
    }
}

/// An encoder of one modality.
pub trait Encoder: Send {
    /// What it encodes.
    fn modality(&self) -> Modality;
    /// Embedding dimension.
    fn dim(&self) -> usize;
    /// Whether it emits token matrices (late interaction possible).
    fn has_tokens(&self) -> bool;
    /// The execution provider its session runs on.
    fn provider(&self) -> ActiveProvider;
    /// Encodes `inputs`; the result has one slot per input, in order.
    fn encode(&mut self, inputs: &[Input<'_>]) -> Vec<Result<Encoded>>;
}

/// Estimated activation memory of a model as a multiple of its input tensor.
const ACTIVATION_FACTOR: usize = 24;

fn wrong_modality(input: &Input<'_>, index: usize, expected: Modality) -> Error {
    Error::InvalidInput {
        item: input.describe(index),
        reason: format!(
            "is {} input, this encoder reads {expected}",
            input.modality()
        ),
    }
}

fn load_session(
    runtime: &Runtime,
    bundle: &Bundle,
    spec: &ModelSpec,
    options: &SessionOptions,
) -> Result<ModelSession> {
    let path = bundle.file(&spec.model);
    let session = runtime.session(&path, options)?;
    bundle::check_session_io(spec, &session.session, &path)?;
    Ok(session)
}

/// Token output of a batch: `T` and the `[n, T, dim]` values.
type BatchTokens = (usize, Vec<f32>);

/// Copies `[n, dim]` embeddings and `[n, t, dim]` tokens out of the outputs.
fn extract(
    outputs: &ort::session::SessionOutputs<'_>,
    spec: &ModelSpec,
    file: &Path,
    n: usize,
) -> Result<(Vec<f32>, Option<BatchTokens>)> {
    let bad = |reason: String| Error::Bundle {
        path: file.to_path_buf(),
        reason,
    };
    let embeds = outputs[spec.embeds_output.as_str()]
        .try_extract_array::<f32>()
        .map_err(|e| {
            Error::onnx(
                format!("reading `{}` of {}", spec.embeds_output, file.display()),
                e,
            )
        })?;
    if embeds.shape() != [n, spec.dim] {
        return Err(bad(format!(
            "output `{}` has shape {:?}, expected [{n}, {}]",
            spec.embeds_output,
            embeds.shape(),
            spec.dim
        )));
    }
    let mut embeds: Vec<f32> = embeds.iter().copied().collect();
    if spec.normalize_embeds {
        normalize_rows(&mut embeds, spec.dim);
    }
    let tokens = match &spec.tokens_output {
        None => None,
        Some(name) => {
            let t = outputs[name.as_str()]
                .try_extract_array::<f32>()
                .map_err(|e| Error::onnx(format!("reading `{name}` of {}", file.display()), e))?;
            if t.ndim() != 3 || t.shape()[0] != n || t.shape()[2] != spec.dim {
                return Err(bad(format!(
                    "output `{name}` has shape {:?}, expected [{n}, T, {}]",
                    t.shape(),
                    spec.dim
                )));
            }
            let mut values: Vec<f32> = t.iter().copied().collect();
            if spec.normalize_tokens {
                normalize_rows(&mut values, spec.dim);
            }
            Some((t.shape()[1], values))
        }
    };
    Ok((embeds, tokens))
}

/// L2-normalises each `dim`-long row in place (a zero row stays zero).
fn normalize_rows(values: &mut [f32], dim: usize) {
    for row in values.chunks_mut(dim.max(1)) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
}

/// The image encoder of a bundle.
#[derive(Debug)]
pub struct ImageEncoder {
    session: ModelSession,
    pipeline: ImagePipeline,
}

/// Everything preprocessing reads: shared with the decode worker while the
/// session (owned apart) runs.
#[derive(Debug)]
struct ImagePipeline {
    spec: ImageSpec,
    file: std::path::PathBuf,
    options: EncoderOptions,
}

impl ImageEncoder {
    /// Loads the bundle's image encoder.
    pub fn load(runtime: &Runtime, bundle: &Bundle, options: &EncoderOptions) -> Result<Self> {
        options.validate()?;
        let spec = bundle
            .image_spec()
            .ok_or_else(|| Error::MissingEncoder {
                bundle: bundle.name().to_string(),
                modality: Modality::Image,
            })?
            .clone();
        // Decode threads run beside inference: spinning intra-op threads
        // would hold the cores they need (see `SessionOptions::intra_spinning`).
        let session_options = options.session.clone().with_intra_spinning(false);
        let session = load_session(runtime, bundle, &spec.model, &session_options)?;
        Ok(ImageEncoder {
            session,
            pipeline: ImagePipeline {
                file: bundle.file(&spec.model.model),
                spec,
                options: options.clone(),
            },
        })
    }

    /// Items per ONNX call under the memory budget.
    pub fn batch_size(&self) -> usize {
        self.pipeline.batch_size()
    }

    /// The preprocessing spec.
    pub fn spec(&self) -> &ImageSpec {
        &self.pipeline.spec
    }
}

impl ImagePipeline {
    fn batch_size(&self) -> usize {
        let input = 3 * self.spec.size[0] * self.spec.size[1] * 4;
        let grid = self.spec.patch_grid.map_or(0, |g| g[0] * g[1]);
        let per_item = input * ACTIVATION_FACTOR + (grid + 1) * self.spec.model.dim * 4;
        let most = self
            .spec
            .model
            .fixed_batch
            .map_or(self.options.max_batch, |b| b.min(self.options.max_batch));
        (self.options.memory_budget / per_item.max(1)).clamp(1, most.max(1))
    }

    /// Decodes and normalises one input into `out`.
    fn prepare_one(&self, input: &Input<'_>, index: usize, out: &mut [f32]) -> Result<()> {
        let limits = &self.options.image_limits;
        match input {
            Input::ImagePath(path) => {
                let bytes = image::read_limited(path, limits)?;
                image::preprocess(&bytes, &path.display().to_string(), &self.spec, limits, out)
            }
            Input::ImageBytes { name, bytes } => {
                image::preprocess(bytes, name, &self.spec, limits, out)
            }
            Input::Rgb8 {
                name,
                width,
                height,
                pixels,
            } => image::preprocess_rgb8(*width, *height, pixels, name, &self.spec, limits, out),
            other => Err(wrong_modality(other, index, Modality::Image)),
        }
    }

    /// Preprocesses a chunk: the pixels of the good items, packed, and the errors.
    fn prepare(&self, chunk: &[(usize, Input<'_>)]) -> Prepared {
        let plane = 3 * self.spec.size[0] * self.spec.size[1];
        let mut pixels = vec![0f32; chunk.len() * plane];
        let threads = self.options.preprocess_threads.min(chunk.len()).max(1);
        let per = chunk.len().div_ceil(threads).max(1);
        let outcomes: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .chunks(per)
                .zip(pixels.chunks_mut(per * plane))
                .map(|(items, buf)| {
                    s.spawn(move || {
                        items
                            .iter()
                            .zip(buf.chunks_mut(plane))
                            .map(|((i, input), out)| self.prepare_one(input, *i, out))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(chunk.chunks(per))
                .flat_map(|(h, items)| {
                    h.join().unwrap_or_else(|_| {
                        items
                            .iter()
                            .map(|(i, input)| {
                                Err(Error::InvalidInput {
                                    item: input.describe(*i),
                                    reason: "the image decoder panicked".into(),
                                })
                            })
                            .collect()
                    })
                })
                .collect()
        });
        let mut good = Vec::new();
        let mut errors = Vec::new();
        let mut packed = Vec::with_capacity(pixels.len());
        for (k, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(()) => {
                    good.push(chunk[k].0);
                    packed.extend_from_slice(&pixels[k * plane..(k + 1) * plane]);
                }
                Err(e) => errors.push((chunk[k].0, e)),
            }
        }
        Prepared {
            good,
            pixels: packed,
            errors,
        }
    }

    /// Runs one prepared batch.
    fn infer(&self, session: &mut ModelSession, prepared: &Prepared) -> Result<Vec<Encoded>> {
        let n = prepared.good.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let [h, w] = self.spec.size;
        let view = ArrayView4::from_shape((n, 3, h, w), &prepared.pixels)
            .map_err(|e| Error::onnx_message("building the image batch", e.to_string()))?;
        let tensor =
            TensorRef::from_array_view(view).map_err(|e| Error::onnx("image tensor", e))?;
        let name = self
            .spec
            .model
            .inputs
            .iter()
            .find(|i| i.resolved_role(true) == Some(InputRole::Pixels))
            .unwrap_or(&self.spec.model.inputs[0])
            .name
            .clone();
        let outputs = session
            .session
            .run(vec![(name, SessionInputValue::from(tensor))])
            .map_err(|e| Error::onnx(format!("running {}", self.file.display()), e))?;
        let (embeds, tokens) = extract(&outputs, &self.spec.model, &self.file, n)?;
        let dim = self.spec.model.dim;
        Ok((0..n)
            .map(|i| {
                let (n_tokens, toks) = match &tokens {
                    Some((t, all)) => (*t, all[i * t * dim..(i + 1) * t * dim].to_vec()),
                    None => (0, Vec::new()),
                };
                Encoded {
                    embedding: embeds[i * dim..(i + 1) * dim].to_vec(),
                    tokens: toks,
                    n_tokens,
                    grid: if n_tokens > 0 {
                        self.spec.patch_grid
                    } else {
                        None
                    },
                    truncated: None,
                }
            })
            .collect())
    }

    /// Runs a prepared batch and files every outcome into `results`.
    fn finish(
        &self,
        session: &mut ModelSession,
        prepared: Prepared,
        results: &mut [Option<Result<Encoded>>],
    ) {
        match self.infer(session, &prepared) {
            Ok(encoded) => {
                for (i, e) in prepared.good.iter().zip(encoded) {
                    results[*i] = Some(Ok(e));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for i in &prepared.good {
                    results[*i] = Some(Err(Error::onnx_message("encoding the batch", &msg)));
                }
            }
        }
        for (i, e) in prepared.errors {
            results[i] = Some(Err(e));
        }
    }
}

struct Prepared {
    good: Vec<usize>,
    pixels: Vec<f32>,
    errors: Vec<(usize, Error)>,
}

impl Encoder for ImageEncoder {
    fn modality(&self) -> Modality {
        Modality::Image
    }

    fn dim(&self) -> usize {
        self.pipeline.spec.model.dim
    }

    fn has_tokens(&self) -> bool {
        self.pipeline.spec.model.tokens_output.is_some()
    }

    fn provider(&self) -> ActiveProvider {
        self.session.provider
    }

    fn encode(&mut self, inputs: &[Input<'_>]) -> Vec<Result<Encoded>> {
        let mut results: Vec<Option<Result<Encoded>>> = (0..inputs.len()).map(|_| None).collect();
        let items: Vec<(usize, Input<'_>)> = inputs.iter().copied().enumerate().collect();
        let pipeline = &self.pipeline;
        let session = &mut self.session;
        // Chunks start small and double up to the batch size: the decode of
        // the first chunk is the one not hidden behind inference (with 200
        // images in batches of 64 it cost a fifth of the run).
        let full = pipeline.batch_size();
        let mut chunks: Vec<&[(usize, Input<'_>)]> = Vec::new();
        let (mut at, mut size) = (0, full.min(4));
        while at < items.len() {
            let end = (at + size).min(items.len());
            chunks.push(&items[at..end]);
            at = end;
            size = (size * 2).min(full);
        }
        if chunks.len() <= 1 {
            for chunk in chunks {
                pipeline.finish(session, pipeline.prepare(chunk), &mut results);
            }
        } else {
            // A worker decodes chunk k+1 while this thread runs chunk k.
            let (tx, rx) = std::sync::mpsc::sync_channel::<Prepared>(1);
            std::thread::scope(|s| {
                s.spawn(move || {
                    for chunk in chunks {
                        if tx.send(pipeline.prepare(chunk)).is_err() {
                            break;
                        }
                    }
                });
                for prepared in rx {
                    pipeline.finish(session, prepared, &mut results);
                }
            });
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::onnx_message("encoding", "item was not processed")))
            })
            .collect()
    }
}

/// A text or SMILES encoder of a bundle.
#[derive(Debug)]
pub struct SequenceEncoder {
    session: ModelSession,
    spec: SequenceSpec,
    tokenizer: SequenceTokenizer,
    modality: Modality,
    file: std::path::PathBuf,
    options: EncoderOptions,
}

impl SequenceEncoder {
    /// Loads the bundle's text (`Modality::Text`) or SMILES (`Modality::Molecule`) encoder.
    pub fn load(
        runtime: &Runtime,
        bundle: &Bundle,
        modality: Modality,
        options: &EncoderOptions,
    ) -> Result<Self> {
        options.validate()?;
        let spec = bundle
            .sequence_spec(modality)
            .ok_or_else(|| Error::MissingEncoder {
                bundle: bundle.name().to_string(),
                modality,
            })?
            .clone();
        let tokenizer = SequenceTokenizer::from_spec(bundle.dir(), &spec, modality)?;
        let session = load_session(runtime, bundle, &spec.model, &options.session)?;
        Ok(SequenceEncoder {
            session,
            file: bundle.file(&spec.model.model),
            tokenizer,
            modality,
            spec,
            options: options.clone(),
        })
    }

    /// The tokenizer (also used to report token strings in explanations).
    pub fn tokenizer(&self) -> &SequenceTokenizer {
        &self.tokenizer
    }

    /// Estimated bytes of one item of `t` tokens in a batch.
    fn item_bytes(&self, t: usize) -> usize {
        let d = self.spec.model.dim;
        // hidden states (a few live copies) + attention maps (12 heads as an upper guess) + outputs
        t * d * 4 * ACTIVATION_FACTOR + t * t * 4 * 12 + (t + 1) * d * 4
    }

    /// Largest batch: the options', and the graph's fixed batch size if it has one.
    fn max_batch(&self) -> usize {
        self.spec
            .model
            .fixed_batch
            .map_or(self.options.max_batch, |b| b.min(self.options.max_batch))
            .max(1)
    }

    fn infer(&mut self, batch: &[(usize, sequence::Tokens)]) -> Result<Vec<Encoded>> {
        let n = batch.len();
        let longest = batch.iter().map(|(_, tk)| tk.ids.len()).max().unwrap_or(0);
        let t = match self.spec.padding {
            Padding::Longest => longest,
            Padding::MaxLength => self.spec.max_length.max(longest),
        };
        let pad = i64::from(self.tokenizer.pad_id());
        let mut ids = Array2::<i64>::from_elem((n, t), pad);
        let mut mask = Array2::<i64>::zeros((n, t));
        for (row, (_, tk)) in batch.iter().enumerate() {
            for (col, id) in tk.ids.iter().enumerate() {
                ids[[row, col]] = i64::from(*id);
                mask[[row, col]] = 1;
            }
        }
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = Vec::new();
        let zeros = Array2::<i64>::zeros((n, t));
        for input in &self.spec.model.inputs {
            let source = match input.resolved_role(false) {
                Some(InputRole::Ids) => &ids,
                Some(InputRole::Mask) => &mask,
                Some(InputRole::TypeIds) => &zeros,
                _ => {
                    return Err(Error::Bundle {
                        path: self.file.clone(),
                        reason: format!(
                            "input `{}` is not one weft can feed (input_ids, attention_mask, token_type_ids, or a role)",
                            input.name
                        ),
                    })
                }
            };
            let value: SessionInputValue<'_> = if input.dtype == "int32" {
                Tensor::from_array(source.mapv(|v| v as i32))
                    .map_err(|e| Error::onnx("input tensor", e))?
                    .into()
            } else {
                Tensor::from_array(source.clone())
                    .map_err(|e| Error::onnx("input tensor", e))?
                    .into()
            };
            inputs.push((input.name.clone(), value));
        }
        let outputs = self
            .session
            .session
            .run(inputs)
            .map_err(|e| Error::onnx(format!("running {}", self.file.display()), e))?;
        let (embeds, tokens) = extract(&outputs, &self.spec.model, &self.file, n)?;
        let dim = self.spec.model.dim;
        Ok(batch
            .iter()
            .enumerate()
            .map(|(i, (_, tk))| {
                let real = tk.ids.len();
                let toks = match &tokens {
                    // Right padding: the real tokens are the first `real` rows.
                    Some((tt, all)) => all[i * tt * dim..(i * tt + real) * dim].to_vec(),
                    None => Vec::new(),
                };
                Encoded {
                    embedding: embeds[i * dim..(i + 1) * dim].to_vec(),
                    n_tokens: if tokens.is_some() { real } else { 0 },
                    tokens: toks,
                    grid: None,
                    truncated: tk.truncated,
                }
            })
            .collect())
    }
}

impl Encoder for SequenceEncoder {
    fn modality(&self) -> Modality {
        self.modality
    }

    fn dim(&self) -> usize {
        self.spec.model.dim
    }

    fn has_tokens(&self) -> bool {
        self.spec.model.tokens_output.is_some()
    }

    fn provider(&self) -> ActiveProvider {
        self.session.provider
    }

    fn encode(&mut self, inputs: &[Input<'_>]) -> Vec<Result<Encoded>> {
        let mut results: Vec<Option<Result<Encoded>>> = (0..inputs.len()).map(|_| None).collect();
        let mut ok: Vec<(usize, sequence::Tokens)> = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            let text = match (input, self.modality) {
                (Input::Text(t), Modality::Text) | (Input::Smiles(t), Modality::Molecule) => *t,
                (other, m) => {
                    results[i] = Some(Err(wrong_modality(other, i, m)));
                    continue;
                }
            };
            match self.tokenizer.tokenize(text, &input.describe(i)) {
                Ok(tokens) => ok.push((i, tokens)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        // Similar lengths together: less padding per batch.
        ok.sort_by_key(|(_, t)| t.ids.len());
        let mut start = 0;
        while start < ok.len() {
            let mut end = start + 1;
            let most = self.max_batch();
            while end < ok.len()
                && end - start < most
                && (end - start + 1) * self.item_bytes(ok[end].1.ids.len())
                    <= self.options.memory_budget
            {
                end += 1;
            }
            let batch = &ok[start..end];
            match self.infer(batch) {
                Ok(encoded) => {
                    for ((i, _), e) in batch.iter().zip(encoded) {
                        results[*i] = Some(Ok(e));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for (i, _) in batch {
                        results[*i] = Some(Err(Error::onnx_message("encoding the batch", &msg)));
                    }
                }
            }
            start = end;
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::onnx_message("encoding", "item was not processed")))
            })
            .collect()
    }
}

/// The encoders of one bundle, each loaded on first use.
pub struct BundleEncoders {
    runtime: Arc<Runtime>,
    bundle: Bundle,
    options: EncoderOptions,
    loaded: Vec<(Modality, Box<dyn Encoder>)>,
}

impl std::fmt::Debug for BundleEncoders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleEncoders")
            .field("bundle", &self.bundle.name())
            .field(
                "loaded",
                &self.loaded.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl BundleEncoders {
    /// Prepares the encoders of `bundle`; nothing is loaded yet.
    pub fn new(runtime: Arc<Runtime>, bundle: Bundle, options: EncoderOptions) -> Result<Self> {
        options.validate()?;
        Ok(BundleEncoders {
            runtime,
            bundle,
            options,
            loaded: Vec::new(),
        })
    }

    /// The bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The encoder of `modality`, loading it on first use.
    pub fn encoder(&mut self, modality: Modality) -> Result<&mut dyn Encoder> {
        if let Some(pos) = self.loaded.iter().position(|(m, _)| *m == modality) {
            return Ok(self.loaded[pos].1.as_mut());
        }
        let encoder: Box<dyn Encoder> = match modality {
            Modality::Image => Box::new(ImageEncoder::load(
                &self.runtime,
                &self.bundle,
                &self.options,
            )?),
            m => Box::new(SequenceEncoder::load(
                &self.runtime,
                &self.bundle,
                m,
                &self.options,
            )?),
        };
        self.loaded.push((modality, encoder));
        Ok(self.loaded.last_mut().expect("just pushed").1.as_mut())
    }

    /// Loads every encoder of the bundle now (to report providers, or fail early).
    pub fn load_all(&mut self) -> Result<()> {
        for m in self.bundle.modalities() {
            self.encoder(m)?;
        }
        Ok(())
    }

    /// Providers of the loaded encoders.
    pub fn providers(&self) -> Vec<(Modality, ActiveProvider)> {
        self.loaded
            .iter()
            .map(|(m, e)| (*m, e.provider()))
            .collect()
    }

    /// Encodes mixed inputs, grouped by modality; one slot per input, in order.
    pub fn encode(&mut self, inputs: &[Input<'_>]) -> Vec<Result<Encoded>> {
        let mut results: Vec<Option<Result<Encoded>>> = (0..inputs.len()).map(|_| None).collect();
        for modality in Modality::ALL {
            let idx: Vec<usize> = (0..inputs.len())
                .filter(|i| inputs[*i].modality() == modality)
                .collect();
            if idx.is_empty() {
                continue;
            }
            match self.encoder(modality) {
                Ok(enc) => {
                    let group: Vec<Input<'_>> = idx.iter().map(|i| inputs[*i]).collect();
                    for (i, r) in idx.iter().zip(enc.encode(&group)) {
                        results[*i] = Some(r);
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for i in idx {
                        results[i] = Some(Err(Error::EncoderLoad {
                            item: inputs[i].describe(i),
                            modality,
                            source: Arc::clone(&e),
                        }));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every input has a modality"))
            .collect()
    }
}
