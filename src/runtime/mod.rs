//! ONNX Runtime: loading the shared library, execution providers, sessions.
//!
//! All ONNX session setup of the crate happens here ([`Runtime::session`]),
//! so that every encoder gets the same provider handling:
//!
//! * [`Device::Cpu`] runs on the CPU provider.
//! * [`Device::Cuda`] means CUDA. If the provider cannot be registered the call
//!   fails with ONNX Runtime's real reason (a CPU-only library, a missing
//!   `libcublasLt.so.13`, no driver, ...), unless the caller set
//!   [`SessionOptions::allow_cpu_fallback`]; then the session runs on the CPU
//!   and [`ModelSession::fallback`] says why.
//! * [`Device::Auto`] tries CUDA device 0 and falls back to the CPU, reported
//!   the same way.
//!
//! ONNX Runtime is a process-wide library: the first [`Runtime::load`] loads
//! it, later calls share it.

mod discovery;
pub(crate) mod probe;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[cfg(feature = "cuda")]
use ort::ep::ExecutionProvider as _;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

pub use discovery::{
    locate, locate_with_origin, SearchPlaces, INSTALL_CPU, INSTALL_GPU, ORT_DYLIB_ENV, ORT_LIB_ENV,
};

use crate::error::{Error, Result};

/// How to find and load ONNX Runtime.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RuntimeOptions {
    /// Explicit library file or folder; first in the search order (see [`locate`]).
    pub ort_library: Option<PathBuf>,
    /// Look for the GPU build before the CPU build in the project-local folder.
    pub prefer_gpu: bool,
    /// A `.weft` project folder whose `onnxruntime/` is searched (third,
    /// after the explicit path and the environment). Never found by
    /// walking up: the CLI does that and passes the folder here.
    pub project_dir: Option<PathBuf>,
}

impl RuntimeOptions {
    /// Sets the explicit library path.
    pub fn with_ort_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.ort_library = Some(path.into());
        self
    }

    /// Sets the `.weft` project folder searched for the library.
    pub fn with_project_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.project_dir = Some(dir.into());
        self
    }

    /// Prefers the GPU build in the project-local folder.
    pub fn with_prefer_gpu(mut self, prefer_gpu: bool) -> Self {
        self.prefer_gpu = prefer_gpu;
        self
    }
}

/// Which hardware a session should run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Device {
    /// The CPU execution provider.
    #[default]
    Cpu,
    /// The CUDA execution provider on this device id.
    Cuda(i32),
    /// CUDA device 0 when it works, else the CPU (always reported).
    Auto,
}

impl std::str::FromStr for Device {
    type Err = Error;

    /// Parses `cpu`, `auto`, `cuda` or `cuda:N`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidConfig {
            name: "device".into(),
            reason: format!("`{s}` is not one of cpu, auto, cuda, cuda:N"),
        };
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "auto" => Ok(Device::Auto),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            other => {
                let id = other.strip_prefix("cuda:").ok_or_else(bad)?;
                id.parse::<i32>()
                    .ok()
                    .filter(|id| *id >= 0)
                    .map(Device::Cuda)
                    .ok_or_else(bad)
            }
        }
    }
}

/// The execution provider a session really uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActiveProvider {
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// The CUDA provider registered for this device (nodes CUDA cannot run stay on the CPU, as in ONNX Runtime).
    Cuda(i32),
}

impl std::fmt::Display for ActiveProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActiveProvider::Cpu => f.write_str("CPUExecutionProvider"),
            ActiveProvider::Cuda(id) => write!(f, "CUDAExecutionProvider:{id}"),
        }
    }
}

/// Per-session settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionOptions {
    /// Hardware to run on.
    pub device: Device,
    /// With [`Device::Cuda`]: run on the CPU (and say so) when CUDA fails, instead of failing.
    pub allow_cpu_fallback: bool,
    /// Intra-op threads of ONNX Runtime. Default: the cores available to the
    /// process (`std::thread::available_parallelism`), at most 8.
    pub intra_threads: usize,
    /// Whether idle intra-op threads spin before sleeping (ONNX Runtime's
    /// `session.intra_op.allow_spinning`). Default on: a text query's
    /// ~1.5 ms inference is ~0.7 ms slower without it. The image encoders
    /// turn it off, because their decode threads need the cores the
    /// spinning threads would hold (2 cores: full pipeline +7%).
    pub intra_spinning: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            device: Device::Cpu,
            allow_cpu_fallback: false,
            intra_threads: default_threads(),
            intra_spinning: true,
        }
    }
}

impl SessionOptions {
    /// Sets the device.
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Allows (or forbids) falling back from CUDA to the CPU.
    pub fn with_cpu_fallback(mut self, allow: bool) -> Self {
        self.allow_cpu_fallback = allow;
        self
    }

    /// Sets the number of intra-op threads (at least 1).
    pub fn with_intra_threads(mut self, threads: usize) -> Self {
        self.intra_threads = threads;
        self
    }

    /// Lets idle intra-op threads spin (or not) before they sleep.
    pub fn with_intra_spinning(mut self, spin: bool) -> Self {
        self.intra_spinning = spin;
        self
    }
}

/// The default intra-op thread count.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// A loaded ONNX Runtime library.
#[derive(Debug)]
pub struct Runtime {
    library: PathBuf,
    /// Which rule of the search found the library.
    origin: String,
    version: String,
    /// Folder of bundled CUDA/cuDNN libraries beside a GPU build, if any.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    cuda_libs: Option<PathBuf>,
    environment: ort::environment::Environment,
}

static LOADED: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

impl Runtime {
    /// Finds and loads ONNX Runtime, or returns the one already loaded in this process.
    pub fn load(options: &RuntimeOptions) -> Result<Arc<Runtime>> {
        let places = SearchPlaces::from_process(
            options.ort_library.clone(),
            options.project_dir.clone(),
            options.prefer_gpu,
        );
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rt) = loaded.as_ref() {
            // A caller that names a library gets that library or an error.
            if options.ort_library.is_some() {
                let requested = locate(&places)?;
                if !same_file(&requested, &rt.library) {
                    return Err(Error::RuntimeAlreadyLoaded {
                        loaded: rt.library.clone(),
                        requested,
                    });
                }
            }
            return Ok(Arc::clone(rt));
        }
        let (library, origin) = locate_with_origin(&places)?;
        let mut runtime = Self::load_from(library)?;
        runtime.origin = origin;
        let runtime = Arc::new(runtime);
        *loaded = Some(Arc::clone(&runtime));
        Ok(runtime)
    }

    fn load_from(library: PathBuf) -> Result<Runtime> {
        let library = library.canonicalize().unwrap_or(library);
        let install = if library.to_string_lossy().contains("/gpu/") {
            INSTALL_GPU
        } else {
            INSTALL_CPU
        };
        let load_error = |reason: String| Error::RuntimeLoad {
            path: library.clone(),
            reason,
            install: install.to_string(),
        };
        // `init_from` errors must become strings at once: building an
        // `ort::Error` would call into the library that failed to load.
        let builder =
            std::panic::catch_unwind(|| ort::init_from(&library).map_err(|e| e.to_string()))
                .map_err(|_| load_error("the loader panicked".into()))?
                .map_err(load_error)?;
        let environment = builder
            .with_name("weft")
            .with_telemetry(false)
            .build()
            .map_err(|e| load_error(e.to_string()))?;
        let version = crate::sys::ort_version(&library).unwrap_or_else(|| "unknown".into());
        let cuda_libs = library
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("cuda"))
            .filter(|p| p.is_dir());
        Ok(Runtime {
            library,
            origin: String::new(),
            version,
            cuda_libs,
            environment,
        })
    }

    /// The library file in use.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Where the library came from: `engine config `ort_library``,
    /// `WEFT_ORT_LIB`, `ORT_DYLIB_PATH`, `project folder DIR` or `beside the
    /// executable`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// ONNX Runtime's version string, e.g. `1.31.1`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The execution providers compiled into the loaded library.
    pub fn available_providers(&self) -> Vec<String> {
        crate::sys::available_providers()
    }

    /// Creates a session for the model file at `model`. ONNX Runtime reads
    /// the file itself, so external data files beside it (weights of models
    /// over 2 GB) are found.
    pub fn session(&self, model: &Path, options: &SessionOptions) -> Result<ModelSession> {
        if !model.is_file() {
            return Err(Error::io(
                model,
                std::io::Error::new(std::io::ErrorKind::NotFound, "model file not found"),
            ));
        }
        self.session_from(
            ModelSource::File(model),
            &model.display().to_string(),
            options,
        )
    }

    /// Creates a session for an in-memory model; `name` names it in errors.
    pub fn session_from_memory(
        &self,
        model: &[u8],
        name: &str,
        options: &SessionOptions,
    ) -> Result<ModelSession> {
        self.session_from(ModelSource::Memory(model), name, options)
    }

    fn session_from(
        &self,
        model: ModelSource<'_>,
        name: &str,
        options: &SessionOptions,
    ) -> Result<ModelSession> {
        if options.intra_threads == 0 {
            return Err(Error::InvalidConfig {
                name: "intra_threads".into(),
                reason: "must be at least 1".into(),
            });
        }
        let cuda = match options.device {
            Device::Cpu => None,
            Device::Cuda(id) => Some((id, options.allow_cpu_fallback)),
            Device::Auto => Some((0, true)),
        };
        let Some((device_id, fallback_allowed)) = cuda else {
            return Ok(ModelSession {
                session: self.cpu_session(model, name, options)?,
                provider: ActiveProvider::Cpu,
                fallback: None,
            });
        };
        match self.cuda_session(model, name, device_id, options) {
            Ok(session) => Ok(ModelSession {
                session,
                provider: ActiveProvider::Cuda(device_id),
                fallback: None,
            }),
            Err(reason) if fallback_allowed => Ok(ModelSession {
                session: self.cpu_session(model, name, options)?,
                provider: ActiveProvider::Cpu,
                fallback: Some(reason),
            }),
            Err(reason) => Err(Error::ProviderUnavailable {
                provider: format!("CUDA:{device_id}"),
                reason,
            }),
        }
    }

    fn builder(
        &self,
        name: &str,
        options: &SessionOptions,
    ) -> Result<ort::session::builder::SessionBuilder> {
        let ctx = || format!("configuring a session for {name}");
        Session::builder(&self.environment)
            .map_err(|e| Error::onnx(ctx(), e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| Error::onnx(ctx(), e))?
            .with_intra_threads(options.intra_threads)
            .map_err(|e| Error::onnx(ctx(), e))?
            .with_inter_threads(1)
            .map_err(|e| Error::onnx(ctx(), e))?
            .with_intra_op_spinning(options.intra_spinning)
            .map_err(|e| Error::onnx(ctx(), e))
    }

    fn cpu_session(
        &self,
        model: ModelSource<'_>,
        name: &str,
        options: &SessionOptions,
    ) -> Result<Session> {
        model
            .commit(self.builder(name, options)?)
            .map_err(|e| Error::onnx(format!("loading {name}"), e))
    }

    /// A session with the CUDA provider registered, or the real reason why not.
    fn cuda_session(
        &self,
        model: ModelSource<'_>,
        name: &str,
        device_id: i32,
        options: &SessionOptions,
    ) -> std::result::Result<Session, String> {
        #[cfg(not(feature = "cuda"))]
        {
            let _ = (model, name, device_id, options);
            Err(format!(
                "this weft was built without the `cuda` feature (ONNX Runtime at {} is not asked for CUDA); rebuild with the default features",
                self.library.display()
            ))
        }
        #[cfg(feature = "cuda")]
        self.cuda_session_inner(model, name, device_id, options)
    }

    #[cfg(feature = "cuda")]
    fn cuda_session_inner(
        &self,
        model: ModelSource<'_>,
        name: &str,
        device_id: i32,
        options: &SessionOptions,
    ) -> std::result::Result<Session, String> {
        match ort::ep::CUDA::is_available() {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "the ONNX Runtime library at {} (version {}) is a build without CUDA (providers: {}); install the CUDA build with `{INSTALL_GPU}`",
                    self.library.display(),
                    self.version,
                    self.available_providers().join(", ")
                ))
            }
            Err(e) => return Err(format!("cannot list the providers of ONNX Runtime: {e}")),
        }
        if let Some(dir) = &self.cuda_libs {
            // The GPU setup unpacks CUDA 13 and cuDNN 9 beside the library;
            // loading them by absolute path lets the provider find them.
            ort::ep::cuda::preload_dylibs(Some(dir), Some(dir))
                .map_err(|e| format!("{e} (from {})", dir.display()))?;
        }
        let provider = ort::ep::CUDA::default()
            .with_device_id(device_id)
            .build()
            .error_on_failure();
        let builder = self.builder(name, options).map_err(|e| e.to_string())?;
        let builder = builder
            .with_execution_providers([provider])
            .map_err(|e| e.to_string())?;
        model.commit(builder).map_err(|e| e.to_string())
    }

    /// Runs the built-in probe model on `options.device` and reports which provider ran it.
    pub fn probe(&self, options: &SessionOptions) -> Result<ProbeReport> {
        let mut session =
            self.session_from_memory(&probe::relu_model(), "the probe model", options)?;
        let x = ndarray::arr1(&[-1.0f32, 0.5, 2.0]);
        let input = ort::value::TensorRef::from_array_view(&x)
            .map_err(|e| Error::onnx("probe input", e))?;
        let outputs = session
            .session
            .run(ort::inputs![probe::INPUT => input])
            .map_err(|e| Error::onnx("running the probe model", e))?;
        let y = outputs[probe::OUTPUT]
            .try_extract_array::<f32>()
            .map_err(|e| Error::onnx("probe output", e))?;
        let ok = y.iter().copied().eq([0.0f32, 0.5, 2.0]);
        Ok(ProbeReport {
            provider: session.provider,
            fallback: session.fallback.clone(),
            output_correct: ok,
        })
    }
}

/// Where a session's model comes from.
#[derive(Debug, Clone, Copy)]
enum ModelSource<'a> {
    /// A file, read by ONNX Runtime (external data resolved beside it).
    File(&'a Path),
    /// Bytes in memory (no external data).
    Memory(&'a [u8]),
}

impl ModelSource<'_> {
    fn commit(
        self,
        mut builder: ort::session::builder::SessionBuilder,
    ) -> std::result::Result<Session, ort::Error> {
        match self {
            ModelSource::File(p) => builder.commit_from_file(p),
            ModelSource::Memory(b) => builder.commit_from_memory(b),
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}

/// An ONNX session together with the provider it really runs on.
#[derive(Debug)]
pub struct ModelSession {
    /// The ort session.
    pub session: Session,
    /// The provider it runs on.
    pub provider: ActiveProvider,
    /// Why it is not on the provider asked for, when a fallback happened.
    pub fallback: Option<String>,
}

/// The result of [`Runtime::probe`].
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// The provider that ran the probe.
    pub provider: ActiveProvider,
    /// The reason for a CUDA -> CPU fallback, if there was one.
    pub fallback: Option<String>,
    /// The probe computed the right values.
    pub output_correct: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_parsing() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("CUDA:2".parse::<Device>().unwrap(), Device::Cuda(2));
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("auto".parse::<Device>().unwrap(), Device::Auto);
        let err = "tpu".parse::<Device>().unwrap_err().to_string();
        assert!(err.contains("tpu"), "{err}");
        assert!("cuda:-1".parse::<Device>().is_err());
    }
}
