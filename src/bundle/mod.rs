//! Model bundles: a folder with `bundle.toml` and the files it names.
//!
//! A bundle is self-describing (see [`manifest`] for the format) and verified
//! on open: every file the manifest names must exist and match its sha256,
//! and an ONNX file in the folder that the manifest does not name is refused.
//! When a session is created, [`check_session_io`] compares the graph's
//! inputs and outputs with the manifest. Nothing here touches the network.
//!
//! Output contract of an encoder: `embeds` `[B, D]` L2-normalised; `tokens`
//! `[B, T, D]` with every token L2-normalised (optional). The token mask is
//! the attention mask for sequences and "all patches" for images.

pub mod manifest;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use manifest::{
    AlphaMode, ChannelOrder, DataFile, ImageSpec, ImportInfo, InputRole, InputSpec, Interpolation,
    Manifest, ModelSpec, Padding, ResizeMode, Rounding, SequenceSpec, TextCleanup, ZeroShot,
    ZeroShotScoring, FORMAT_VERSION, OLDEST_FORMAT_VERSION,
};

use crate::error::{Error, Result};
pub use crate::modality::Modality;

/// The manifest's file name inside a bundle folder.
pub const MANIFEST_FILE: &str = "bundle.toml";
/// Environment variable with extra bundle folders (`:`-separated).
pub const MODELS_ENV: &str = "WEFT_MODELS";

/// A verified bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
    hash: String,
}

impl Bundle {
    /// Opens and verifies the bundle in `dir`: manifest, sha256 of every named file, no unknown ONNX files.
    pub fn open(dir: impl AsRef<Path>) -> Result<Bundle> {
        let dir = dir.as_ref().to_path_buf();
        let manifest_path = dir.join(MANIFEST_FILE);
        let text =
            std::fs::read_to_string(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        let bad = |reason: String| Error::Bundle {
            path: manifest_path.clone(),
            reason,
        };
        let manifest: Manifest = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&manifest.format_version) {
            return Err(bad(format!(
                "format_version {} is not supported (this weft reads {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})",
                manifest.format_version
            )));
        }
        let bundle = Bundle {
            hash: hex(&Sha256::digest(text.as_bytes())),
            dir,
            manifest,
        };
        bundle.validate_manifest()?;
        bundle.verify_files()?;
        Ok(bundle)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Bundle name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// sha256 of `bundle.toml`; since the manifest holds the hash of every
    /// file, this identifies the whole bundle.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Modalities with an encoder.
    pub fn modalities(&self) -> Vec<Modality> {
        Modality::ALL
            .into_iter()
            .filter(|m| self.model_spec(*m).is_some())
            .collect()
    }

    /// The ONNX part of a modality's encoder.
    pub fn model_spec(&self, modality: Modality) -> Option<&ModelSpec> {
        match modality {
            Modality::Text => self.manifest.text.as_ref().map(|s| &s.model),
            Modality::Image => self.manifest.image.as_ref().map(|s| &s.model),
            Modality::Molecule => self.manifest.molecule.as_ref().map(|s| &s.model),
        }
    }

    /// The sequence spec (text or molecule).
    pub fn sequence_spec(&self, modality: Modality) -> Option<&SequenceSpec> {
        match modality {
            Modality::Text => self.manifest.text.as_ref(),
            Modality::Molecule => self.manifest.molecule.as_ref(),
            Modality::Image => None,
        }
    }

    /// The image spec.
    pub fn image_spec(&self) -> Option<&ImageSpec> {
        self.manifest.image.as_ref()
    }

    /// The spec of `modality`, or an error saying the bundle has no such encoder.
    pub fn require(&self, modality: Modality) -> Result<&ModelSpec> {
        self.model_spec(modality)
            .ok_or_else(|| Error::MissingEncoder {
                bundle: self.manifest.name.clone(),
                modality,
            })
    }

    /// Whether the encoder of `modality` emits token matrices (late interaction possible).
    pub fn has_tokens(&self, modality: Modality) -> bool {
        self.model_spec(modality)
            .is_some_and(|s| s.tokens_output.is_some())
    }

    /// Embedding dimension shared by every encoder of the bundle.
    pub fn dim(&self) -> usize {
        self.modalities()
            .first()
            .and_then(|m| self.model_spec(*m))
            .map_or(0, |s| s.dim)
    }

    /// Absolute path of a file named in the manifest.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn validate_manifest(&self) -> Result<()> {
        let path = self.dir.join(MANIFEST_FILE);
        let bad = |reason: String| Error::Bundle {
            path: path.clone(),
            reason,
        };
        let m = &self.manifest;
        if m.name.trim().is_empty() {
            return Err(bad("`name` is empty".into()));
        }
        let modalities = self.modalities();
        if modalities.is_empty() {
            return Err(bad(
                "no encoder: add a [text], [image] or [molecule] table".into()
            ));
        }
        let dim = self.dim();
        for modality in modalities {
            let spec = self.require(modality)?;
            let at = |field: &str| format!("[{modality}] {field}");
            if spec.dim == 0 {
                return Err(bad(format!("{} must be > 0", at("dim"))));
            }
            if spec.dim != dim {
                return Err(bad(format!(
                    "{} is {} but another encoder has {dim}: all encoders of a bundle share one space",
                    at("dim"),
                    spec.dim
                )));
            }
            if spec.inputs.is_empty() {
                return Err(bad(format!("{} is empty", at("inputs"))));
            }
            let image = modality == Modality::Image;
            let mut roles = Vec::new();
            for input in &spec.inputs {
                if !["int64", "int32", "float32"].contains(&input.dtype.as_str()) {
                    return Err(bad(format!(
                        "{} `{}` has dtype `{}`; expected int64, int32 or float32",
                        at("inputs"),
                        input.name,
                        input.dtype
                    )));
                }
                if m.format_version >= 2 {
                    let role = input.role.ok_or_else(|| {
                        bad(format!(
                            "{} `{}` has no role (ids, mask, type_ids, pixels)",
                            at("inputs"),
                            input.name
                        ))
                    })?;
                    let fits = if image {
                        role == InputRole::Pixels
                    } else {
                        role != InputRole::Pixels
                    };
                    if !fits || roles.contains(&role) {
                        return Err(bad(format!(
                            "{} `{}`: role {role:?} is not valid here (each role once; pixels only for [image])",
                            at("inputs"),
                            input.name
                        )));
                    }
                    roles.push(role);
                }
            }
            if m.format_version >= 2 {
                let needed = if image {
                    InputRole::Pixels
                } else {
                    InputRole::Ids
                };
                if !roles.contains(&needed) {
                    return Err(bad(format!(
                        "{} has no input with role {needed:?}",
                        at("inputs")
                    )));
                }
            }
            if spec.fixed_batch == Some(0) {
                return Err(bad(format!("{} must be at least 1", at("fixed_batch"))));
            }
            check_relative(&spec.model).map_err(|r| bad(format!("{}: {r}", at("model"))))?;
            for data in &spec.external_data {
                check_relative(&data.file)
                    .map_err(|r| bad(format!("{}: {r}", at("external_data"))))?;
            }
        }
        for modality in [Modality::Text, Modality::Molecule] {
            if let Some(seq) = self.sequence_spec(modality) {
                check_relative(&seq.tokenizer)
                    .map_err(|r| bad(format!("[{modality}] tokenizer: {r}")))?;
                if seq.max_length < 2 {
                    return Err(bad(format!("[{modality}] max_length must be at least 2")));
                }
                if m.format_version < 2 && !seq.model.inputs.iter().any(|i| i.name == "input_ids") {
                    return Err(bad(format!("[{modality}] inputs must include `input_ids`")));
                }
            }
        }
        if let Some(img) = &self.manifest.image {
            if img.size[0] == 0 || img.size[1] == 0 {
                return Err(bad("[image] size must be positive".into()));
            }
            if img.resize == ResizeMode::ShortestSideCrop
                && img
                    .resize_shortest
                    .is_some_and(|s| s < img.size[0].min(img.size[1]))
            {
                return Err(bad(
                    "[image] resize_shortest is smaller than the crop size".into()
                ));
            }
            if img.std.contains(&0.0) {
                return Err(bad("[image] std has a zero".into()));
            }
            if img.model.tokens_output.is_some() && img.patch_grid.is_none() {
                return Err(bad("[image] has tokens_output but no patch_grid".into()));
            }
        }
        let z = &m.zero_shot;
        if !(z.logit_scale.is_finite() && z.logit_scale > 0.0) {
            return Err(bad(format!(
                "[zero_shot] logit_scale {} must be a positive number",
                z.logit_scale
            )));
        }
        match (z.scoring, z.logit_bias) {
            (ZeroShotScoring::Sigmoid, None) => {
                return Err(bad(
                    "[zero_shot] scoring = \"sigmoid\" needs logit_bias".into()
                ))
            }
            (ZeroShotScoring::Softmax, Some(_)) => {
                return Err(bad(
                    "[zero_shot] logit_bias is only used with scoring = \"sigmoid\"".into(),
                ))
            }
            (_, Some(b)) if !b.is_finite() => {
                return Err(bad(format!("[zero_shot] logit_bias {b} is not a number")))
            }
            _ => {}
        }
        if !m.zero_shot.templates.iter().all(|t| t.contains("{}")) {
            return Err(bad(
                "[zero_shot] every template needs the `{}` placeholder".into()
            ));
        }
        Ok(())
    }

    /// Every named file exists and matches its sha256; no unknown ONNX files.
    fn verify_files(&self) -> Result<()> {
        let mut named = vec![MANIFEST_FILE.to_string()];
        for modality in self.modalities() {
            let spec = self.require(modality)?;
            verify_sha256(&self.file(&spec.model), &spec.model_sha256)?;
            named.push(spec.model.clone());
            for data in &spec.external_data {
                verify_sha256(&self.file(&data.file), &data.sha256)?;
                named.push(data.file.clone());
            }
            if let Some(seq) = self.sequence_spec(modality) {
                verify_sha256(&self.file(&seq.tokenizer), &seq.tokenizer_sha256)?;
                named.push(seq.tokenizer.clone());
            }
        }
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let model_like = name.ends_with(".onnx")
                || name.ends_with(".onnx.data")
                || name.ends_with(".onnx_data")
                || name.ends_with(".ort");
            if model_like && !named.contains(&name) {
                return Err(Error::Bundle {
                    path: entry.path(),
                    reason: format!("unknown model file: {MANIFEST_FILE} does not name it, refusing to load the bundle"),
                });
            }
        }
        Ok(())
    }
}

/// Compares a session's inputs and outputs with the manifest.
pub fn check_session_io(
    spec: &ModelSpec,
    session: &ort::session::Session,
    file: &Path,
) -> Result<()> {
    use ort::value::{TensorElementType, ValueType};
    let bad = |reason: String| Error::Bundle {
        path: file.to_path_buf(),
        reason,
    };
    let graph_inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    for input in &spec.inputs {
        let Some(outlet) = session.inputs().iter().find(|o| o.name() == input.name) else {
            return Err(bad(format!(
                "input `{}` from the manifest is not in the graph (graph inputs: {})",
                input.name,
                graph_inputs.join(", ")
            )));
        };
        let expected = match input.dtype.as_str() {
            "int64" => TensorElementType::Int64,
            "int32" => TensorElementType::Int32,
            _ => TensorElementType::Float32,
        };
        match outlet.dtype() {
            ValueType::Tensor { ty, .. } if *ty == expected => {}
            other => {
                return Err(bad(format!(
                    "input `{}` is {other:?} in the graph, the manifest says {}",
                    input.name, input.dtype
                )))
            }
        }
    }
    for outlet in session.inputs() {
        if !spec.inputs.iter().any(|i| i.name == outlet.name()) {
            return Err(bad(format!(
                "graph input `{}` is not in the manifest",
                outlet.name()
            )));
        }
    }
    let check_output = |name: &str, rank: usize| -> Result<()> {
        let Some(outlet) = session.outputs().iter().find(|o| o.name() == name) else {
            let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
            return Err(bad(format!(
                "output `{name}` from the manifest is not in the graph (graph outputs: {})",
                names.join(", ")
            )));
        };
        match outlet.dtype() {
            ValueType::Tensor { ty, shape, .. } if *ty == TensorElementType::Float32 => {
                if shape.len() != rank {
                    return Err(bad(format!(
                        "output `{name}` has rank {}, expected {rank}",
                        shape.len()
                    )));
                }
                let last = shape[rank - 1];
                if last >= 0 && last as usize != spec.dim {
                    return Err(bad(format!(
                        "output `{name}` has dimension {last}, the manifest says dim = {}",
                        spec.dim
                    )));
                }
                Ok(())
            }
            other => Err(bad(format!(
                "output `{name}` is {other:?}, expected a float32 tensor"
            ))),
        }
    };
    check_output(&spec.embeds_output, 2)?;
    if let Some(tokens) = &spec.tokens_output {
        check_output(tokens, 3)?;
    }
    Ok(())
}

fn check_relative(name: &str) -> std::result::Result<(), String> {
    let p = Path::new(name);
    if name.is_empty()
        || p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!(
            "`{name}` must be a plain file name inside the bundle folder"
        ));
    }
    Ok(())
}

/// sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if !actual.eq_ignore_ascii_case(expected.trim()) {
        return Err(Error::ChecksumMismatch {
            path: path.to_path_buf(),
            expected: expected.trim().to_ascii_lowercase(),
            actual,
        });
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Resolves a bundle given by path or by name (a folder of that name in `dirs`).
pub fn resolve(name_or_path: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    let as_path = Path::new(name_or_path);
    if as_path.join(MANIFEST_FILE).is_file() {
        return Ok(as_path.to_path_buf());
    }
    let mut looked = vec![as_path.display().to_string()];
    for dir in dirs {
        let candidate = dir.join(name_or_path);
        if candidate.join(MANIFEST_FILE).is_file() {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    Err(Error::BundleNotFound {
        name: name_or_path.to_string(),
        searched: looked,
    })
}

/// One bundle folder and what is wrong with it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BundleStatus {
    /// The folder.
    pub path: PathBuf,
    /// Name and version from the manifest, when it could be read.
    pub name: Option<String>,
    /// Encoders (modalities) the bundle provides.
    pub modalities: Vec<String>,
    /// Problems found; empty when the bundle verified.
    pub problems: Vec<String>,
}

/// Every bundle folder (a folder with `bundle.toml`) directly inside `dirs`, with its problems.
/// `deep` also verifies sha256 of every file (reads them whole).
pub fn scan(dirs: &[PathBuf], deep: bool) -> Vec<BundleStatus> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        // Hidden folders are work in progress (an import or quantization
        // being written, or left by a killed one), not bundles.
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .filter(|p| p.join(MANIFEST_FILE).is_file())
            .collect();
        paths.sort();
        for path in paths {
            found.push(status_of(&path, deep));
        }
    }
    found
}

fn status_of(path: &Path, deep: bool) -> BundleStatus {
    let mut status = BundleStatus {
        path: path.to_path_buf(),
        name: None,
        modalities: Vec::new(),
        problems: Vec::new(),
    };
    let manifest = std::fs::read_to_string(path.join(MANIFEST_FILE))
        .map_err(|e| e.to_string())
        .and_then(|t| toml::from_str::<Manifest>(&t).map_err(|e| e.to_string()));
    match manifest {
        Ok(m) => {
            status.name = Some(format!("{} {}", m.name, m.version));
            let b = Bundle {
                dir: path.to_path_buf(),
                manifest: m,
                hash: String::new(),
            };
            status.modalities = b.modalities().iter().map(|m| m.to_string()).collect();
            if let Err(e) = b.validate_manifest() {
                status.problems.push(e.to_string());
            } else if deep {
                if let Err(e) = b.verify_files() {
                    status.problems.push(e.to_string());
                }
            }
        }
        Err(e) => status
            .problems
            .push(format!("{}: {e}", path.join(MANIFEST_FILE).display())),
    }
    status
}
