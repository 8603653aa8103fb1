//! weft: an embedded cross-modal retrieval engine.
//!
//! weft runs vision-language and text-molecule encoders through ONNX Runtime
//! on the CPU or CUDA, stores global embeddings and per-token matrices, and
//! ranks with late interaction (FILIP, ColBERT MaxSim). See `ARCHITECTURE.md`
//! for the map of the modules.
//!
//! [`Engine`] is the entry point: it finds ONNX Runtime and the model
//! bundles where it is told (never by walking up from the current folder),
//! opens collections and shares batching encoders between threads.
//!
//! ```no_run
//! # fn main() -> weft::Result<()> {
//! let engine = weft::Engine::builder().project_dir(".weft").build()?;
//! let photos = engine.open_or_create("photos.weft", "starter-vl")?;
//! photos.index(&["photos/"], |_| {})?;
//! for hit in photos.search("a photo of a cat", &weft::SearchOptions::default())? {
//!     println!("{:.3} {}", hit.score, hit.id);
//! }
//! let runtime = engine.runtime()?;
//! println!("ONNX Runtime {} from {}", runtime.version(), runtime.origin());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod bundle;
mod cache;
pub mod chem;
pub mod classify;
pub mod doctor;
pub mod encoder;
pub mod engine;
mod error;
mod format;
pub mod import;
pub mod index;
pub mod ingest;
mod modality;
mod onnx;
pub mod runtime;
pub mod score;
pub mod search;
pub mod store;
mod sys;

pub use engine::{
    Batch, Collection, Content, CreateOptions, Engine, EngineBuilder, Item, SearchQuery,
};
pub use error::{Error, ErrorKind, OnnxError, Result};
pub use search::{Hit, SearchOptions};
pub use sys::handle_sigbus;

/// The README's code, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
