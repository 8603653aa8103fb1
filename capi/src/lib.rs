//! weft's C ABI: a thin face over [`weft::Engine`], for apps written in C,
//! C++, Swift, Kotlin (JNI) or anything else that can call C.
//!
//! The functions and types C sees are in [`ffi`], and `include/weft.h` is
//! generated from that file by cbindgen (`tests/header.rs` fails when the
//! header is stale; `WEFT_BLESS=1` rewrites it). The rules of the boundary:
//!
//! - every call returns a [`ffi::weft_status`]; on failure
//!   [`ffi::weft_last_error`] gives a UTF-8 message naming the input at fault
//!   (per thread, kept until the next failure on that thread);
//! - inputs are UTF-8 strings and byte buffers, borrowed for the call;
//! - outputs are owned by weft until their `*_free` call;
//! - no Rust type, panic or allocation crosses: panics are caught and become
//!   [`ffi::weft_status::WEFT_PANIC`].
//!
//! [`imp`] does the work with Rust types only; [`ffi`] converts pointers and
//! holds every `unsafe` block of the crate.

pub mod ffi;
pub mod imp;

pub use ffi::*;
