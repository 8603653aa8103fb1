//! `weft doctor`: what weft found on this machine and what is wrong with it.
//!
//! The report never fails as a whole: each part records its own error, so a
//! missing library does not hide the CPU features or the model folders.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

pub use crate::bundle::BundleStatus;
use crate::runtime::{Device, Runtime, RuntimeOptions, SessionOptions};

/// What `weft doctor` prints.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// weft's own version.
    pub weft_version: String,
    /// The ONNX Runtime library, or why none could be loaded.
    pub runtime: std::result::Result<RuntimeInfo, String>,
    /// CPU features the kernels can use.
    pub cpu_features: Vec<(String, bool)>,
    /// Model bundle folders found, each with its problems.
    pub bundles: Vec<BundleStatus>,
    /// Folders searched for bundles.
    pub bundle_dirs: Vec<PathBuf>,
    /// Why each of `bundle_dirs` is searched (`--models-dir`, `WEFT_MODELS`,
    /// the project folder, ...), in the same order.
    pub bundle_dir_origins: Vec<String>,
}

/// The loaded ONNX Runtime.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeInfo {
    /// Library file.
    pub library: PathBuf,
    /// Which rule of the search found it.
    pub origin: String,
    /// Version string.
    pub version: String,
    /// Providers compiled into the library.
    pub available_providers: Vec<String>,
    /// Which provider the probe session ran on when CPU was asked for, or the error.
    pub cpu_probe: std::result::Result<String, String>,
    /// The same for CUDA (no fallback), or the real reason it is unavailable.
    pub cuda_probe: std::result::Result<String, String>,
}

/// Builds the report. `verify_bundles` hashes every model file (slower).
pub fn run(
    options: &RuntimeOptions,
    bundle_dirs: &[(PathBuf, String)],
    verify_bundles: bool,
) -> DoctorReport {
    let dirs: Vec<PathBuf> = bundle_dirs.iter().map(|(d, _)| d.clone()).collect();
    let runtime = Runtime::load(options)
        .map(|rt| {
            let probe = |device: Device| {
                rt.probe(
                    &SessionOptions::default()
                        .with_device(device)
                        .with_intra_threads(1),
                )
                .and_then(|p| {
                    if p.output_correct {
                        Ok(p.provider.to_string())
                    } else {
                        Err(crate::Error::onnx_message(
                            "probe",
                            "wrong output from the probe model",
                        ))
                    }
                })
                .map_err(|e| e.to_string())
            };
            RuntimeInfo {
                library: rt.library().to_path_buf(),
                origin: rt.origin().to_string(),
                version: rt.version().to_string(),
                available_providers: rt.available_providers(),
                cpu_probe: probe(Device::Cpu),
                cuda_probe: probe(Device::Cuda(0)),
            }
        })
        .map_err(|e| e.to_string());
    DoctorReport {
        weft_version: env!("CARGO_PKG_VERSION").to_string(),
        runtime,
        cpu_features: cpu_features(),
        bundles: crate::bundle::scan(&dirs, verify_bundles),
        bundle_dirs: dirs,
        bundle_dir_origins: bundle_dirs.iter().map(|(_, o)| o.clone()).collect(),
    }
}

impl DoctorReport {
    /// True when nothing that weft needs is broken (CUDA being unavailable is not a problem).
    pub fn healthy(&self) -> bool {
        matches!(&self.runtime, Ok(rt) if rt.cpu_probe.is_ok())
            && self.bundles.iter().all(|b| b.problems.is_empty())
    }
}

/// The x86 features the scoring kernels dispatch on.
pub fn cpu_features() -> Vec<(String, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        [
            ("sse4.2", std::is_x86_feature_detected!("sse4.2")),
            ("avx2", std::is_x86_feature_detected!("avx2")),
            ("fma", std::is_x86_feature_detected!("fma")),
            ("f16c", std::is_x86_feature_detected!("f16c")),
            ("avx512f", std::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::is_x86_feature_detected!("avx512bw")),
            ("avx512vl", std::is_x86_feature_detected!("avx512vl")),
            ("avx512vnni", std::is_x86_feature_detected!("avx512vnni")),
            ("avx512bf16", std::is_x86_feature_detected!("avx512bf16")),
            ("avxvnni", std::is_x86_feature_detected!("avxvnni")),
        ]
        .into_iter()
        .map(|(n, b)| (n.to_string(), b))
        .collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

impl fmt::Display for DoctorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "weft {}", self.weft_version)?;
        writeln!(f)?;
        writeln!(f, "ONNX Runtime")?;
        match &self.runtime {
            Ok(rt) => {
                writeln!(
                    f,
                    "  library:   {} (from {})",
                    rt.library.display(),
                    rt.origin
                )?;
                writeln!(f, "  version:   {}", rt.version)?;
                writeln!(f, "  providers: {}", rt.available_providers.join(", "))?;
                match &rt.cpu_probe {
                    Ok(p) => writeln!(f, "  cpu probe: ran on {p}")?,
                    Err(e) => writeln!(f, "  cpu probe: FAILED: {e}")?,
                }
                match &rt.cuda_probe {
                    Ok(p) => writeln!(f, "  cuda probe: ran on {p}")?,
                    Err(e) => writeln!(f, "  cuda probe: unavailable: {e}")?,
                }
            }
            Err(e) => {
                for line in e.lines() {
                    writeln!(f, "  PROBLEM: {line}")?;
                }
            }
        }
        writeln!(f)?;
        let on: Vec<&str> = self
            .cpu_features
            .iter()
            .filter(|(_, b)| *b)
            .map(|(n, _)| n.as_str())
            .collect();
        let off: Vec<&str> = self
            .cpu_features
            .iter()
            .filter(|(_, b)| !*b)
            .map(|(n, _)| n.as_str())
            .collect();
        writeln!(f, "CPU features")?;
        writeln!(
            f,
            "  present: {}",
            if on.is_empty() {
                "-".into()
            } else {
                on.join(" ")
            }
        )?;
        writeln!(
            f,
            "  absent:  {}",
            if off.is_empty() {
                "-".into()
            } else {
                off.join(" ")
            }
        )?;
        writeln!(f)?;
        writeln!(f, "Model bundles")?;
        for (i, dir) in self.bundle_dirs.iter().enumerate() {
            match self.bundle_dir_origins.get(i) {
                Some(o) => writeln!(f, "  searched: {} (from {o})", dir.display())?,
                None => writeln!(f, "  searched: {}", dir.display())?,
            }
        }
        if self.bundles.is_empty() {
            writeln!(
                f,
                "  none found (build the starter bundles with `models/build.sh`)"
            )?;
        }
        for b in &self.bundles {
            let name = b.name.as_deref().unwrap_or("?");
            let status = if b.problems.is_empty() {
                "ok"
            } else {
                "BROKEN"
            };
            writeln!(
                f,
                "  {name} [{}] {status}: {}",
                b.modalities.join(", "),
                b.path.display()
            )?;
            for p in &b.problems {
                writeln!(f, "    PROBLEM: {p}")?;
            }
        }
        Ok(())
    }
}
