//! Recognising an export folder and reading what its own files say:
//! preprocessing, text, zero-shot. Every value carries where it came from
//! ([`Fact`]); a value the files do not give is taken from the documented
//! default of the library that wrote them (and said so), never guessed.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::bundle::{Interpolation, ResizeMode, Rounding};
use crate::encoder::Cleanup;
use crate::error::{Error, Result};

/// The export layouts weft imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `optimum-cli export onnx --task zero-shot-image-classification`: one `model.onnx`.
    HfSingle,
    /// `text_model.onnx` + `vision_model.onnx` (transformers.js-style repositories).
    HfSplit,
    /// `torch.onnx.export` of open_clip's `model.visual` and `encode_text`, with `open_clip_config.json`.
    OpenClip,
    /// Immich's `visual/model.onnx`, `textual/model.onnx` and `config.json`.
    Immich,
}

impl Layout {
    /// Short name, as written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::HfSingle => "hf-single",
            Layout::HfSplit => "hf-split",
            Layout::OpenClip => "open-clip",
            Layout::Immich => "immich",
        }
    }
}

/// The model family: how it scores and pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// CLIP-style: softmax over labels with a logit scale.
    Clip,
    /// SigLIP: a sigmoid per label with a logit scale and bias.
    Siglip,
}

/// One value and where it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fact {
    /// The bundle field, e.g. `image.mean`.
    pub field: String,
    /// Its value, as text.
    pub value: String,
    /// File and key, or the library default it is.
    pub source: String,
}

/// Where a tokenizer comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenizerSource {
    /// A `tokenizer.json`, used as is.
    Json(PathBuf),
    /// open_clip's gzipped BPE merges.
    ClipBpe(PathBuf),
    /// A SentencePiece model, as SiglipTokenizer uses it.
    SentencePiece {
        /// `spiece.model`.
        path: PathBuf,
        /// The end token appended.
        eos: String,
        /// Tokens matched whole in text.
        specials: Vec<String>,
    },
}

/// Image preprocessing read from the export.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFacts {
    /// `[height, width]` of the model input.
    pub size: [usize; 2],
    /// Resize mode.
    pub resize: ResizeMode,
    /// Shortest side before the crop.
    pub resize_shortest: Option<usize>,
    /// How the long side is rounded after scaling.
    pub resize_rounding: Rounding,
    /// How the centre-crop offset is rounded.
    pub crop_rounding: Rounding,
    /// Filter.
    pub interpolation: Interpolation,
    /// Pixel multiplier.
    pub scale: f32,
    /// Channel means.
    pub mean: [f32; 3],
    /// Channel standard deviations.
    pub std: [f32; 3],
    /// ViT patch size, when the config names one (a convolutional tower has none).
    pub patch: Option<usize>,
}

/// Text settings read from the export.
#[derive(Debug, Clone, PartialEq)]
pub struct TextFacts {
    /// The tokenizer.
    pub tokenizer: TokenizerSource,
    /// Maximum tokens, specials included.
    pub max_length: usize,
    /// Whether every input is padded to `max_length`.
    pub pad_to_max: bool,
    /// Padding token (its id is looked up in the tokenizer), or a fixed id.
    pub pad: Pad,
    /// Clean-up before tokenizing.
    pub cleanup: Cleanup,
    /// Vocabulary size the model expects, when the config says.
    pub vocab_size: Option<usize>,
}

/// The padding token.
#[derive(Debug, Clone, PartialEq)]
pub enum Pad {
    /// By its text (looked up in the tokenizer).
    Token(String),
    /// By id.
    Id(u32),
}

/// A recognised export.
#[derive(Debug, Clone)]
pub struct Source {
    /// The folder.
    pub dir: PathBuf,
    /// Its layout.
    pub layout: Layout,
    /// Its family.
    pub family: Family,
    /// ONNX file of the text tower.
    pub text_model: PathBuf,
    /// ONNX file of the image tower (the same file as the text one for [`Layout::HfSingle`]).
    pub image_model: PathBuf,
    /// Preferred pooled output names, text then image (`None`: the tower's only 2-D output).
    pub outputs: [Option<Vec<&'static str>>; 2],
    /// Image preprocessing.
    pub image: ImageFacts,
    /// Text settings.
    pub text: TextFacts,
    /// Files that may hold `logit_scale` / `logit_bias`: ONNX graphs with logits, safetensors.
    pub scalar_files: Vec<PathBuf>,
    /// Where each value came from.
    pub facts: Vec<Fact>,
}

struct Json {
    rel: String,
    value: Value,
}

impl Json {
    fn load(dir: &Path, rel: &str) -> Result<Option<Json>> {
        let path = dir.join(rel);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let value = serde_json::from_str(&text).map_err(|e| Error::Import {
            path: path.clone(),
            reason: format!("not valid JSON: {e}"),
        })?;
        Ok(Some(Json {
            rel: rel.to_string(),
            value,
        }))
    }

    fn get(&self, keys: &[&str]) -> Option<&Value> {
        let mut v = &self.value;
        for k in keys {
            v = v.get(k)?;
        }
        (!v.is_null()).then_some(v)
    }

    fn at(&self, keys: &[&str]) -> String {
        format!("{}:{}", self.rel, keys.join("."))
    }
}

/// Records facts as they are read.
struct Facts<'a> {
    dir: &'a Path,
    list: Vec<Fact>,
}

impl Facts<'_> {
    fn note(&mut self, field: &str, value: impl std::fmt::Display, source: impl Into<String>) {
        self.list.push(Fact {
            field: field.into(),
            value: value.to_string(),
            source: source.into(),
        });
    }

    fn refuse(&self, reason: impl Into<String>) -> Error {
        Error::Import {
            path: self.dir.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// A number from `json` at `keys`, or `default` named by `default_source`.
    fn number(
        &mut self,
        field: &str,
        json: Option<&Json>,
        keys: &[&str],
        default: Option<(f64, &str)>,
    ) -> Result<f64> {
        if let Some(j) = json {
            if let Some(v) = j.get(keys) {
                let n = v.as_f64().ok_or_else(|| {
                    self.refuse(format!("{} is `{v}`, expected a number", j.at(keys)))
                })?;
                self.note(field, fmt_num(n), j.at(keys));
                return Ok(n);
            }
        }
        match default {
            Some((d, why)) => {
                self.note(field, fmt_num(d), why);
                Ok(d)
            }
            None => Err(self.refuse(format!(
                "{} is missing and has no documented default",
                json.map_or_else(|| keys.join("."), |j| j.at(keys))
            ))),
        }
    }

    /// A positive whole number (a size, a length).
    fn count(
        &mut self,
        field: &str,
        json: Option<&Json>,
        keys: &[&str],
        default: Option<(f64, &str)>,
    ) -> Result<usize> {
        let n = self.number(field, json, keys, default)?;
        if n.fract() != 0.0 || !(1.0..=1e9).contains(&n) {
            return Err(self.refuse(format!(
                "{} is {n}, expected a positive whole number",
                json.map_or_else(|| keys.join("."), |j| j.at(keys))
            )));
        }
        Ok(n as usize)
    }

    fn triple(
        &mut self,
        field: &str,
        json: Option<&Json>,
        keys: &[&str],
        default: Option<([f32; 3], &str)>,
    ) -> Result<[f32; 3]> {
        if let Some(j) = json {
            if let Some(v) = j.get(keys) {
                let a = v.as_array().filter(|a| a.len() == 3).ok_or_else(|| {
                    self.refuse(format!("{} is `{v}`, expected three numbers", j.at(keys)))
                })?;
                let mut out = [0f32; 3];
                for (o, x) in out.iter_mut().zip(a) {
                    *o = x.as_f64().ok_or_else(|| {
                        self.refuse(format!("{} holds `{x}`, not a number", j.at(keys)))
                    })? as f32;
                }
                self.note(field, format!("{out:?}"), j.at(keys));
                return Ok(out);
            }
        }
        match default {
            Some((d, why)) => {
                self.note(field, format!("{d:?}"), why);
                Ok(d)
            }
            None => Err(self.refuse(format!(
                "{} is missing",
                json.map_or_else(|| keys.join("."), |j| j.at(keys))
            ))),
        }
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// open_clip's `OPENAI_DATASET_MEAN` / `_STD` (its `PreprocessCfg` defaults).
#[allow(clippy::excessive_precision)] // written as open_clip writes them
const OPENAI_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
const OPENAI_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Recognises the layout of `dir` and reads its configuration.
pub fn detect(dir: &Path) -> Result<Source> {
    if !dir.is_dir() {
        return Err(Error::Import {
            path: dir.to_path_buf(),
            reason: "not a folder: give the folder that holds the export".into(),
        });
    }
    let mut facts = Facts {
        dir,
        list: Vec::new(),
    };
    let source = if dir.join("visual/model.onnx").is_file()
        || dir.join("textual/model.onnx").is_file()
    {
        immich(dir, &mut facts)?
    } else if dir.join("open_clip_config.json").is_file() {
        open_clip(dir, &mut facts)?
    } else if dir.join("config.json").is_file() {
        hugging_face(dir, &mut facts)?
    } else {
        return Err(facts.refuse(
            "no layout weft imports was found. Looked for:\n  \
             - config.json (model_type clip or siglip) with model.onnx, or text_model.onnx + vision_model.onnx, \
               at the top or under onnx/ (Hugging Face: optimum, transformers.js)\n  \
             - open_clip_config.json with two .onnx files (open_clip: models/export_open_clip.py)\n  \
             - visual/model.onnx + textual/model.onnx + config.json (Immich)",
        ));
    };
    facts.note(
        "image.alpha",
        "drop",
        match source.layout {
            Layout::HfSingle | Layout::HfSplit => {
                "transformers convert_rgb: image.convert(\"RGB\")"
            }
            Layout::OpenClip => "open_clip _convert_to_rgb: image.convert(\"RGB\")",
            Layout::Immich => "Immich decode_pil: image.convert(\"RGB\")",
        },
    );
    Ok(Source {
        facts: facts.list,
        ..source
    })
}

fn require_file(facts: &Facts<'_>, dir: &Path, rel: &str, why: &str) -> Result<PathBuf> {
    let p = dir.join(rel);
    if p.is_file() {
        Ok(p)
    } else {
        Err(facts.refuse(format!("{rel} is missing ({why})")))
    }
}

fn hugging_face(dir: &Path, facts: &mut Facts<'_>) -> Result<Source> {
    let config = Json::load(dir, "config.json")?.expect("checked");
    let model_type = config
        .get(&["model_type"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let family = match model_type.as_str() {
        "clip" => Family::Clip,
        "siglip" => Family::Siglip,
        "siglip2" => {
            return Err(facts.refuse(
                "config.json: model_type `siglip2` is SigLIP 2 NaFlex (variable resolution, \
                 pixel_attention_mask and spatial_shapes inputs), which weft does not import; \
                 the fixed-resolution SigLIP 2 checkpoints (model_type `siglip`) import",
            ))
        }
        "" => return Err(facts.refuse("config.json has no model_type")),
        other => {
            return Err(facts.refuse(format!(
                "config.json: model_type `{other}` is not a CLIP-family model weft imports (clip, siglip)"
            )))
        }
    };
    facts.note(
        "family",
        format!("{family:?}").to_lowercase(),
        config.at(&["model_type"]),
    );
    // ONNX files: split first (smaller graphs), then the single file.
    let find = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
    let text = find(&["text_model.onnx", "onnx/text_model.onnx"]);
    let vision = find(&["vision_model.onnx", "onnx/vision_model.onnx"]);
    let single = find(&["model.onnx", "onnx/model.onnx"]);
    let (layout, text_model, image_model) = match (text, vision, &single) {
        (Some(t), Some(v), _) => (Layout::HfSplit, t, v),
        (_, _, Some(s)) => (Layout::HfSingle, s.clone(), s.clone()),
        _ => {
            return Err(facts.refuse(
                "config.json is a Hugging Face model, but no ONNX export is beside it: looked for \
                 model.onnx, onnx/model.onnx (optimum-cli export onnx --task zero-shot-image-classification) \
                 and text_model.onnx + vision_model.onnx (also under onnx/)",
            ))
        }
    };
    let outputs = match (layout, family) {
        (Layout::HfSplit, Family::Siglip) => {
            [Some(vec!["pooler_output"]), Some(vec!["pooler_output"])]
        }
        _ => [Some(vec!["text_embeds"]), Some(vec!["image_embeds"])],
    };
    let mut scalar_files: Vec<PathBuf> = single.into_iter().collect();
    scalar_files.extend(
        ["model.safetensors", "onnx/model.safetensors"]
            .iter()
            .map(|n| dir.join(n))
            .filter(|p| p.is_file()),
    );

    // Image preprocessing: preprocessor_config.json.
    let pre = Json::load(dir, "preprocessor_config.json")?
        .ok_or_else(|| facts.refuse("preprocessor_config.json is missing (image preprocessing)"))?;
    let (vision_default_size, vision_default_patch, class) = match family {
        Family::Clip => (224.0, 32.0, "CLIPVisionConfig"),
        Family::Siglip => (224.0, 16.0, "SiglipVisionConfig"),
    };
    let model_size = facts.count(
        "image.model_size",
        Some(&config),
        &["vision_config", "image_size"],
        Some((
            vision_default_size,
            &format!("transformers {class} default"),
        )),
    )?;
    let patch = facts.count(
        "image.patch_size",
        Some(&config),
        &["vision_config", "patch_size"],
        Some((
            vision_default_patch,
            &format!("transformers {class} default"),
        )),
    )?;
    let image = hf_image(&pre, model_size, family, facts)?;

    // Text: tokenizer files.
    let tok_cfg = Json::load(dir, "tokenizer_config.json")?;
    let max_pos = facts.count(
        "text.max_position_embeddings",
        Some(&config),
        &["text_config", "max_position_embeddings"],
        Some(match family {
            Family::Clip => (77.0, "transformers CLIPTextConfig default"),
            Family::Siglip => (64.0, "transformers SiglipTextConfig default"),
        }),
    )?;
    let mut max_length = max_pos;
    if let Some(t) = &tok_cfg {
        if let Some(m) = t.get(&["model_max_length"]).and_then(Value::as_f64) {
            if m >= 2.0 && (m as usize) < max_pos {
                max_length = m as usize;
                facts.note("text.max_length", max_length, t.at(&["model_max_length"]));
            }
        }
    }
    if max_length == max_pos {
        facts.note(
            "text.max_length",
            max_length,
            config.at(&["text_config", "max_position_embeddings"]),
        );
    }
    let pad_token = tok_cfg
        .as_ref()
        .and_then(|t| t.get(&["pad_token"]).map(|v| (t, v)))
        .and_then(|(t, v)| {
            let s = v
                .as_str()
                .or_else(|| v.get("content").and_then(Value::as_str))?;
            Some((s.to_string(), t.at(&["pad_token"])))
        });
    let tokenizer_json = dir.join("tokenizer.json");
    let spiece = dir.join("spiece.model");
    let (tokenizer, cleanup) = if tokenizer_json.is_file() {
        facts.note(
            "text.tokenizer",
            "tokenizer.json",
            "tokenizer.json (used as shipped)",
        );
        (TokenizerSource::Json(tokenizer_json), Cleanup::None)
    } else if spiece.is_file() && family == Family::Siglip {
        let t = tok_cfg.as_ref().ok_or_else(|| {
            facts.refuse("tokenizer_config.json is missing (SigLIP tokenizer settings)")
        })?;
        let lower = t
            .get(&["do_lower_case"])
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if !lower {
            return Err(facts.refuse(
                "tokenizer_config.json: do_lower_case is false; weft's SigLIP clean-up always lower-cases",
            ));
        }
        let name = |k: &str, d: &str| {
            t.get(&[k])
                .and_then(|v| {
                    v.as_str()
                        .or_else(|| v.get("content").and_then(Value::as_str))
                })
                .unwrap_or(d)
                .to_string()
        };
        let eos = name("eos_token", "</s>");
        let unk = name("unk_token", "<unk>");
        facts.note(
            "text.tokenizer",
            "spiece.model (SentencePiece, converted)",
            "spiece.model",
        );
        facts.note(
            "text.cleanup",
            "siglip",
            format!(
                "{} (SiglipTokenizer: lower case, canonicalize)",
                t.at(&["tokenizer_class"])
            ),
        );
        (
            TokenizerSource::SentencePiece {
                path: spiece,
                specials: vec![eos.clone(), unk],
                eos,
            },
            Cleanup::Siglip,
        )
    } else {
        return Err(facts.refuse(
            "no tokenizer: looked for tokenizer.json and (SigLIP) spiece.model beside config.json",
        ));
    };
    let pad = match pad_token {
        Some((t, src)) => {
            facts.note("text.pad_token", &t, src);
            Pad::Token(t)
        }
        None => {
            let id = facts.number(
                "text.pad_id",
                Some(&config),
                &["text_config", "pad_token_id"],
                None,
            )?;
            Pad::Id(id as u32)
        }
    };
    let pad_to_max = family == Family::Siglip;
    facts.note(
        "text.padding",
        if pad_to_max { "max_length" } else { "longest" },
        match family {
            Family::Siglip => "SigLIP was trained on texts padded to max_length (transformers' SiglipProcessor: padding=\"max_length\")",
            Family::Clip => "CLIP pools the end token under a causal mask: padding does not change it",
        },
    );
    let vocab_size = config
        .get(&["text_config", "vocab_size"])
        .and_then(Value::as_u64)
        .map(|v| v as usize);
    Ok(Source {
        dir: dir.to_path_buf(),
        layout,
        family,
        text_model,
        image_model,
        outputs,
        image: ImageFacts {
            patch: Some(patch),
            ..image
        },
        text: TextFacts {
            tokenizer,
            max_length,
            pad_to_max,
            pad,
            cleanup,
            vocab_size,
        },
        scalar_files,
        facts: Vec::new(),
    })
}

fn hf_image(
    pre: &Json,
    model_size: usize,
    family: Family,
    facts: &mut Facts<'_>,
) -> Result<ImageFacts> {
    let processor = pre
        .get(&["image_processor_type"])
        .or_else(|| pre.get(&["feature_extractor_type"]))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (class, default_resample) = match processor.trim_end_matches("Fast") {
        "CLIPImageProcessor" | "CLIPFeatureExtractor" => ("CLIPImageProcessor", 3.0),
        "SiglipImageProcessor" => ("SiglipImageProcessor", 3.0),
        "" => {
            return Err(facts.refuse(format!(
                "{} names no image_processor_type",
                pre.rel
            )))
        }
        other => {
            return Err(facts.refuse(format!(
                "{}: image processor `{other}` is not one weft reads (CLIPImageProcessor, SiglipImageProcessor)",
                pre.rel
            )))
        }
    };
    let _ = family;
    if processor.ends_with("Fast") {
        facts.note(
            "image.processor",
            &processor,
            format!(
                "{}: the export names transformers' fast (torchvision) processor; weft resizes as Pillow does, as {class} does: pixels can differ from the fast processor's by a few levels",
                pre.rel
            ),
        );
    }
    let default = |what: &str| format!("transformers {class} default ({what})");
    let flag = |keys: &[&str], d: bool| pre.get(keys).and_then(Value::as_bool).unwrap_or(d);
    if !flag(&["do_resize"], true) {
        return Err(facts.refuse(format!(
            "{}: do_resize is false; weft needs a fixed input size",
            pre.rel
        )));
    }
    let (resample, resample_src) = match pre.get(&["resample"]) {
        Some(v) => (
            v.as_i64().ok_or_else(|| {
                facts.refuse(format!(
                    "{} is `{v}`, expected a PIL filter number",
                    pre.at(&["resample"])
                ))
            })?,
            pre.at(&["resample"]),
        ),
        None => (default_resample as i64, default("bicubic")),
    };
    let interpolation = pil_filter(resample).ok_or_else(|| {
        facts.refuse(format!(
            "{}: resample {resample} is a PIL filter weft does not have (lanczos 1, bilinear 2, bicubic 3)",
            pre.at(&["resample"])
        ))
    })?;
    facts.note(
        "image.interpolation",
        format!(
            "{} (PIL resample {resample})",
            format!("{interpolation:?}").to_lowercase()
        ),
        resample_src,
    );
    let scale = if flag(&["do_rescale"], true) {
        facts.number(
            "image.scale",
            Some(pre),
            &["rescale_factor"],
            Some((1.0 / 255.0, &default("1/255"))),
        )? as f32
    } else {
        facts.note("image.scale", 1, pre.at(&["do_rescale"]));
        1.0
    };
    let (mean, std) = if flag(&["do_normalize"], true) {
        let (dm, ds) = match class {
            "CLIPImageProcessor" => (OPENAI_MEAN, OPENAI_STD),
            _ => ([0.5; 3], [0.5; 3]),
        };
        (
            facts.triple(
                "image.mean",
                Some(pre),
                &["image_mean"],
                Some((dm, &default("mean"))),
            )?,
            facts.triple(
                "image.std",
                Some(pre),
                &["image_std"],
                Some((ds, &default("std"))),
            )?,
        )
    } else {
        facts.note(
            "image.mean",
            "[0, 0, 0] (no normalisation)",
            pre.at(&["do_normalize"]),
        );
        ([0.0; 3], [1.0; 3])
    };
    let size_v = pre.get(&["size"]);
    let hw = |v: &Value| -> Option<[usize; 2]> {
        let positive = |x: &Value| {
            x.as_u64()
                .filter(|n| (1..=100_000).contains(n))
                .map(|n| n as usize)
        };
        if let Some(n) = positive(v) {
            return Some([n; 2]);
        }
        Some([positive(v.get("height")?)?, positive(v.get("width")?)?])
    };
    let shortest = size_v
        .and_then(|v| v.get("shortest_edge"))
        .and_then(Value::as_u64);
    let crop = flag(&["do_center_crop"], class == "CLIPImageProcessor");
    let (resize, resize_shortest, size) = match (shortest, crop) {
        (Some(s), true) => {
            let c = pre
                .get(&["crop_size"])
                .and_then(hw)
                .ok_or_else(|| facts.refuse(format!("{} is missing", pre.at(&["crop_size"]))))?;
            facts.note(
                "image.resize",
                "shortest_side_crop",
                pre.at(&["size", "shortest_edge"]),
            );
            facts.note(
                "image.resize_shortest",
                s,
                pre.at(&["size", "shortest_edge"]),
            );
            facts.note("image.size", format!("{c:?}"), pre.at(&["crop_size"]));
            if (s as usize) < c[0].max(c[1]) {
                return Err(facts.refuse(format!(
                    "{}: the shortest edge {s} is smaller than the crop {c:?} (the processor pads; weft does not)",
                    pre.rel
                )));
            }
            (ResizeMode::ShortestSideCrop, Some(s as usize), c)
        }
        (Some(_), false) => {
            return Err(facts.refuse(format!(
                "{}: a shortest-edge resize without a centre crop gives images of varying size",
                pre.rel
            )))
        }
        (None, _) => {
            let s = size_v.and_then(hw).ok_or_else(|| {
                facts.refuse(format!(
                    "{} is missing or not {{height, width}}",
                    pre.at(&["size"])
                ))
            })?;
            if crop {
                let c = pre.get(&["crop_size"]).and_then(hw);
                if c.is_some_and(|c| c != s) {
                    return Err(facts.refuse(format!(
                        "{}: a resize to {s:?} followed by a crop to {c:?} is not a preprocessing weft has",
                        pre.rel
                    )));
                }
            }
            facts.note("image.resize", "squash", pre.at(&["size"]));
            facts.note("image.size", format!("{s:?}"), pre.at(&["size"]));
            (ResizeMode::Squash, None, s)
        }
    };
    if size != [model_size, model_size] {
        return Err(facts.refuse(format!(
            "the processor makes {size:?} images but config.json vision_config.image_size is {model_size}"
        )));
    }
    facts.note(
        "image.resize_rounding",
        "floor",
        "transformers get_resize_output_image_size: int(size * long / short)",
    );
    facts.note(
        "image.crop_rounding",
        "floor",
        "transformers center_crop: (height - crop) // 2",
    );
    Ok(ImageFacts {
        size,
        resize,
        resize_shortest,
        resize_rounding: Rounding::Floor,
        crop_rounding: Rounding::Floor,
        interpolation,
        scale,
        mean,
        std,
        patch: None,
    })
}

fn pil_filter(resample: i64) -> Option<Interpolation> {
    match resample {
        // 0 (nearest) is not offered: weft's nearest-neighbour resize is not Pillow's.
        1 => Some(Interpolation::Lanczos3),
        2 => Some(Interpolation::Bilinear),
        3 => Some(Interpolation::Bicubic),
        _ => None,
    }
}

fn named_filter(name: &str) -> Option<Interpolation> {
    match name {
        "bicubic" => Some(Interpolation::Bicubic),
        "bilinear" => Some(Interpolation::Bilinear),
        "lanczos" => Some(Interpolation::Lanczos3),
        _ => None,
    }
}

/// open_clip's `PreprocessCfg` (size, mean, std, interpolation, resize_mode)
/// and `CLIPTextCfg`, from `model` (the model config) and `pre`.
fn open_clip_facts(
    model: &Json,
    model_keys: &[&'static str],
    pre: &Json,
    pre_keys: &[&'static str],
    facts: &mut Facts<'_>,
    torchvision: bool,
) -> Result<(ImageFacts, usize, usize, Cleanup, Option<String>)> {
    let mk = |k: &[&'static str]| -> Vec<&'static str> { join(model_keys, k) };
    let pk = |k: &'static str| -> Vec<&'static str> { join(pre_keys, &[k]) };
    let image_size_v = model.get(&mk(&["vision_cfg", "image_size"]));
    let size = match pre.get(&pk("size")).or(image_size_v) {
        Some(v) => {
            let s = if let Some(n) = v.as_u64() {
                [n as usize; 2]
            } else {
                let a = v.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
                    facts.refuse(format!("{} is `{v}`, expected a size", pre.at(&pk("size"))))
                })?;
                [
                    a[0].as_u64().unwrap_or(0) as usize,
                    a[1].as_u64().unwrap_or(0) as usize,
                ]
            };
            if s[0] == 0 || s[1] == 0 || s[0] > 100_000 || s[1] > 100_000 {
                return Err(facts.refuse(format!(
                    "the image size `{v}` is not two positive whole numbers"
                )));
            }
            let src = if pre.get(&pk("size")).is_some() {
                pre.at(&pk("size"))
            } else {
                model.at(&mk(&["vision_cfg", "image_size"]))
            };
            facts.note("image.size", format!("{s:?}"), src);
            s
        }
        None => {
            facts.note(
                "image.size",
                "[224, 224]",
                "open_clip CLIPVisionCfg default image_size",
            );
            [224, 224]
        }
    };
    let d = |what: &str| format!("open_clip PreprocessCfg default {what}");
    let mean = facts.triple(
        "image.mean",
        Some(pre),
        &pk("mean"),
        Some((OPENAI_MEAN, &d("mean (OPENAI_DATASET_MEAN)"))),
    )?;
    let std = facts.triple(
        "image.std",
        Some(pre),
        &pk("std"),
        Some((OPENAI_STD, &d("std (OPENAI_DATASET_STD)"))),
    )?;
    let interp_name = match pre.get(&pk("interpolation")).and_then(Value::as_str) {
        // Immich's resize_pil always resamples with BICUBIC, whatever the config says.
        Some(s) if !torchvision => {
            facts.note(
                "image.interpolation",
                "bicubic",
                format!(
                    "Immich resize_pil: always BICUBIC ({} = `{s}` is not read by Immich)",
                    pre.at(&pk("interpolation"))
                ),
            );
            "bicubic".into()
        }
        Some(s) => {
            facts.note("image.interpolation", s, pre.at(&pk("interpolation")));
            s.to_string()
        }
        None if !torchvision => {
            facts.note(
                "image.interpolation",
                "bicubic",
                "Immich resize_pil: always BICUBIC",
            );
            "bicubic".into()
        }
        None => {
            facts.note("image.interpolation", "bicubic", d("interpolation"));
            "bicubic".into()
        }
    };
    let interpolation = named_filter(&interp_name).ok_or_else(|| {
        facts.refuse(format!(
            "interpolation `{interp_name}` is not one weft has (bicubic, bilinear, lanczos)"
        ))
    })?;
    let mode = match pre.get(&pk("resize_mode")).and_then(Value::as_str) {
        // Immich's transform is resize_pil + crop_pil: shortest side and centre crop.
        _ if !torchvision => {
            facts.note(
                "image.resize",
                "shortest",
                "Immich resize_pil + crop_pil (resize_mode is not read by Immich)",
            );
            "shortest".into()
        }
        Some(s) => {
            facts.note("image.resize", s, pre.at(&pk("resize_mode")));
            s.to_string()
        }
        None => {
            facts.note("image.resize", "shortest", d("resize_mode"));
            "shortest".into()
        }
    };
    let (resize, resize_shortest) = match mode.as_str() {
        "shortest" => {
            if size[0] != size[1] {
                return Err(facts.refuse(format!(
                    "resize_mode shortest with a non-square size {size:?} (open_clip's ResizeKeepRatio) is not a preprocessing weft has"
                )));
            }
            (ResizeMode::ShortestSideCrop, Some(size[0]))
        }
        "squash" => (ResizeMode::Squash, None),
        other => {
            return Err(facts.refuse(format!(
                "resize_mode `{other}` (letterbox with fill) is not a preprocessing weft has (shortest, squash)"
            )))
        }
    };
    let crop_rounding = if torchvision {
        facts.note(
            "image.crop_rounding",
            "half_even",
            "torchvision CenterCrop: int(round((height - crop) / 2))",
        );
        Rounding::HalfEven
    } else {
        facts.note(
            "image.crop_rounding",
            "floor",
            "Immich crop_pil: int(width / 2 - size / 2)",
        );
        Rounding::Floor
    };
    let resize_rounding = if torchvision {
        facts.note(
            "image.resize_rounding",
            "floor",
            "torchvision Resize: int(size * long / short)",
        );
        Rounding::Floor
    } else {
        facts.note(
            "image.resize_rounding",
            "float_ratio",
            "Immich resize_pil: int((long / short) * size), in doubles",
        );
        Rounding::FloatRatio
    };
    let patch = model
        .get(&mk(&["vision_cfg", "patch_size"]))
        .and_then(Value::as_u64)
        .filter(|p| *p > 0)
        .map(|p| p as usize)
        .or_else(|| {
            // open_clip's own ViT (no timm_model_name) defaults to patch 16.
            model
                .get(&mk(&["vision_cfg", "timm_model_name"]))
                .is_none()
                .then_some(16)
        });
    let image = ImageFacts {
        size,
        resize,
        resize_shortest,
        resize_rounding,
        crop_rounding,
        interpolation,
        scale: 1.0 / 255.0,
        mean,
        std,
        patch,
    };
    let context = facts.count(
        "text.max_length",
        Some(model),
        &mk(&["text_cfg", "context_length"]),
        Some((77.0, "open_clip CLIPTextCfg default context_length")),
    )?;
    let vocab = facts.count(
        "text.vocab_size",
        Some(model),
        &mk(&["text_cfg", "vocab_size"]),
        Some((49408.0, "open_clip CLIPTextCfg default vocab_size")),
    )?;
    let clean = model
        .get(&mk(&["text_cfg", "tokenizer_kwargs", "clean"]))
        .and_then(Value::as_str)
        .map(str::to_string);
    let hf_tokenizer = model
        .get(&mk(&["text_cfg", "hf_tokenizer_name"]))
        .and_then(Value::as_str)
        .map(str::to_string);
    let cleanup = match (clean.as_deref(), hf_tokenizer.is_some(), torchvision) {
        (Some("canonicalize"), _, true) => Cleanup::ClipCanonicalize,
        (Some("canonicalize"), _, false) => Cleanup::WhitespaceCanonicalize,
        (Some("whitespace"), _, true) => Cleanup::ClipWhitespace,
        (Some("lower"), _, true) | (None, false, true) => Cleanup::Clip,
        (None, true, true) => Cleanup::ClipWhitespace,
        (_, _, false) => Cleanup::Whitespace,
        (Some(other), _, true) => {
            return Err(facts.refuse(format!(
                "text_cfg.tokenizer_kwargs.clean `{other}` is not an open_clip clean-up weft has"
            )))
        }
    };
    let cleanup_source = match &clean {
        Some(_) => model.at(&mk(&["text_cfg", "tokenizer_kwargs", "clean"])),
        None if torchvision => "open_clip tokenizer default clean-up".into(),
        None => "Immich clean_text".into(),
    };
    facts.note(
        "text.cleanup",
        format!("{cleanup:?}").to_lowercase(),
        cleanup_source,
    );
    Ok((image, context, vocab, cleanup, hf_tokenizer))
}

fn join(a: &[&'static str], b: &[&'static str]) -> Vec<&'static str> {
    a.iter().chain(b).copied().collect()
}

fn onnx_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    out.sort();
    Ok(out)
}

fn open_clip(dir: &Path, facts: &mut Facts<'_>) -> Result<Source> {
    let cfg = Json::load(dir, "open_clip_config.json")?.expect("checked");
    let (model_keys, pre_keys): (&[&'static str], &[&'static str]) =
        if cfg.get(&["model_cfg"]).is_some() {
            (&["model_cfg"], &["preprocess_cfg"])
        } else {
            (&[], &["preprocess_cfg"])
        };
    let (image, context, vocab, cleanup, hf_tokenizer) =
        open_clip_facts(&cfg, model_keys, &cfg, pre_keys, facts, true)?;
    let files = onnx_files(dir)?;
    if files.len() != 2 {
        return Err(facts.refuse(format!(
            "open_clip layout: expected two .onnx files (image and text) beside open_clip_config.json, found {}: {}",
            files.len(),
            files.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect::<Vec<_>>().join(", ")
        )));
    }
    let family = if cfg
        .get(&[model_keys, &["init_logit_bias"]].concat())
        .is_some()
    {
        facts.note(
            "family",
            "siglip",
            cfg.at(&[model_keys, &["init_logit_bias"]].concat()),
        );
        Family::Siglip
    } else {
        facts.note(
            "family",
            "clip",
            "open_clip_config.json has no init_logit_bias",
        );
        Family::Clip
    };
    let tokenizer = if let Some(name) = &hf_tokenizer {
        let p = require_file(
            facts,
            dir,
            "tokenizer.json",
            &format!("the model uses the Hugging Face tokenizer `{name}`"),
        )?;
        facts.note(
            "text.tokenizer",
            "tokenizer.json",
            format!("open_clip_config.json text_cfg.hf_tokenizer_name = {name}"),
        );
        TokenizerSource::Json(p)
    } else {
        let p = ["bpe_simple_vocab_16e6.txt.gz"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| facts.refuse("bpe_simple_vocab_16e6.txt.gz is missing (open_clip's tokenizer vocabulary; it ships inside open-clip-torch)"))?;
        facts.note(
            "text.tokenizer",
            "bpe_simple_vocab_16e6.txt.gz (converted)",
            "open_clip SimpleTokenizer",
        );
        TokenizerSource::ClipBpe(p)
    };
    facts.note(
        "text.padding",
        "max_length",
        "open_clip.tokenize pads every text to context_length",
    );
    let pad = if hf_tokenizer.is_some() {
        let t = Json::load(dir, "tokenizer_config.json")?.ok_or_else(|| {
            facts.refuse("tokenizer_config.json is missing (the padding token of the Hugging Face tokenizer)")
        })?;
        let pad = t
            .get(&["pad_token"])
            .and_then(|v| {
                v.as_str()
                    .or_else(|| v.get("content").and_then(Value::as_str))
            })
            .ok_or_else(|| facts.refuse(format!("{} is missing", t.at(&["pad_token"]))))?
            .to_string();
        facts.note("text.pad_token", &pad, t.at(&["pad_token"]));
        Pad::Token(pad)
    } else {
        facts.note("text.pad_id", 0, "open_clip.tokenize pads with 0");
        Pad::Id(0)
    };
    let scalar_files = ["open_clip_model.safetensors", "model.safetensors"]
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect();
    Ok(Source {
        dir: dir.to_path_buf(),
        layout: Layout::OpenClip,
        family,
        // Which file is which is decided from their inputs (image: float NCHW; text: integer ids).
        text_model: files[0].clone(),
        image_model: files[1].clone(),
        outputs: [None, None],
        image,
        text: TextFacts {
            tokenizer,
            max_length: context,
            pad_to_max: true,
            pad,
            cleanup,
            vocab_size: Some(vocab),
        },
        scalar_files,
        facts: Vec::new(),
    })
}

fn immich(dir: &Path, facts: &mut Facts<'_>) -> Result<Source> {
    let visual = require_file(
        facts,
        dir,
        "visual/model.onnx",
        "Immich layout: the image encoder",
    )?;
    let textual = require_file(
        facts,
        dir,
        "textual/model.onnx",
        "Immich layout: the text encoder",
    )?;
    let cfg = Json::load(dir, "config.json")?.ok_or_else(|| {
        facts.refuse("config.json is missing (Immich layout: the open_clip model config)")
    })?;
    let pre = Json::load(dir, "visual/preprocess_cfg.json")?.ok_or_else(|| {
        facts.refuse("visual/preprocess_cfg.json is missing (Immich layout: image preprocessing)")
    })?;
    let (image, context, vocab, cleanup, _) = open_clip_facts(&cfg, &[], &pre, &[], facts, false)?;
    let tokenizer = require_file(
        facts,
        dir,
        "textual/tokenizer.json",
        "Immich layout: the tokenizer",
    )?;
    facts.note(
        "text.tokenizer",
        "textual/tokenizer.json",
        "textual/tokenizer.json (used as shipped)",
    );
    let tok_cfg = Json::load(dir, "textual/tokenizer_config.json")?
        .ok_or_else(|| facts.refuse("textual/tokenizer_config.json is missing (its pad_token)"))?;
    let pad = tok_cfg
        .get(&["pad_token"])
        .and_then(|v| {
            v.as_str()
                .or_else(|| v.get("content").and_then(Value::as_str))
        })
        .ok_or_else(|| facts.refuse(format!("{} is missing", tok_cfg.at(&["pad_token"]))))?
        .to_string();
    facts.note("text.pad_token", &pad, tok_cfg.at(&["pad_token"]));
    facts.note(
        "text.padding",
        "max_length",
        "Immich pads every text to context_length",
    );
    let family = if cfg.get(&["init_logit_bias"]).is_some() {
        Family::Siglip
    } else {
        Family::Clip
    };
    facts.note(
        "family",
        format!("{family:?}").to_lowercase(),
        "config.json (init_logit_bias present: siglip)",
    );
    Ok(Source {
        dir: dir.to_path_buf(),
        layout: Layout::Immich,
        family,
        text_model: textual,
        image_model: visual,
        outputs: [None, None],
        image,
        text: TextFacts {
            tokenizer: TokenizerSource::Json(tokenizer),
            max_length: context,
            pad_to_max: true,
            pad: Pad::Token(pad),
            cleanup,
            vocab_size: Some(vocab),
        },
        scalar_files: Vec::new(),
        facts: Vec::new(),
    })
}

/// A scalar tensor (`logit_scale`, `logit_bias`) from a safetensors file.
pub fn safetensors_scalar(path: &Path, name: &str) -> Result<Option<f32>> {
    use std::io::{Read, Seek, SeekFrom};
    let bad = |reason: String| Error::Import {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let n = u64::from_le_bytes(n);
    if n > 100 << 20 {
        return Err(bad(format!(
            "safetensors header of {n} bytes is implausible"
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| bad(format!("truncated safetensors header: {e}")))?;
    let header: Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("safetensors header is not JSON: {e}")))?;
    let Some(entry) = header.get(name) else {
        return Ok(None);
    };
    let dtype = entry.get("dtype").and_then(Value::as_str).unwrap_or("");
    let offsets: Vec<u64> = entry
        .get("data_offsets")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let count: u64 = entry
        .get("shape")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).product())
        .unwrap_or(1);
    if offsets.len() != 2 || count != 1 {
        return Err(bad(format!(
            "`{name}` is not a scalar (shape {:?})",
            entry.get("shape")
        )));
    }
    let len = offsets[1].saturating_sub(offsets[0]);
    if len > 8 {
        return Err(bad(format!(
            "`{name}` holds {len} bytes; a scalar has at most 8"
        )));
    }
    let start = offsets[0].checked_add(8 + n).ok_or_else(|| {
        bad(format!(
            "`{name}`: data offset {} is out of range",
            offsets[0]
        ))
    })?;
    f.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(path, e))?;
    let mut data = vec![0u8; len as usize];
    f.read_exact(&mut data)
        .map_err(|e| bad(format!("`{name}`: truncated data: {e}")))?;
    let v = match (dtype, data.len()) {
        ("F32", 4) => f32::from_le_bytes(data[..4].try_into().expect("4")),
        ("F64", 8) => f64::from_le_bytes(data[..8].try_into().expect("8")) as f32,
        ("BF16", 2) => f32::from_bits(u32::from(u16::from_le_bytes([data[0], data[1]])) << 16),
        ("F16", 2) => crate::onnx::model::f16_to_f32(u16::from_le_bytes([data[0], data[1]])),
        _ => {
            return Err(bad(format!(
                "`{name}` has dtype {dtype} and {} bytes; expected a float scalar",
                data.len()
            )))
        }
    };
    Ok(Some(v))
}
