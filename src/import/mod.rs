//! `weft models import`: turns a CLIP-family ONNX export that a user already
//! has into a verified bundle (manifest format 2), with no Python.
//!
//! 1. [`layout::detect`] recognises the folder (Hugging Face single file or
//!    split, open_clip, Immich) and reads preprocessing, text and zero-shot
//!    settings from the export's own files, recording where each came from.
//! 2. The tokenizer becomes a `tokenizer.json` ([`tokenizer`]).
//! 3. Each tower's graph is cut out of the export (weft's own ONNX reader, `src/onnx`) and,
//!    with `tokens`, gets a per-token output by [`surgery`], proven on sample
//!    inputs with ONNX Runtime before it is kept.
//! 4. The logit scale (and SigLIP's bias) comes from the export's graph or
//!    weights, never from a default.
//! 5. The bundle is written into a temporary folder beside its destination,
//!    opened and run through the encoders as any bundle would be, and only
//!    then renamed into place.

pub mod layout;
pub mod surgery;
pub mod templates;
pub mod tokenizer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array4};
use ort::session::SessionInputValue;
use ort::value::Tensor;

pub use layout::{Fact, Family, Layout};

use crate::bundle::{
    self, Bundle, DataFile, ImageSpec, ImportInfo, InputRole, InputSpec, Manifest, Modality,
    ModelSpec, Padding, SequenceSpec, ZeroShot, ZeroShotScoring,
};
use crate::encoder::{BundleEncoders, EncoderOptions, Input, SequenceTokenizer};
use crate::error::{Error, Result};
use crate::onnx::{dtype, model::build, Dim, GraphCut, GraphIndex, Model};
use crate::runtime::{Runtime, SessionOptions};

use self::layout::{Pad, Source, TokenizerSource};
use self::surgery::{Branch, Expect, Feed, Observed, Probe};

/// Settings of an import.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Bundle name: the folder created under the models folder.
    pub name: String,
    /// Add token outputs for late interaction where the graph allows (`--tokens auto`).
    pub tokens: bool,
    /// `logit_scale` (the multiplier, `exp(t)`), when the export does not carry it.
    pub logit_scale: Option<f32>,
    /// SigLIP's `logit_bias`, when the export does not carry it.
    pub logit_bias: Option<f32>,
    /// Prompt templates; default: the export's own, else OpenAI's 80 ImageNet templates.
    pub templates: Option<Vec<String>>,
    /// Session settings for the sample runs.
    pub session: SessionOptions,
}

impl ImportOptions {
    /// Options for a bundle called `name`, with token outputs.
    pub fn new(name: impl Into<String>) -> Self {
        ImportOptions {
            name: name.into(),
            tokens: true,
            logit_scale: None,
            logit_bias: None,
            templates: None,
            session: SessionOptions::default(),
        }
    }

    /// Token outputs on (`auto`) or off (`none`).
    pub fn with_tokens(mut self, tokens: bool) -> Self {
        self.tokens = tokens;
        self
    }

    /// The logit scale to use when the export has none.
    pub fn with_logit_scale(mut self, scale: Option<f32>) -> Self {
        self.logit_scale = scale;
        self
    }

    /// The logit bias to use when the export has none.
    pub fn with_logit_bias(mut self, bias: Option<f32>) -> Self {
        self.logit_bias = bias;
        self
    }

    /// Prompt templates.
    pub fn with_templates(mut self, templates: Option<Vec<String>>) -> Self {
        self.templates = templates;
        self
    }

    /// Session settings for the sample runs.
    pub fn with_session(mut self, session: SessionOptions) -> Self {
        self.session = session;
        self
    }
}

/// What an import did.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ImportReport {
    /// The bundle folder written.
    pub bundle: PathBuf,
    /// Its name.
    pub name: String,
    /// The layout recognised.
    pub layout: Layout,
    /// The family (scoring).
    pub family: Family,
    /// Every value and where it came from.
    pub facts: Vec<Fact>,
    /// Token outputs: per side, the token count or why there are none.
    pub tokens: Vec<TokenOutcome>,
    /// What else the import did or noticed.
    pub notes: Vec<String>,
}

/// Whether a side got a token output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenOutcome {
    /// The side.
    pub modality: Modality,
    /// Tokens per item (patches, or up to `max_length` text tokens) when added.
    pub tokens: Option<usize>,
    /// The copied ops, or why there is no token output.
    pub detail: String,
}

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::Import {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Imports the export in `src` as bundle `options.name` under `models_dir`.
pub fn import(
    runtime: &std::sync::Arc<Runtime>,
    src: &Path,
    models_dir: &Path,
    options: &ImportOptions,
) -> Result<ImportReport> {
    let name = options.name.trim();
    if name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
    {
        return Err(Error::InvalidConfig {
            name: "name".into(),
            reason: format!("`{name}` must be a plain folder name"),
        });
    }
    let dest = models_dir.join(name);
    if dest.exists() {
        return Err(Error::InvalidConfig {
            name: "name".into(),
            reason: format!(
                "{} already exists; choose another --name or remove it",
                dest.display()
            ),
        });
    }
    let source = layout::detect(src)?;
    std::fs::create_dir_all(models_dir).map_err(|e| Error::io(models_dir, e))?;
    remove_stale_work(models_dir, name);
    let work = TempDir::create(models_dir.join(format!(".import-{name}-{}", std::process::id())))?;
    let mut notes = Vec::new();
    let mut facts = source.facts.clone();

    // Tokenizer.
    let tokenizer_file = work.path.join("tokenizer.json");
    let vocab = write_tokenizer(&source, &tokenizer_file, &mut facts)?;
    if let (Some(model_vocab), Some(tok_vocab)) = (source.text.vocab_size, vocab) {
        if tok_vocab > model_vocab {
            return Err(refuse(
                &source.dir,
                format!("the tokenizer has {tok_vocab} tokens but the text model's vocabulary has {model_vocab}"),
            ));
        }
    }
    let pad_id = match &source.text.pad {
        Pad::Id(id) => *id,
        Pad::Token(t) => {
            let tk = tokenizers::Tokenizer::from_file(&tokenizer_file)
                .map_err(|e| refuse(&tokenizer_file, format!("cannot read the tokenizer: {e}")))?;
            tk.token_to_id(t).ok_or_else(|| {
                refuse(
                    &source.dir,
                    format!("the padding token `{t}` is not in the tokenizer's vocabulary"),
                )
            })?
        }
    };
    facts.push(Fact {
        field: "text.pad_id".into(),
        value: pad_id.to_string(),
        source: "the padding token's id in the tokenizer".into(),
    });

    // Which file is which (open_clip: by their inputs).
    let (text_file, image_file) = match source.layout {
        Layout::OpenClip => assign_towers(&source)?,
        _ => (source.text_model.clone(), source.image_model.clone()),
    };
    let mut data_names = DataNames::default();
    let mut towers = Vec::new();
    let mut outcomes = Vec::new();
    let mut pad_to_max = source.text.pad_to_max;
    let mut scalars_from_graph: Option<(f32, Option<f32>)> = None;
    for (modality, file, out_index) in [
        (Modality::Image, &image_file, 1usize),
        (Modality::Text, &text_file, 0usize),
    ] {
        let mapped = MappedModel::open(file)?;
        let model = Model::parse(&mapped.bytes)
            .map_err(|e| refuse(file, format!("not a valid ONNX model: {e}")))?;
        if source.layout == Layout::HfSingle && modality == Modality::Image {
            scalars_from_graph = logits_scalars(&model, file)?;
        }
        let image = modality == Modality::Image;
        if let Some(what) = model
            .graph
            .external_elsewhere()
            .map_err(|e| refuse(file, format!("not a valid ONNX model: {e}")))?
        {
            return Err(refuse(
                file,
                format!("{what} is stored in an external data file; weft carries external data only for top-level initializers"),
            ));
        }
        let io = surgery::tower_io(&model.graph, image, source.outputs[out_index].as_deref())
            .map_err(|r| refuse(file, r))?;
        let fixed_batch = io.feeds.iter().find_map(|f| f.fixed(0));
        let relocate = data_names.map(file, &model, modality, &work.path)?;
        let stem = modality.as_str();
        let batch = fixed_batch.unwrap_or(2);
        let mut probe = RuntimeProbe {
            runtime,
            options: &options.session,
            dir: &work.path,
            feeds: Vec::new(),
            relocate: relocate.clone(),
            count: 0,
        };
        let ix = GraphIndex::new(&model.graph).map_err(|e| refuse(file, e.0))?;
        // Sample inputs; for text, what padding the model needs.
        let (expect, tok) = if image {
            let px = io
                .feeds
                .iter()
                .find(|f| f.role == InputRole::Pixels)
                .expect("tower_io checks there is one");
            let (h, w) = (source.image.size[0], source.image.size[1]);
            for (i, want) in [(2, h), (3, w)] {
                if let Some(fixed) = px.fixed(i) {
                    if fixed != want {
                        return Err(refuse(
                            file,
                            format!("the graph's input `{}` is {fixed} pixels on axis {i}, the preprocessing makes {want}", px.name),
                        ));
                    }
                }
            }
            probe.feeds = vec![(px.name.clone(), sample_pixels(batch, h, w))];
            let patches = source.image.patch.map(|p| (h / p) * (w / p));
            (
                Expect {
                    batch,
                    seq: None,
                    patches,
                    image: true,
                },
                None,
            )
        } else {
            let ids = io
                .feeds
                .iter()
                .find(|f| f.role == InputRole::Ids)
                .expect("tower_io checks there is one");
            let spec = sequence_spec_for_probe(&source, pad_id);
            let tok = SequenceTokenizer::from_spec(&work.path, &spec, Modality::Text)?;
            let max = source.text.max_length;
            if let Some(fixed) = ids.fixed(1) {
                if fixed != max {
                    return Err(refuse(
                        file,
                        format!(
                            "the graph's input `{}` holds {fixed} tokens, the configuration says {max}",
                            ids.name
                        ),
                    ));
                }
                pad_to_max = true;
                facts.push(Fact {
                    field: "text.padding".into(),
                    value: "max_length".into(),
                    source: format!(
                        "the graph's input `{}` has a fixed length of {fixed}",
                        ids.name
                    ),
                });
            } else {
                // Does padding change the pooled output? Run it both ways.
                let pooled_with = |probe: &mut RuntimeProbe<'_>,
                                   to_max: bool|
                 -> Result<Vec<f32>> {
                    probe.feeds = sample_text(&tok, &io.feeds, batch, pad_id, to_max, max)?.0;
                    let mut cut = GraphCut::new(&model.graph, ix.required(&[io.pooled.as_str()]));
                    cut.outputs = vec![build::value_info(&io.pooled, None, None)];
                    let seen = probe.run(&model, &cut, std::slice::from_ref(&io.pooled))?;
                    Ok(seen
                        .get(&io.pooled)
                        .and_then(|o| o.values.clone())
                        .unwrap_or_default())
                };
                let short = pooled_with(&mut probe, false)?;
                let long = pooled_with(&mut probe, true)?;
                let changes = short.len() != long.len()
                    || short.iter().zip(&long).any(|(a, b)| {
                        let d = (a - b).abs();
                        d.is_nan() || d > 1e-4 * (1.0 + b.abs())
                    });
                let (value, why) = match (changes, pad_to_max) {
                    (true, true) => ("max_length", "padding to max_length changes the pooled output (probed), and the model pads to max_length (see text.padding above)"),
                    (true, false) => ("longest", "padding changes the pooled output (probed); weft pads each batch to its longest text, as transformers' processor does"),
                    (false, _) => ("longest", "padding does not change the pooled output (probed): each batch is padded to its longest text"),
                };
                pad_to_max = value == "max_length";
                facts.push(Fact {
                    field: "text.padding".into(),
                    value: value.into(),
                    source: why.into(),
                });
            }
            let (feeds, t, _) = sample_text(&tok, &io.feeds, batch, pad_id, pad_to_max, max)?;
            probe.feeds = feeds;
            (
                Expect {
                    batch,
                    seq: Some(t),
                    patches: None,
                    image: false,
                },
                Some(tok),
            )
        };
        drop(tok);
        // The pooled output: its dimension, and whether the graph normalises it (seen, not assumed).
        let mut cut = GraphCut::new(&model.graph, ix.required(&[io.pooled.as_str()]));
        cut.outputs = vec![build::value_info(&io.pooled, None, None)];
        let seen = probe.run(&model, &cut, std::slice::from_ref(&io.pooled))?;
        let pooled = seen.get(&io.pooled);
        let dim = match pooled.map(|o| o.shape.as_slice()) {
            Some([b, d]) if *b == batch && *d > 0 => *d,
            other => {
                return Err(refuse(
                    file,
                    format!(
                        "the pooled output `{}` has shape {other:?}, expected [{batch}, dim]",
                        io.pooled
                    ),
                ))
            }
        };
        let values = pooled.and_then(|o| o.values.clone()).unwrap_or_default();
        if values.len() != batch * dim || values.iter().any(|x| !x.is_finite()) {
            return Err(refuse(
                file,
                format!(
                    "the pooled output `{}` is not finite float values on sample inputs",
                    io.pooled
                ),
            ));
        }
        let normalized = values
            .chunks(dim)
            .all(|r| (r.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() < 1e-4);
        let token_name = unique_name(&model, &format!("weft_{stem}_tokens"));
        let branch: Option<Branch> = if options.tokens {
            match surgery::token_branch(&model, &io.pooled, &expect, &token_name, &mut probe) {
                Ok(b) => Some(b),
                Err(reason) => {
                    outcomes.push(TokenOutcome {
                        modality,
                        tokens: None,
                        detail: reason.clone(),
                    });
                    notes.push(format!("{stem}: global only: {reason}"));
                    None
                }
            }
        } else {
            outcomes.push(TokenOutcome {
                modality,
                tokens: None,
                detail: "--tokens none".into(),
            });
            None
        };
        if let Some(b) = &branch {
            outcomes.push(TokenOutcome {
                modality,
                tokens: Some(if image {
                    b.rows
                } else {
                    source.text.max_length
                }),
                detail: format!(
                    "{} applied to {}",
                    b.ops.join(" + "),
                    if image {
                        format!("{} patch tokens (class token left out)", b.rows)
                    } else {
                        "every real text token (at most max_length)".into()
                    }
                ),
            });
            notes.push(format!(
                "{stem}: token output `{}` = {} on the last hidden states{}",
                b.output,
                b.ops.join(" + "),
                if image { ", class token left out" } else { "" }
            ));
        }
        // The final graph.
        let mut cut = GraphCut::new(
            &model.graph,
            surgery::final_keep(&ix, &io.pooled, branch.as_ref()),
        );
        let pooled_vi = model
            .graph
            .outputs
            .iter()
            .find(|o| o.name == io.pooled)
            .map(|o| o.raw.to_vec())
            .unwrap_or_else(|| build::value_info(&io.pooled, Some(dtype::FLOAT), None));
        cut.outputs = vec![pooled_vi];
        cut.relocate = relocate.clone();
        if let Some(b) = &branch {
            cut.extra_nodes = b.nodes.clone();
            cut.extra_initializers = b.initializers.clone();
            cut.outputs.push(build::value_info(
                &b.output,
                Some(dtype::FLOAT),
                Some(&[
                    Dim::Param("batch".into()),
                    Dim::Param("tokens".into()),
                    Dim::Value(dim as i64),
                ]),
            ));
        }
        let onnx_name = format!("{stem}.onnx");
        let onnx_path = work.path.join(&onnx_name);
        write_model(&onnx_path, &model, &cut)?;
        let external_data = cut
            .data_files()
            .into_iter()
            .map(|f| {
                let p = work.path.join(&f);
                Ok(DataFile {
                    sha256: bundle::sha256_file(&p)?,
                    file: f,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let inputs = io
            .feeds
            .iter()
            .map(|f| InputSpec {
                name: f.name.clone(),
                dtype: f.dtype_name().into(),
                role: Some(f.role),
            })
            .collect();
        let spec = ModelSpec {
            model: onnx_name.clone(),
            model_sha256: bundle::sha256_file(&onnx_path)?,
            dim,
            external_data,
            inputs,
            embeds_output: io.pooled.clone(),
            tokens_output: branch.as_ref().map(|b| b.output.clone()),
            normalize_embeds: !normalized,
            normalize_tokens: branch.is_some(),
            fixed_batch,
        };
        if normalized {
            notes.push(format!(
                "{stem}: `{}` is L2-normalised in the graph",
                io.pooled
            ));
        } else {
            notes.push(format!(
                "{stem}: `{}` is not normalised in the graph; weft normalises it",
                io.pooled
            ));
        }
        if let Some(b) = fixed_batch {
            notes.push(format!(
                "{stem}: the graph's batch is fixed at {b}; weft runs {b} item(s) per call"
            ));
        }
        towers.push((modality, spec, io.feeds.clone(), branch.map(|b| b.rows)));
        drop(ix);
        drop(model);
        // What was written came from this mapping: a source cut short
        // meanwhile gave zeros, and the import must not publish them.
        mapped.check(file)?;
        drop(mapped);
    }
    for (m, _, _, _) in &towers {
        if !outcomes.iter().any(|o| o.modality == *m) {
            outcomes.push(TokenOutcome {
                modality: *m,
                tokens: None,
                detail: "no token output".into(),
            });
        }
    }

    // Zero-shot scoring.
    let zero_shot = zero_shot(&source, options, scalars_from_graph, &mut facts)?;
    let mut image_spec = None;
    let mut text_spec = None;
    for (modality, spec, _feeds, rows) in towers {
        match modality {
            Modality::Image => {
                let grid = rows.and_then(|r| grid_of(r, &source));
                image_spec = Some(image_spec_of(spec, &source, grid));
            }
            _ => {
                text_spec = Some(SequenceSpec {
                    model: spec,
                    tokenizer: "tokenizer.json".into(),
                    tokenizer_sha256: bundle::sha256_file(&tokenizer_file)?,
                    max_length: source.text.max_length,
                    padding: if pad_to_max {
                        Padding::MaxLength
                    } else {
                        Padding::Longest
                    },
                    pad_id: Some(pad_id),
                    text_cleanup: source.text.cleanup,
                });
            }
        }
    }
    let src_name = src
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| src.display().to_string());
    let manifest = Manifest {
        format_version: bundle::FORMAT_VERSION,
        name: name.to_string(),
        version: "1".into(),
        license: "that of the imported weights (see the model's own licence)".into(),
        description: format!(
            "{} export `{src_name}`, imported by weft {}",
            source.layout.as_str(),
            env!("CARGO_PKG_VERSION")
        ),
        zero_shot,
        text: text_spec,
        image: image_spec,
        molecule: None,
        import: Some(ImportInfo {
            layout: source.layout.as_str().into(),
            source: src_name.clone(),
            weft_version: env!("CARGO_PKG_VERSION").into(),
            facts: facts
                .iter()
                .map(|f| format!("{} = {}  <- {}", f.field, f.value, f.source))
                .collect(),
            notes: notes.clone(),
        }),
    };
    let toml = toml::to_string_pretty(&manifest)
        .map_err(|e| refuse(&work.path, format!("cannot write the manifest: {e}")))?;
    write_synced(&work.path.join(bundle::MANIFEST_FILE), toml.as_bytes())?;

    // Verify as any bundle is used, then put it in place.
    verify(runtime, &work.path, &options.session, &outcomes)?;
    work.commit(&dest)?;
    Ok(ImportReport {
        bundle: dest,
        name: name.to_string(),
        layout: source.layout,
        family: source.family,
        facts,
        tokens: outcomes,
        notes,
    })
}

fn grid_of(rows: usize, source: &Source) -> Option<[usize; 2]> {
    let p = source.image.patch?;
    let g = [source.image.size[0] / p, source.image.size[1] / p];
    (g[0] * g[1] == rows).then_some(g)
}

fn image_spec_of(model: ModelSpec, source: &Source, grid: Option<[usize; 2]>) -> ImageSpec {
    let i = &source.image;
    ImageSpec {
        model,
        patch_grid: grid,
        size: i.size,
        resize: i.resize,
        resize_shortest: i.resize_shortest,
        resize_rounding: i.resize_rounding,
        crop_rounding: i.crop_rounding,
        interpolation: i.interpolation,
        scale: i.scale,
        mean: i.mean,
        std: i.std,
        channel_order: bundle::ChannelOrder::Rgb,
        alpha: bundle::AlphaMode::Drop,
    }
}

fn sequence_spec_for_probe(source: &Source, pad_id: u32) -> SequenceSpec {
    SequenceSpec {
        model: ModelSpec {
            model: String::new(),
            model_sha256: String::new(),
            dim: 1,
            external_data: Vec::new(),
            inputs: Vec::new(),
            embeds_output: String::new(),
            tokens_output: None,
            normalize_embeds: false,
            normalize_tokens: false,
            fixed_batch: None,
        },
        tokenizer: "tokenizer.json".into(),
        tokenizer_sha256: String::new(),
        max_length: source.text.max_length,
        padding: Padding::Longest,
        pad_id: Some(pad_id),
        text_cleanup: source.text.cleanup,
    }
}

/// Writes the tokenizer as `tokenizer.json`; returns its vocabulary size.
fn write_tokenizer(source: &Source, out: &Path, facts: &mut Vec<Fact>) -> Result<Option<usize>> {
    let (json, size) = match &source.text.tokenizer {
        TokenizerSource::Json(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            let tk = tokenizers::Tokenizer::from_bytes(text.as_bytes())
                .map_err(|e| refuse(p, format!("not a tokenizers tokenizer.json: {e}")))?;
            (text, Some(tk.get_vocab_size(true)))
        }
        TokenizerSource::ClipBpe(p) => {
            let (json, v) = tokenizer::clip_bpe_json(p)?;
            facts.push(Fact {
                field: "text.vocab".into(),
                value: format!(
                    "{} tokens, <start_of_text> {}, <end_of_text> {}",
                    v.size, v.start, v.end
                ),
                source: "the BPE merges (open_clip SimpleTokenizer)".into(),
            });
            (json, Some(v.size))
        }
        TokenizerSource::SentencePiece {
            path,
            eos,
            specials,
        } => {
            let refs: Vec<&str> = specials.iter().map(String::as_str).collect();
            let (json, info) = tokenizer::sentencepiece_json(path, eos, &refs)?;
            (json, Some(info.size))
        }
    };
    write_synced(out, json.as_bytes())?;
    Ok(size)
}

/// open_clip: the two ONNX files, text first, told apart by their inputs.
fn assign_towers(source: &Source) -> Result<(PathBuf, PathBuf)> {
    let mut text = None;
    let mut image = None;
    for f in [&source.text_model, &source.image_model] {
        let mapped = MappedModel::open(f)?;
        let model = Model::parse(&mapped.bytes)
            .map_err(|e| refuse(f, format!("not a valid ONNX model: {e}")))?;
        let feeds = model.graph.feeds();
        let is_image = feeds.iter().any(|v| {
            v.elem_type == Some(dtype::FLOAT) && v.shape.as_ref().is_some_and(|s| s.len() == 4)
        });
        let is_text = feeds.iter().any(|v| {
            matches!(v.elem_type, Some(dtype::INT64 | dtype::INT32))
                && v.shape.as_ref().is_some_and(|s| s.len() == 2)
        });
        match (is_image, is_text) {
            (true, false) if image.is_none() => image = Some(f.clone()),
            (false, true) if text.is_none() => text = Some(f.clone()),
            _ => {
                return Err(refuse(
                    f,
                    "cannot tell whether this is the image or the text encoder: expected a float [batch, 3, h, w] input or an integer [batch, tokens] one",
                ))
            }
        }
    }
    match (text, image) {
        (Some(t), Some(i)) => Ok((t, i)),
        _ => Err(refuse(
            &source.dir,
            "the two ONNX files are not one image and one text encoder",
        )),
    }
}

/// The logit scale and bias from a single-file export's `logits_per_text`.
fn logits_scalars(model: &Model<'_>, file: &Path) -> Result<Option<(f32, Option<f32>)>> {
    let ix = GraphIndex::new(&model.graph).map_err(|e| refuse(file, e.0))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let Some(out) = model
        .graph
        .outputs
        .iter()
        .find(|o| o.name == "logits_per_text")
    else {
        return Ok(None);
    };
    let mut cur = out.name.clone();
    let mut bias = None;
    let mut scale = None;
    for _ in 0..6 {
        let Some((_, n)) = ix.producer(&cur) else {
            break;
        };
        let (vd, konst): (Vec<&String>, Vec<&String>) = n
            .inputs
            .iter()
            .filter(|i| !i.is_empty())
            .partition(|i| ix.is_value_dependent(i));
        match (n.op_type.as_str(), vd.as_slice(), konst.as_slice()) {
            ("Add", [x], [c]) if bias.is_none() && scale.is_none() => {
                bias = eval_scalar(&ix, c, dir);
                cur = (*x).clone();
            }
            ("Mul", [x], [c]) if scale.is_none() => {
                scale = eval_scalar(&ix, c, dir);
                cur = (*x).clone();
            }
            ("MatMul" | "Gemm", _, _) => break,
            _ => break,
        }
    }
    Ok(scale.map(|s| (s, bias)))
}

/// The value of a scalar constant expression (initializer, Constant, Cast, Exp, Identity).
fn eval_scalar(ix: &GraphIndex<'_, '_>, name: &str, dir: &Path) -> Option<f32> {
    eval_scalar_at(ix, name, dir, 0)
}

fn eval_scalar_at(ix: &GraphIndex<'_, '_>, name: &str, dir: &Path, depth: usize) -> Option<f32> {
    if let Some(t) = ix.constant(name) {
        let v = t.to_f64(dir).ok()?;
        return (v.len() == 1).then(|| v[0] as f32);
    }
    if depth > 8 {
        return None;
    }
    let (_, n) = ix.producer(name)?;
    let x = eval_scalar_at(ix, n.inputs.first()?, dir, depth + 1)?;
    match n.op_type.as_str() {
        "Exp" => Some(x.exp()),
        "Cast" | "Identity" | "Reshape" | "Squeeze" | "Unsqueeze" => Some(x),
        _ => None,
    }
}

fn zero_shot(
    source: &Source,
    options: &ImportOptions,
    from_graph: Option<(f32, Option<f32>)>,
    facts: &mut Vec<Fact>,
) -> Result<ZeroShot> {
    let mut looked = Vec::new();
    let mut scale = None;
    let mut bias = None;
    if let Some((s, b)) = from_graph {
        let file = source
            .scalar_files
            .first()
            .map(|p| rel(source, p))
            .unwrap_or_default();
        scale = Some((
            s,
            format!("{file}: the logit scale multiplying logits_per_text"),
        ));
        bias = b.map(|b| (b, format!("{file}: the bias added to logits_per_text")));
    }
    for f in &source.scalar_files {
        if f.extension().is_some_and(|e| e == "safetensors") {
            looked.push(format!(
                "{} (tensors logit_scale, logit_bias)",
                rel(source, f)
            ));
            if scale.is_none() {
                if let Some(t) = layout::safetensors_scalar(f, "logit_scale")? {
                    scale = Some((t.exp(), format!("{}: exp(logit_scale)", rel(source, f))));
                }
            }
            if bias.is_none() {
                if let Some(b) = layout::safetensors_scalar(f, "logit_bias")? {
                    bias = Some((b, format!("{}: logit_bias", rel(source, f))));
                }
            }
        } else {
            looked.push(format!("{} (the graph of logits_per_text)", rel(source, f)));
        }
    }
    if let Some(s) = options.logit_scale {
        scale = Some((s, "--logit-scale".into()));
    }
    if let Some(b) = options.logit_bias {
        bias = Some((b, "--logit-bias".into()));
    }
    if looked.is_empty() {
        looked.push("nothing: this layout carries no logit scale".into());
    }
    let Some((scale, scale_src)) = scale else {
        return Err(refuse(
            &source.dir,
            format!(
                "no logit scale for zero-shot scoring. Looked in: {}. Give it with --logit-scale S \
                 (the multiplier exp(t); OpenAI's and LAION's CLIP models trained to 100)",
                looked.join("; ")
            ),
        ));
    };
    facts.push(Fact {
        field: "zero_shot.logit_scale".into(),
        value: format!("{scale}"),
        source: scale_src,
    });
    let scoring = match source.family {
        Family::Clip => ZeroShotScoring::Softmax,
        Family::Siglip => ZeroShotScoring::Sigmoid,
    };
    let bias = match (scoring, bias) {
        (ZeroShotScoring::Sigmoid, Some((b, src))) => {
            facts.push(Fact { field: "zero_shot.logit_bias".into(), value: format!("{b}"), source: src });
            Some(b)
        }
        (ZeroShotScoring::Sigmoid, None) => {
            return Err(refuse(
                &source.dir,
                format!("SigLIP scores with a bias, and none was found. Looked in: {}. Give it with --logit-bias B", looked.join("; ")),
            ))
        }
        (_, _) => None,
    };
    facts.push(Fact {
        field: "zero_shot.scoring".into(),
        value: format!("{scoring:?}").to_lowercase(),
        source: format!("{} family", format!("{:?}", source.family).to_lowercase()),
    });
    let templates = match &options.templates {
        Some(t) => {
            facts.push(Fact {
                field: "zero_shot.templates".into(),
                value: format!("{} templates", t.len()),
                source: "--templates".into(),
            });
            t.clone()
        }
        None => {
            facts.push(Fact {
                field: "zero_shot.templates".into(),
                value: "OpenAI's 80 ImageNet templates".into(),
                source: "the export ships no templates".into(),
            });
            templates::OPENAI_IMAGENET
                .iter()
                .map(|s| s.to_string())
                .collect()
        }
    };
    Ok(ZeroShot {
        scoring,
        logit_scale: scale,
        logit_bias: bias,
        templates,
    })
}

fn rel(source: &Source, p: &Path) -> String {
    p.strip_prefix(&source.dir)
        .unwrap_or(p)
        .display()
        .to_string()
}

/// Encodes a sample image and text through the finished bundle.
fn verify(
    runtime: &std::sync::Arc<Runtime>,
    dir: &Path,
    session: &SessionOptions,
    outcomes: &[TokenOutcome],
) -> Result<()> {
    let bundle = Bundle::open(dir)?;
    let mut enc = BundleEncoders::new(
        std::sync::Arc::clone(runtime),
        bundle.clone(),
        EncoderOptions::default().with_session(session.clone()),
    )?;
    let (w, h) = (96u32, 64u32);
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
    let out = enc.encode(&[
        Input::Rgb8 {
            name: "sample image",
            width: w,
            height: h,
            pixels: &pixels,
        },
        Input::Text("a photo of a cat"),
    ]);
    for (r, m) in out.into_iter().zip([Modality::Image, Modality::Text]) {
        let e = r.map_err(|e| refuse(dir, format!("the new bundle fails on a sample {m}: {e}")))?;
        if e.embedding.len() != bundle.dim() || e.embedding.iter().any(|x| !x.is_finite()) {
            return Err(refuse(
                dir,
                format!(
                    "the new bundle's {m} embedding is not {} finite values",
                    bundle.dim()
                ),
            ));
        }
        let want = outcomes
            .iter()
            .find(|o| o.modality == m)
            .and_then(|o| o.tokens);
        match (m, want) {
            (Modality::Image, Some(rows)) if e.n_tokens != rows => {
                return Err(refuse(
                    dir,
                    format!(
                        "the image token output has {} rows, expected {rows}",
                        e.n_tokens
                    ),
                ))
            }
            (_, Some(_)) if e.n_tokens == 0 || e.tokens.iter().any(|x| !x.is_finite()) => {
                return Err(refuse(
                    dir,
                    format!("the {m} token output is empty or not finite"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Deterministic sample pixels with structure (so patches differ).
fn sample_pixels(b: usize, h: usize, w: usize) -> FeedValue {
    let mut a = Array4::<f32>::zeros((b, 3, h, w));
    for ((bi, c, y, x), v) in a.indexed_iter_mut() {
        let t = (bi * 7 + c * 3) as f32;
        *v = ((x as f32 * 0.11 + t).sin() * (y as f32 * 0.07 - t).cos()) * 1.5;
    }
    FeedValue::F32(a.into_dyn())
}

/// Sample feeds, the padded length, and each row's real length.
type SampleText = (Vec<(String, FeedValue)>, usize, Vec<usize>);

fn sample_text(
    tok: &SequenceTokenizer,
    feeds: &[Feed],
    batch: usize,
    pad_id: u32,
    pad_to_max: bool,
    max_length: usize,
) -> Result<SampleText> {
    let texts = [
        "a photo of a cat",
        "a diagram of two cats asleep on a red sofa by the window",
    ];
    let mut rows = Vec::new();
    for t in texts.iter().cycle().take(batch) {
        rows.push(tok.tokenize(t, "sample text")?.ids);
    }
    let longest = rows.iter().map(Vec::len).max().unwrap_or(1);
    let t = if pad_to_max { max_length } else { longest };
    let mut ids = Array2::<i64>::from_elem((batch, t), i64::from(pad_id));
    let mut mask = Array2::<i64>::zeros((batch, t));
    for (r, row) in rows.iter().enumerate() {
        for (c, id) in row.iter().enumerate() {
            ids[[r, c]] = i64::from(*id);
            mask[[r, c]] = 1;
        }
    }
    let mut out = Vec::new();
    for f in feeds {
        let v = match f.role {
            InputRole::Ids => ids.clone(),
            InputRole::Mask => mask.clone(),
            _ => Array2::<i64>::zeros((batch, t)),
        };
        out.push((
            f.name.clone(),
            if f.elem_type == dtype::INT32 {
                FeedValue::I32(v.mapv(|x| x as i32).into_dyn())
            } else {
                FeedValue::I64(v.into_dyn())
            },
        ));
    }
    Ok((out, t, rows.iter().map(Vec::len).collect()))
}

/// A sample input.
#[derive(Debug, Clone)]
enum FeedValue {
    F32(ndarray::ArrayD<f32>),
    I64(ndarray::ArrayD<i64>),
    I32(ndarray::ArrayD<i32>),
}

/// Runs cuts of the graph on the sample inputs, through ONNX Runtime.
struct RuntimeProbe<'r> {
    runtime: &'r Runtime,
    options: &'r SessionOptions,
    dir: &'r Path,
    feeds: Vec<(String, FeedValue)>,
    relocate: HashMap<String, String>,
    count: usize,
}

impl Probe for RuntimeProbe<'_> {
    fn run(
        &mut self,
        model: &Model<'_>,
        cut: &GraphCut<'_, '_>,
        outputs: &[String],
    ) -> Result<HashMap<String, Observed>> {
        self.count += 1;
        let path = self.dir.join(format!("probe-{}.onnx", self.count));
        let mut cut_relocated = GraphCut::new(cut.graph(), cut.keep().clone());
        cut_relocated.extra_nodes = cut.extra_nodes.clone();
        cut_relocated.extra_initializers = cut.extra_initializers.clone();
        cut_relocated.outputs = cut.outputs.clone();
        cut_relocated.relocate = self.relocate.clone();
        write_model(&path, model, &cut_relocated)?;
        let result = (|| {
            let mut session = self.runtime.session(
                &path,
                &self
                    .options
                    .clone()
                    .with_device(crate::runtime::Device::Cpu),
            )?;
            let keep: Vec<String> = session
                .session
                .inputs()
                .iter()
                .map(|i| i.name().to_string())
                .collect();
            let mut inputs: Vec<(String, SessionInputValue<'_>)> = Vec::new();
            for (name, v) in &self.feeds {
                if !keep.contains(name) {
                    continue;
                }
                let value: SessionInputValue<'_> = match v {
                    FeedValue::F32(a) => Tensor::from_array(a.clone())
                        .map_err(|e| Error::onnx("sample input", e))?
                        .into(),
                    FeedValue::I64(a) => Tensor::from_array(a.clone())
                        .map_err(|e| Error::onnx("sample input", e))?
                        .into(),
                    FeedValue::I32(a) => Tensor::from_array(a.clone())
                        .map_err(|e| Error::onnx("sample input", e))?
                        .into(),
                };
                inputs.push((name.clone(), value));
            }
            let out = session.session.run(inputs).map_err(|e| {
                Error::onnx(
                    format!(
                        "running a cut of the graph on sample inputs ({})",
                        path.display()
                    ),
                    e,
                )
            })?;
            let mut seen = HashMap::new();
            for name in outputs {
                let Some(v) = out.get(name.as_str()) else {
                    continue;
                };
                let (shape, values) = match v.try_extract_tensor::<f32>() {
                    Ok((shape, data)) => (
                        shape.iter().map(|d| *d as usize).collect(),
                        Some(data.to_vec()),
                    ),
                    Err(_) => match v.dtype() {
                        ort::value::ValueType::Tensor { shape, .. } => {
                            (shape.iter().map(|d| (*d).max(0) as usize).collect(), None)
                        }
                        _ => (Vec::new(), None),
                    },
                };
                seen.insert(name.clone(), Observed { shape, values });
            }
            Ok(seen)
        })();
        let _ = std::fs::remove_file(&path);
        result
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

fn write_model(path: &Path, model: &Model<'_>, cut: &GraphCut<'_, '_>) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    cut.write_model(model, &mut w)
        .map_err(|e| Error::io(path, e))?;
    let file = w
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

fn unique_name(model: &Model<'_>, base: &str) -> String {
    let taken = |n: &str| {
        model
            .graph
            .nodes
            .iter()
            .any(|x| x.outputs.iter().any(|o| o == n))
            || model.graph.inputs.iter().any(|v| v.name == n)
            || model.graph.initializers.iter().any(|t| t.name == n)
    };
    let mut name = base.to_string();
    let mut i = 1;
    while taken(&name) {
        name = format!("{base}_{i}");
        i += 1;
    }
    name
}

/// External data files of the source graphs, as named in the bundle.
#[derive(Default)]
struct DataNames {
    by_source: HashMap<PathBuf, String>,
}

impl DataNames {
    /// Links (or copies) the data files `model` reads into `work`; returns the renames.
    fn map(
        &mut self,
        file: &Path,
        model: &Model<'_>,
        modality: Modality,
        work: &Path,
    ) -> Result<HashMap<String, String>> {
        let dir = file.parent().unwrap_or(Path::new("."));
        let mut locations: Vec<&str> = model
            .graph
            .initializers
            .iter()
            .filter_map(|t| t.external_location())
            .collect();
        locations.sort_unstable();
        locations.dedup();
        let mut out = HashMap::new();
        for (i, loc) in locations.iter().enumerate() {
            let src = dir.join(loc);
            if Path::new(loc)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(refuse(
                    file,
                    format!("external data location `{loc}` is not a file beside the model"),
                ));
            }
            if !src.is_file() {
                return Err(refuse(
                    file,
                    format!("external data file {} is missing", src.display()),
                ));
            }
            let key = src.canonicalize().unwrap_or_else(|_| src.clone());
            let name = if let Some(n) = self.by_source.get(&key) {
                n.clone()
            } else {
                let n = if locations.len() == 1 {
                    format!("{}.onnx.data", modality.as_str())
                } else {
                    format!("{}.{i}.onnx.data", modality.as_str())
                };
                let dst = work.join(&n);
                if std::fs::hard_link(&src, &dst).is_err() {
                    std::fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
                }
                self.by_source.insert(key, n.clone());
                n
            };
            out.insert(loc.to_string(), name);
        }
        Ok(out)
    }
}

/// A read-only map of a model file.
struct MappedModel {
    bytes: crate::sys::Mapped,
}

impl MappedModel {
    fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let bytes = crate::sys::map_readonly(&file, path).map_err(|e| Error::io(path, e))?;
        Ok(MappedModel { bytes })
    }

    /// Fails when the file was cut short while mapped (its reads past the
    /// new end saw zeros).
    fn check(&self, path: &Path) -> Result<()> {
        if self.bytes.truncated(true) {
            return Err(Error::Corrupted {
                path: path.to_path_buf(),
                reason: "the model file was truncated or replaced while it was being imported; \
                         import again once it is complete"
                    .into(),
            });
        }
        Ok(())
    }
}

/// Removes `.import-NAME-PID` folders left by imports that were killed
/// (their process is gone).
fn remove_stale_work(models_dir: &Path, name: &str) {
    let prefix = format!(".import-{name}-");
    let Ok(entries) = std::fs::read_dir(models_dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // Without /proc (not Linux) nothing tells a dead import from a running one.
        let alive =
            !Path::new("/proc/self").exists() || Path::new("/proc").join(pid.to_string()).exists();
        if !alive && pid != std::process::id() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The import's working folder beside the destination, removed unless committed.
struct TempDir {
    path: PathBuf,
    done: bool,
}

impl TempDir {
    fn create(path: PathBuf) -> Result<Self> {
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempDir { path, done: false })
    }

    fn commit(mut self, dest: &Path) -> Result<()> {
        crate::format::sync_dir(&self.path).map_err(|e| Error::io(&self.path, e))?;
        std::fs::rename(&self.path, dest).map_err(|e| Error::io(dest, e))?;
        if let Some(parent) = dest.parent() {
            crate::format::sync_dir(parent).map_err(|e| Error::io(parent, e))?;
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_file_cut_while_mapped_fails_the_import_naming_it() {
        let dir = std::env::temp_dir().join(format!("weft-import-cut-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("visual.onnx");
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let mapped = MappedModel::open(&path).unwrap();
        mapped.check(&path).unwrap();
        // Cut inside the mapping's last page: no fault, only the size tells.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(9_000)
            .unwrap();
        let err = mapped.check(&path).unwrap_err();
        assert!(
            matches!(err, Error::Corrupted { .. }) && err.to_string().contains("visual.onnx"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
