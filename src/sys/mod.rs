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

/// Makes a SIGBUS, which is how a mapped collection file that another
/// program truncated shows up, stop the process with a message saying so
/// (exit status 135, as a SIGBUS death) instead of a bare "Bus error".
/// The handler only writes a fixed message and exits (async-signal-safe).
pub fn explain_sigbus() {
    extern "C" fn on_sigbus(_: libc::c_int) {
        const MSG: &[u8] = b"weft: SIGBUS: a memory-mapped collection file was truncated or \
replaced while open (another program changed the collection's files); \
stopping. Nothing committed is lost: reopen, and check with `weft collections verify`.\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is a
        // static byte string whose pointer and length are valid.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(128 + libc::SIGBUS);
        }
    }
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handler
    // has the `extern "C" fn(c_int)` signature sigaction expects without
    // SA_SIGINFO, and it stays valid for the life of the process.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// Dot product of two f32 slices (over the shorter length): AVX2 + FMA
/// when the CPU has them, else a portable loop the compiler vectorises.
#[inline]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: avx2 and fma support was detected just above.
            return unsafe { simd::dot_avx2(a, b) };
        }
    }
    crate::score::portable::dot_f32(a, b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn simd_dot_matches_the_portable_one() {
        for n in [0, 1, 7, 8, 31, 32, 33, 100, 384, 385] {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5)
                .collect();
            let b: Vec<f32> = (0..n)
                .map(|i| ((i * 104_729) % 17) as f32 / 17.0 - 0.5)
                .collect();
            let exact: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let fast = super::dot_f32(&a, &b);
            let portable = crate::score::portable::dot_f32(&a, &b);
            assert!(
                (f64::from(fast) - exact).abs() < 1e-4,
                "n {n}: {fast} vs {exact}"
            );
            assert!(
                (f64::from(portable) - exact).abs() < 1e-4,
                "n {n}: {portable} vs {exact}"
            );
        }
    }
}
