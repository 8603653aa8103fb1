//! `weft models import --quantize int8`: dynamic int8 weights through
//! ONNX Runtime's Python quantizer (`models/quantize.py`, the one place the
//! import calls Python), then a measured comparison with the fp32 bundle:
//! images per second and the cosine between int8 and fp32 embeddings.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use weft::bundle::{self, Bundle, DataFile, Manifest, Modality};
use weft::encoder::{BundleEncoders, Input};
use weft::import::ImportReport;

use super::Env;

/// The quantizer script, carried in the binary so an installed `weft` needs no checkout.
const SCRIPT: &str = include_str!("../../models/quantize.py");

/// What quantization measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuantizeReport {
    /// Images encoded per second, fp32.
    pub fp32_images_per_s: f64,
    /// Images encoded per second, int8.
    pub int8_images_per_s: f64,
    /// Sample images measured.
    pub images: usize,
    /// Where they came from.
    pub images_from: String,
    /// Mean cosine between int8 and fp32 image embeddings.
    pub image_cosine_mean: f32,
    /// Lowest such cosine.
    pub image_cosine_min: f32,
    /// Mean cosine between int8 and fp32 text embeddings.
    pub text_cosine_mean: f32,
    /// Bytes of ONNX weights, fp32 and int8.
    pub bytes: (u64, u64),
}

impl std::fmt::Display for QuantizeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "  int8: {:.1} images/s against {:.1} fp32 ({:.2}x), {} images ({})",
            self.int8_images_per_s,
            self.fp32_images_per_s,
            self.int8_images_per_s / self.fp32_images_per_s.max(1e-9),
            self.images,
            self.images_from
        )?;
        writeln!(
            f,
            "  int8 vs fp32 cosine: images mean {:.5} min {:.5}; texts mean {:.5}",
            self.image_cosine_mean, self.image_cosine_min, self.text_cosine_mean
        )?;
        write!(
            f,
            "  model files: {:.1} MB fp32 -> {:.1} MB int8",
            self.bytes.0 as f64 / 1e6,
            self.bytes.1 as f64 / 1e6
        )
    }
}

/// The Python with onnxruntime: `--python`, `WEFT_PYTHON`, `.weft/venv/bin/python`, `python3`.
fn python(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("WEFT_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = std::env::current_dir()
        .unwrap_or_default()
        .join(".weft/venv/bin/python");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("python3")
}

fn model_files(m: &Manifest) -> Vec<(Modality, String)> {
    let mut out = Vec::new();
    if let Some(t) = &m.text {
        out.push((Modality::Text, t.model.model.clone()));
    }
    if let Some(i) = &m.image {
        out.push((Modality::Image, i.model.model.clone()));
    }
    out
}

fn size_of(dir: &Path, m: &Manifest) -> u64 {
    let mut files: Vec<String> = model_files(m).into_iter().map(|(_, f)| f).collect();
    for spec in [
        m.text.as_ref().map(|t| &t.model),
        m.image.as_ref().map(|i| &i.model),
    ]
    .into_iter()
    .flatten()
    {
        files.extend(spec.external_data.iter().map(|d| d.file.clone()));
    }
    files.sort();
    files.dedup();
    files
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Quantizes the bundle `report` imported, in place (the fp32 files are replaced).
pub fn run(
    env: &Env,
    report: &ImportReport,
    python_given: Option<&Path>,
    samples: Option<&Path>,
) -> anyhow::Result<QuantizeReport> {
    let fp32_dir = report.bundle.clone();
    let parent = fp32_dir.parent().unwrap_or(Path::new(".")).to_path_buf();
    let int8_dir = parent.join(format!(".{}-int8-{}", report.name, std::process::id()));
    let result = (|| -> anyhow::Result<QuantizeReport> {
        if int8_dir.exists() {
            std::fs::remove_dir_all(&int8_dir)?;
        }
        std::fs::create_dir_all(&int8_dir)?;
        let fp32 = env.engine.bundle_at(&fp32_dir)?;
        let mut manifest = fp32.manifest().clone();
        let script = int8_dir.join("quantize.py");
        std::fs::write(&script, SCRIPT)?;
        let py = python(python_given);
        for (modality, file) in model_files(&manifest) {
            let out = Command::new(&py)
                .arg(&script)
                .arg(fp32_dir.join(&file))
                .arg(int8_dir.join(&file))
                .output()
                .with_context(|| {
                    format!(
                        "running {} (the Python with onnxruntime; set --python or WEFT_PYTHON)",
                        py.display()
                    )
                })?;
            if !out.status.success() {
                bail!(
                    "quantizing {file} failed ({}):\n{}{}",
                    py.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let spec = match modality {
                Modality::Image => &mut manifest.image.as_mut().expect("listed").model,
                _ => &mut manifest.text.as_mut().expect("listed").model,
            };
            spec.model_sha256 = bundle::sha256_file(&int8_dir.join(&file))?;
            let data = int8_dir.join(format!("{file}.data"));
            spec.external_data = if data.is_file() {
                vec![DataFile {
                    file: format!("{file}.data"),
                    sha256: bundle::sha256_file(&data)?,
                }]
            } else {
                Vec::new()
            };
        }
        std::fs::remove_file(&script)?;
        if let Some(t) = &manifest.text {
            std::fs::copy(fp32_dir.join(&t.tokenizer), int8_dir.join(&t.tokenizer))?;
        }
        if let Some(info) = manifest.import.as_mut() {
            info.notes.push(
                "int8: MatMul weights quantized per output channel after constant folding \
                 (onnxruntime.quantization.quantize_dynamic, QInt8); activations quantized at run time"
                    .into(),
            );
        }
        manifest.description = format!("{} (int8 weights)", manifest.description);
        std::fs::write(
            int8_dir.join(bundle::MANIFEST_FILE),
            toml::to_string(&manifest)?,
        )?;
        let int8 = env.engine.bundle_at(&int8_dir)?;
        let measured = measure(env, fp32, int8, samples)?;
        Ok(QuantizeReport {
            bytes: (
                size_of(&fp32_dir, env.engine.bundle_at(&fp32_dir)?.manifest()),
                size_of(&int8_dir, &manifest),
            ),
            ..measured
        })
    })();
    match result {
        Ok(r) => {
            let old = parent.join(format!(".{}-fp32-{}", report.name, std::process::id()));
            std::fs::rename(&fp32_dir, &old)?;
            if let Err(e) = std::fs::rename(&int8_dir, &fp32_dir) {
                // Put the fp32 bundle back rather than leave no bundle at all.
                let _ = std::fs::rename(&old, &fp32_dir);
                let _ = std::fs::remove_dir_all(&int8_dir);
                return Err(anyhow::Error::from(e).context(format!(
                    "moving the int8 bundle into {}; the fp32 bundle is kept",
                    fp32_dir.display()
                )));
            }
            std::fs::remove_dir_all(&old)?;
            Ok(r)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&int8_dir);
            Err(e.context(format!(
                "the fp32 bundle {} is kept; quantization did not complete",
                fp32_dir.display()
            )))
        }
    }
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// Sample images: a folder's images, `.weft/data/photos`, else synthetic ones.
fn sample_images(samples: Option<&Path>) -> anyhow::Result<(Vec<Vec<u8>>, String)> {
    let local = std::env::current_dir()?.join(".weft/data/photos");
    let dir = samples
        .map(Path::to_path_buf)
        .or_else(|| local.is_dir().then_some(local));
    if let Some(dir) = dir {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("sample images {}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| {
                    let e = e.to_string_lossy().to_lowercase();
                    ["jpg", "jpeg", "png", "webp"].contains(&e.as_str())
                })
            })
            .collect();
        files.sort();
        files.truncate(64);
        if !files.is_empty() {
            let n = files.len();
            let bytes = files
                .iter()
                .map(std::fs::read)
                .collect::<std::io::Result<Vec<_>>>()?;
            return Ok((bytes, format!("{n} photos from {}", dir.display())));
        }
    }
    // Smooth synthetic pictures (gradients and shapes), PNG-encoded.
    let mut out = Vec::new();
    for k in 0..16u32 {
        let img = image::RgbImage::from_fn(320, 240, |x, y| {
            let d = ((x as i32 - 160).pow(2) + (y as i32 - 120).pow(2)) as u32;
            image::Rgb([
                ((x * (k + 1)) % 256) as u8,
                ((y * 3 + k * 17) % 256) as u8,
                if d < 2500 * (k % 4 + 1) { 230 } else { 20 },
            ])
        });
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png)?;
        out.push(buf.into_inner());
    }
    Ok((
        out,
        "16 synthetic images (no photos found: pass --sample-images DIR)".into(),
    ))
}

/// Images per second, image embeddings, text embeddings.
type Measured = (f64, Vec<Vec<f32>>, Vec<Vec<f32>>);

fn measure(
    env: &Env,
    fp32: Bundle,
    int8: Bundle,
    samples: Option<&Path>,
) -> anyhow::Result<QuantizeReport> {
    let (images, from) = sample_images(samples)?;
    let names: Vec<String> = (0..images.len()).map(|i| format!("sample {i}")).collect();
    let inputs: Vec<Input<'_>> = images
        .iter()
        .zip(&names)
        .map(|(b, n)| Input::ImageBytes { name: n, bytes: b })
        .collect();
    let texts = [
        "a photo of a cat",
        "a cup of coffee on a table",
        "a rocket launch at night",
        "two people on a beach",
    ];
    let text_inputs: Vec<Input<'_>> = texts.iter().map(|t| Input::Text(t)).collect();
    let run = |bundle: Bundle| -> anyhow::Result<Measured> {
        let mut enc: BundleEncoders = env.engine.encoders(&bundle)?;
        enc.encode(&inputs[..1.min(inputs.len())]); // load + warm up
        let mut best = f64::INFINITY;
        let mut embeddings = Vec::new();
        for _ in 0..2 {
            let t = Instant::now();
            let out = enc.encode(&inputs);
            best = best.min(t.elapsed().as_secs_f64());
            embeddings = out
                .into_iter()
                .map(|r| r.map(|e| e.embedding))
                .collect::<weft::Result<Vec<_>>>()?;
        }
        let text = enc
            .encode(&text_inputs)
            .into_iter()
            .map(|r| r.map(|e| e.embedding))
            .collect::<weft::Result<Vec<_>>>()?;
        Ok((inputs.len() as f64 / best, embeddings, text))
    };
    let (fp32_rate, fp32_img, fp32_txt) = run(fp32)?;
    let (int8_rate, int8_img, int8_txt) = run(int8)?;
    let image_cos: Vec<f32> = fp32_img
        .iter()
        .zip(&int8_img)
        .map(|(a, b)| cos(a, b))
        .collect();
    let text_cos: Vec<f32> = fp32_txt
        .iter()
        .zip(&int8_txt)
        .map(|(a, b)| cos(a, b))
        .collect();
    Ok(QuantizeReport {
        fp32_images_per_s: fp32_rate,
        int8_images_per_s: int8_rate,
        images: images.len(),
        images_from: from,
        image_cosine_mean: image_cos.iter().sum::<f32>() / image_cos.len().max(1) as f32,
        image_cosine_min: image_cos.iter().copied().fold(1.0, f32::min),
        text_cosine_mean: text_cos.iter().sum::<f32>() / text_cos.len().max(1) as f32,
        bytes: (0, 0),
    })
}
