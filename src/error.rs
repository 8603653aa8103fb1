//! The one error type of the library.
//!
//! Every fallible call returns [`Result<T>`]. Variants keep the path or the
//! input they are about and, where there is one, the source error, so that a
//! message always names what was wrong.

use std::path::PathBuf;

/// Result alias used throughout weft.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside weft.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ONNX Runtime shared library was not found anywhere weft looks.
    #[error(
        "ONNX Runtime library not found; looked in:\n{}\ninstall it with `{install}`, or point WEFT_ORT_LIB at libonnxruntime.so",
        .searched.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n")
    )]
    RuntimeNotFound {
        /// Each place looked at, with why it did not qualify.
        searched: Vec<String>,
        /// The command that installs the library.
        install: String,
    },

    /// The library was found but could not be loaded (not a library, too old, ...).
    #[error("cannot load ONNX Runtime from {path}: {reason}\ninstall a supported build with `{install}`")]
    RuntimeLoad {
        /// The library file.
        path: PathBuf,
        /// What the loader said.
        reason: String,
        /// The command that installs a supported library.
        install: String,
    },

    /// ONNX Runtime was already loaded in this process from another library file.
    #[error("ONNX Runtime is already loaded from {loaded}; one process can load one library, not also {requested}")]
    RuntimeAlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The library asked for now.
        requested: PathBuf,
    },

    /// An execution provider was requested and cannot run; the reason is ONNX Runtime's own.
    #[error("execution provider {provider} is unavailable: {reason}")]
    ProviderUnavailable {
        /// The provider asked for, e.g. `CUDA:0`.
        provider: String,
        /// The real cause (missing CUDA library, no driver, CPU-only build, ...).
        reason: String,
    },

    /// An error from ONNX Runtime while creating or running a session.
    #[error("onnx runtime error ({context}): {source}")]
    Onnx {
        /// What weft was doing, naming the model file.
        context: String,
        /// ONNX Runtime's error.
        #[source]
        source: OnnxError,
    },

    /// An encoder of the bundle could not be loaded, so an input of its
    /// modality was not encoded (the input itself may be fine).
    #[error("{item}: the {modality} encoder did not load: {source}")]
    EncoderLoad {
        /// The input that needed it.
        item: String,
        /// The encoder's modality.
        modality: crate::modality::Modality,
        /// Why it did not load (shared by every input that needed it).
        #[source]
        source: std::sync::Arc<Error>,
    },

    /// The encoder queue is full; the call can be retried shortly.
    #[error("the encoder queue is full ({waiting} requests waiting); retry shortly")]
    Busy {
        /// Requests queued.
        waiting: usize,
    },

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A model bundle is malformed or does not match its files.
    #[error("bundle {path}: {reason}")]
    Bundle {
        /// The manifest or the file concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A model export cannot be imported: its layout is not recognised, a file
    /// or key it needs is missing, or its graph has a shape weft does not handle.
    #[error("cannot import {path}: {reason}")]
    Import {
        /// The export folder or the file concerned.
        path: PathBuf,
        /// What is wrong, and what was looked for.
        reason: String,
    },

    /// No bundle of that name or path.
    #[error("model bundle `{name}` not found; looked in: {}", .searched.join(", "))]
    BundleNotFound {
        /// The name or path asked for.
        name: String,
        /// Folders looked at.
        searched: Vec<String>,
    },

    /// The bundle has no encoder for a modality.
    #[error("bundle `{bundle}` has no {modality} encoder")]
    MissingEncoder {
        /// Bundle name.
        bundle: String,
        /// The modality asked for.
        modality: crate::modality::Modality,
    },

    /// A file's content does not match its recorded checksum.
    #[error("{path}: checksum mismatch (expected {expected}, found {actual}); the file was changed or corrupted")]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// The recorded checksum.
        expected: String,
        /// The checksum of the content.
        actual: String,
    },

    /// One input (a file, a text, a SMILES) cannot be encoded.
    #[error("{item}: {reason}")]
    InvalidInput {
        /// The input: a path, a name, or `item N (...)`.
        item: String,
        /// Why.
        reason: String,
    },

    /// A stored file is damaged: bad magic, bad checksum, truncated.
    #[error("{path}: corrupted: {reason}")]
    Corrupted {
        /// The file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },

    /// A stored file has a format version this build cannot read.
    #[error("{path}: format version {found} is not supported (this weft reads {supported})")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },

    /// Another writer holds the collection.
    #[error("collection {path} is locked by another writer (lock file {lock})")]
    Locked {
        /// The collection folder.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },

    /// The collection was made for another bundle.
    #[error(
        "collection {path} was created for bundle {expected}; refusing to use it with {found}"
    )]
    BundleMismatch {
        /// The collection folder.
        path: PathBuf,
        /// Bundle recorded in the collection (name and hash).
        expected: String,
        /// Bundle offered now.
        found: String,
    },

    /// No collection at that path, or no item with that id.
    #[error("{what} not found: {name}")]
    NotFound {
        /// "collection", "item", ...
        what: &'static str,
        /// The name or id.
        name: String,
    },

    /// An item id that already exists was added (use upsert to replace).
    #[error("item `{id}` already exists in the collection (use upsert to replace it)")]
    DuplicateId {
        /// The id.
        id: String,
    },

    /// A vector or token matrix of the wrong dimension.
    #[error("{what}: wrong dimension: expected {expected}, received {received}")]
    WrongDimension {
        /// What was checked (names the item).
        what: String,
        /// The collection's dimension.
        expected: usize,
        /// The dimension given.
        received: usize,
    },

    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration `{name}`: {reason}")]
    InvalidConfig {
        /// The option's name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// What kind of failure an [`Error`] is, coarse and stable: what a binding
/// maps to a status code (C) or an exception class (Python), and what a
/// caller branches on. See [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An option or argument is out of range or malformed
    /// ([`Error::InvalidConfig`]).
    InvalidConfig,
    /// An input cannot be used: a file, text, SMILES, vector, a duplicate
    /// id, a modality the bundle has no encoder for.
    InvalidInput,
    /// No such collection, item or bundle.
    NotFound,
    /// Stored data is damaged or in a format this build cannot read.
    CorruptedData,
    /// A bundle is malformed, cannot be imported, or is not the one a
    /// collection was made with.
    Bundle,
    /// A file could not be read or written.
    Io,
    /// Another writer holds the collection.
    Locked,
    /// The encoder queue is full; retry shortly.
    Busy,
    /// ONNX Runtime is missing, cannot load, or failed while running.
    Runtime,
    /// The requested execution provider cannot run.
    ProviderUnavailable,
}

impl ErrorKind {
    /// A stable snake_case name (`invalid_input`, `corrupted_data`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::CorruptedData => "corrupted_data",
            ErrorKind::Bundle => "bundle",
            ErrorKind::Io => "io",
            ErrorKind::Locked => "locked",
            ErrorKind::Busy => "busy",
            ErrorKind::Runtime => "runtime",
            ErrorKind::ProviderUnavailable => "provider_unavailable",
        }
    }
}

impl Error {
    /// The kind of failure, decided by [`Error::underlying`]: an encoder
    /// that did not load because its model file is damaged is
    /// [`ErrorKind::Runtime`], one the bundle lacks is
    /// [`ErrorKind::InvalidInput`].
    pub fn kind(&self) -> ErrorKind {
        match self.underlying() {
            Error::InvalidConfig { .. } => ErrorKind::InvalidConfig,
            Error::InvalidInput { .. }
            | Error::WrongDimension { .. }
            | Error::DuplicateId { .. }
            | Error::MissingEncoder { .. } => ErrorKind::InvalidInput,
            Error::NotFound { .. } | Error::BundleNotFound { .. } => ErrorKind::NotFound,
            Error::Corrupted { .. }
            | Error::ChecksumMismatch { .. }
            | Error::UnsupportedFormat { .. } => ErrorKind::CorruptedData,
            Error::Bundle { .. } | Error::Import { .. } | Error::BundleMismatch { .. } => {
                ErrorKind::Bundle
            }
            Error::Io { .. } => ErrorKind::Io,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::Busy { .. } => ErrorKind::Busy,
            Error::ProviderUnavailable { .. } => ErrorKind::ProviderUnavailable,
            Error::RuntimeNotFound { .. }
            | Error::RuntimeLoad { .. }
            | Error::RuntimeAlreadyLoaded { .. }
            | Error::Onnx { .. }
            | Error::EncoderLoad { .. } => ErrorKind::Runtime,
        }
    }

    /// The error that decides what kind of failure this is: for an encoder
    /// that did not load, why it did not (a missing encoder is the caller's
    /// input, a broken model file is not); else the error itself.
    pub fn underlying(&self) -> &Error {
        match self {
            Error::EncoderLoad { source, .. } => source.underlying(),
            e => e,
        }
    }

    /// Wraps an I/O error together with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps an ONNX Runtime error with what weft was doing.
    pub(crate) fn onnx<R>(context: impl Into<String>, err: ort::Error<R>) -> Self {
        Error::Onnx {
            context: context.into(),
            source: OnnxError {
                code: format!("{:?}", err.code()),
                message: err.message().to_string(),
            },
        }
    }

    /// An ONNX Runtime failure known only by its message (a whole batch
    /// failed; each input gets a copy).
    pub(crate) fn onnx_message(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Onnx {
            context: context.into(),
            source: OnnxError {
                code: "Fail".into(),
                message: message.into(),
            },
        }
    }
}

/// An error ONNX Runtime reported: its status code and message.
#[derive(Debug, Clone)]
pub struct OnnxError {
    /// ONNX Runtime's status code (`InvalidArgument`, `Fail`, ...).
    pub code: String,
    /// ONNX Runtime's message.
    pub message: String,
}

impl std::fmt::Display for OnnxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OnnxError {}
