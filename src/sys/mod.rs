//! Every `unsafe` block of the crate lives in this module (`simd.rs`: the
//! x86 scoring kernels).
//!
//! Each block says why it is sound in a `// SAFETY:` comment. Callers get
//! safe functions.

#[cfg(target_arch = "x86_64")]
pub(crate) mod simd;

use std::ffi::{c_char, c_int, CStr};

/// The execution providers compiled into the loaded ONNX Runtime library,
/// as ONNX Runtime names them (`CPUExecutionProvider`, `CUDAExecutionProvider`, ...).
///
/// Must only be called after [`crate::runtime::Runtime::load`] succeeded.
pub(crate) fn available_providers() -> Vec<String> {
    let api = ort::api();
    let mut list: *mut *mut c_char = std::ptr::null_mut();
    let mut len: c_int = 0;
    // SAFETY: the library is loaded (callers hold a `Runtime`), `list` and
    // `len` are valid out-pointers for the duration of the call.
    let status = unsafe { (api.GetAvailableProviders)(&mut list, &mut len) };
    if !status.0.is_null() {
        // SAFETY: a non-null status was allocated by ONNX Runtime and is released once.
        unsafe { (api.ReleaseStatus)(status.0) };
        return Vec::new();
    }
    if list.is_null() {
        return Vec::new();
    }
    let mut names = Vec::with_capacity(len.max(0) as usize);
    for i in 0..len.max(0) as usize {
        // SAFETY: ONNX Runtime returned an array of `len` NUL-terminated
        // strings; `i < len` keeps the read inside it.
        let name = unsafe { CStr::from_ptr(*list.add(i)) };
        names.push(name.to_string_lossy().into_owned());
    }
    // SAFETY: releases the array returned above, exactly once, with its length.
    let status = unsafe { (api.ReleaseAvailableProviders)(list, len) };
    if !status.0.is_null() {
        // SAFETY: as above, a non-null status is owned by us and released once.
        unsafe { (api.ReleaseStatus)(status.0) };
    }
    names
}

/// The version string of the ONNX Runtime library at `library` (e.g. `1.31.1`),
/// from its `OrtGetApiBase()->GetVersionString()`.
///
/// Must only be called after ort loaded that same file, so that this `dlopen`
/// only takes another reference to the mapped library.
pub(crate) fn ort_version(library: &std::path::Path) -> Option<String> {
    // SAFETY: the library is already loaded by ort (so its initialisers have
    // run); dlopen of the same file returns the same handle, refcounted.
    let lib = unsafe { libloading::Library::new(library) }.ok()?;
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release.
    let get_base: libloading::Symbol<GetApiBase> = unsafe { lib.get(b"OrtGetApiBase") }.ok()?;
    // SAFETY: calling the exported function; it returns a pointer to a static struct.
    let base = unsafe { get_base() };
    if base.is_null() {
        return None;
    }
    // SAFETY: `base` is non-null and points to the library's static
    // `OrtApiBase`; `GetVersionString` returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(((*base).GetVersionString)()) };
    Some(version.to_string_lossy().into_owned())
}

/// Maps a whole file read-only.
///
/// Only used for segment files, which weft never modifies after the rename
/// that publishes them (a compaction writes new files and deletes old ones;
/// deleting keeps existing mappings valid on Unix).
pub(crate) fn map_readonly(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and the file is immutable once
    // published (see above); another program truncating it would be outside
    // weft's contract, like editing a database file under the database.
    unsafe { memmap2::Mmap::map(file) }
}

/// An HNSW index reloaded from a dump, owning the loader it borrows from.
///
/// `hnsw_rs` returns an `Hnsw<'b>` that borrows its `HnswIo`; both live
/// here, and `Drop` drops the index before the loader.
pub(crate) struct LoadedHnsw {
    hnsw: std::mem::ManuallyDrop<hnsw_rs::hnsw::Hnsw<'static, f32, hnsw_rs::prelude::DistDot>>,
    io: *mut hnsw_rs::hnswio::HnswIo,
}

// SAFETY: `io` is only touched in `load` and `drop`; the index itself is
// Send + Sync (hnsw_rs guards its graph with locks).
unsafe impl Send for LoadedHnsw {}
// SAFETY: as above; shared access only reaches the index.
unsafe impl Sync for LoadedHnsw {}

impl LoadedHnsw {
    /// Reloads the dump `dir/basename.hnsw.{graph,data}` into memory.
    pub(crate) fn load(dir: &std::path::Path, basename: &str) -> Result<Self, String> {
        let io = Box::into_raw(Box::new(hnsw_rs::hnswio::HnswIo::new(dir, basename)));
        // SAFETY: `io` comes from `Box::into_raw` and stays valid until
        // `Drop` (or the error path below) frees it, after the index that
        // borrows it is gone; nothing else aliases it.
        let io_ref: &'static mut hnsw_rs::hnswio::HnswIo = unsafe { &mut *io };
        match io_ref.load_hnsw::<f32, hnsw_rs::prelude::DistDot>() {
            Ok(hnsw) => Ok(LoadedHnsw {
                hnsw: std::mem::ManuallyDrop::new(hnsw),
                io,
            }),
            Err(e) => {
                // SAFETY: no index borrows `io` on this path; freed once.
                drop(unsafe { Box::from_raw(io) });
                Err(e.to_string())
            }
        }
    }

    /// The index.
    pub(crate) fn get(&self) -> &hnsw_rs::hnsw::Hnsw<'static, f32, hnsw_rs::prelude::DistDot> {
        &self.hnsw
    }
}

impl Drop for LoadedHnsw {
    fn drop(&mut self) {
        // SAFETY: the index is dropped exactly once, here, before the loader
        // it borrows from; then the loader allocated in `load` is freed once.
        unsafe {
            std::mem::ManuallyDrop::drop(&mut self.hnsw);
            drop(Box::from_raw(self.io));
        }
    }
}
