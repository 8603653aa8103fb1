//! weft: an embedded cross-modal retrieval engine.
//!
//! weft runs vision-language and text-molecule encoders through ONNX Runtime
//! on the CPU or CUDA, stores global embeddings and per-token matrices, and
//! ranks with late interaction (FILIP, ColBERT MaxSim). See `ARCHITECTURE.md`
//! for the map of the modules.
//!
//! ```no_run
//! use weft::runtime::{Runtime, RuntimeOptions, SessionOptions, Device};
//!
//! # fn main() -> weft::Result<()> {
//! let runtime = Runtime::load(&RuntimeOptions::default())?;
//! let probe = runtime.probe(&SessionOptions::default().with_device(Device::Auto))?;
//! println!("ONNX Runtime {} ran on {}", runtime.version(), probe.provider);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod bundle;
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
pub use error::{Error, OnnxError, Result};
pub use search::{Hit, SearchOptions};
pub use sys::handle_sigbus;

/// The README's code, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
