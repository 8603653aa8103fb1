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
mod error;
pub mod import;
pub mod index;
pub mod ingest;
mod onnx;
pub mod runtime;
pub mod score;
pub mod search;
pub mod store;
mod sys;

pub use error::{Error, Result};
pub use sys::handle_sigbus;
