//! The C functions and types. `include/weft.h` is generated from this file.
//!
//! Every `unsafe` block of the crate is here: each turns a pointer from C
//! into a borrowed Rust value for the length of one call, or a handle back
//! into the box it came from. The work itself is in [`crate::imp`].
//!
//! # Threads
//!
//! `weft_engine` and `weft_collection` handles are thread-safe: any number
//! of threads may call functions on one handle at once (encodes from
//! concurrent callers are batched together; adds and deletes staged on one
//! collection are serialised, and `weft_collection_commit` commits what
//! every thread staged). `weft_results` and `weft_classification` are
//! read-only and may be read from several threads. A `*_free` call must be
//! the last call on its handle. Handles are independent: freeing an engine
//! does not invalidate the collections opened with it.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use weft::Engine;

use crate::imp::{self, c_string, ClassResult, CollectionHandle, Failure, Kind, Outcome, Results};

/// What a call did. `WEFT_OK` is 0; on anything else `weft_last_error()`
/// says what went wrong.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum weft_status {
    /// Success.
    WEFT_OK = 0,
    /// An argument is NULL, not UTF-8, malformed JSON or out of range.
    WEFT_INVALID_ARGUMENT = 1,
    /// An input cannot be used: an image that does not decode, a bad
    /// SMILES, a duplicate id, a modality the bundle cannot encode.
    WEFT_INVALID_INPUT = 2,
    /// No such collection, item or bundle.
    WEFT_NOT_FOUND = 3,
    /// Stored data is damaged (checksum, truncation, unknown version).
    WEFT_CORRUPTED_DATA = 4,
    /// A model bundle is malformed or not the collection's.
    WEFT_BUNDLE_ERROR = 5,
    /// A file could not be read or written.
    WEFT_IO_ERROR = 6,
    /// Another writer holds the collection.
    WEFT_LOCKED = 7,
    /// The encoder queue is full; retry shortly.
    WEFT_BUSY = 8,
    /// ONNX Runtime is missing, cannot load, or failed.
    WEFT_RUNTIME_ERROR = 9,
    /// The requested execution provider (CUDA) cannot run.
    WEFT_PROVIDER_UNAVAILABLE = 10,
    /// The caller's buffer is too small; the needed size was written.
    WEFT_BUFFER_TOO_SMALL = 11,
    /// A bug in weft was caught at the boundary.
    WEFT_PANIC = 12,
    /// Any other failure.
    WEFT_INTERNAL = 13,
}

/// The buffer holds UTF-8 text.
pub const WEFT_TEXT: u32 = 0;
/// The buffer holds an encoded image file (JPEG, PNG, WebP, ...).
pub const WEFT_IMAGE: u32 = 1;
/// The buffer holds a SMILES string.
pub const WEFT_SMILES: u32 = 2;
/// The buffer holds a stored item's id (queries only: "more like this").
pub const WEFT_ID: u32 = 3;
/// The buffer holds the UTF-8 path of an image file.
pub const WEFT_IMAGE_PATH: u32 = 4;

/// An engine: ONNX Runtime, the model bundles and the shared batching
/// encoders.
pub struct weft_engine {
    engine: Engine,
}

/// An open collection.
pub struct weft_collection {
    inner: CollectionHandle,
}

/// The hits of a search, best first.
pub struct weft_results {
    inner: Results,
}

/// A zero-shot classification, every label, best first.
pub struct weft_classification {
    inner: ClassResult,
}

/// What `weft_collection_index` did.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct weft_index_report {
    /// Files found.
    pub files_seen: usize,
    /// Files (re)indexed.
    pub files_indexed: usize,
    /// Files unchanged since the last run.
    pub files_unchanged: usize,
    /// Items added.
    pub items_added: usize,
    /// Items removed (changed or vanished files).
    pub items_removed: usize,
    /// Files or items that failed (see `errors_out`).
    pub errors: usize,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = c_string(message));
}

/// Runs `f`, turning a failure or a panic into a status and the thread's
/// last error.
fn call(f: impl FnOnce() -> Outcome<()>) -> weft_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => weft_status::WEFT_OK,
        Ok(Err(Failure { status, message })) => {
            set_last_error(message);
            status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            set_last_error(format!("internal error in weft (please report): {what}"));
            weft_status::WEFT_PANIC
        }
    }
}

/// Borrows a NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged during the call.
unsafe fn text<'a>(p: *const c_char, name: &str) -> Outcome<&'a str> {
    if p.is_null() {
        return Err(Failure::argument(name, "is NULL"));
    }
    // SAFETY: non-NULL and NUL-terminated for the call (the caller's contract).
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|e| Failure::argument(name, format!("not UTF-8 (byte {})", e.valid_up_to())))
}

/// Like [`text`], with NULL meaning "not given".
///
/// # Safety
/// As [`text`].
unsafe fn optional_text<'a>(p: *const c_char, name: &str) -> Outcome<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the same contract as ours.
    unsafe { text(p, name) }.map(Some)
}

/// Borrows a byte buffer (NULL with length 0 is empty).
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that stay valid and
/// unchanged during the call.
unsafe fn bytes<'a>(p: *const u8, len: usize, name: &str) -> Outcome<&'a [u8]> {
    if p.is_null() {
        return match len {
            0 => Ok(&[]),
            _ => Err(Failure::argument(
                name,
                format!("is NULL with length {len}"),
            )),
        };
    }
    // SAFETY: `len` readable bytes at `p` for the call (the caller's contract).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Borrows a handle.
///
/// # Safety
/// `p` is NULL or a live handle of this type from weft.
unsafe fn handle<'a, T>(p: *const T, name: &str) -> Outcome<&'a T> {
    // SAFETY: a live handle is a valid, aligned `T` (the caller's contract).
    unsafe { p.as_ref() }.ok_or_else(|| Failure::argument(name, "is NULL"))
}

/// Writes an output (after the work succeeded).
///
/// # Safety
/// `out` is NULL or valid for a write of one `T`.
unsafe fn put<T>(out: *mut T, value: T, name: &str) -> Outcome<()> {
    if out.is_null() {
        return Err(Failure::argument(name, "is NULL"));
    }
    // SAFETY: non-NULL and writable (the caller's contract).
    unsafe { out.write(value) };
    Ok(())
}

/// Moves `value` to the heap and writes the handle to `*out` (freed again
/// when `out` is NULL).
///
/// # Safety
/// `out` is NULL or valid for a write of one pointer.
unsafe fn put_new<T>(out: *mut *mut T, value: T) -> Outcome<()> {
    let boxed = Box::into_raw(Box::new(value));
    // SAFETY: the caller's contract, passed on.
    unsafe { put(out, boxed, "out") }.inspect_err(|_| {
        // SAFETY: made just above and never shared.
        unsafe { free(boxed) }
    })
}

/// Sets a handle output to NULL before the work, so that a failed call
/// leaves NULL behind.
///
/// # Safety
/// `out` is NULL or valid for a write of one pointer.
unsafe fn clear<T>(out: *mut *mut T) {
    if !out.is_null() {
        // SAFETY: writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
    }
}

/// Frees a handle made by `Box::into_raw`.
///
/// # Safety
/// `p` is NULL or a handle from weft not yet freed.
unsafe fn free<T>(p: *mut T) {
    if !p.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: made by `Box::into_raw` and not freed (the caller's contract).
            drop(unsafe { Box::from_raw(p) })
        }));
    }
}

/// The message of the last failed call on this thread, UTF-8 and naming the
/// input at fault; "" when none failed. Valid until the next failing call on
/// this thread. Thread-safe (each thread has its own).
#[no_mangle]
pub extern "C" fn weft_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// weft's version, e.g. "0.1.0" (static; never freed). Thread-safe.
#[no_mangle]
pub extern "C" fn weft_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Frees a string weft returned (NULL is ignored).
///
/// # Safety
/// `s` is NULL or a string from weft not yet freed.
#[no_mangle]
pub unsafe extern "C" fn weft_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: made by `CString::into_raw` and not freed (the caller's contract).
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Creates an engine. `project_dir` (may be NULL) holds `onnxruntime/`
/// and `models/`, as made by `scripts/setup-ort.sh` and `models/build.sh`
/// in `.weft/`. `options_json` (may be NULL) is a JSON object with any of
/// `"models_dir"`, `"ort_library"`, `"device"` (`"cpu"`, `"cuda"`,
/// `"cuda:N"`, `"auto"`), `"allow_cpu_fallback"` and `"threads"`. ONNX
/// Runtime loads on first need. Free with `weft_engine_free`. Thread-safe.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn weft_engine_new(
    project_dir: *const c_char,
    options_json: *const c_char,
    out: *mut *mut weft_engine,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        unsafe { clear(out) };
        // SAFETY: the caller's contract, passed on.
        let dir = unsafe { optional_text(project_dir, "project_dir") }?;
        // SAFETY: the caller's contract, passed on.
        let options = unsafe { optional_text(options_json, "options_json") }?;
        let engine = imp::engine_new(dir, options)?;
        // SAFETY: the caller's contract, passed on.
        unsafe { put_new(out, weft_engine { engine }) }
    })
}

/// Frees an engine (NULL is ignored). Collections opened with it stay
/// usable.
///
/// # Safety
/// `engine` is NULL or an engine not yet freed, used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn weft_engine_free(engine: *mut weft_engine) {
    // SAFETY: the caller's contract, passed on.
    unsafe { free(engine) }
}

/// The version of the ONNX Runtime library in use (loading it if needed),
/// e.g. "1.23.2". Free `*out` with `weft_string_free`. Thread-safe.
///
/// # Safety
/// `engine` is a live engine; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn weft_engine_ort_version(
    engine: *const weft_engine,
    out: *mut *mut c_char,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        unsafe { clear(out) };
        // SAFETY: the caller's contract, passed on.
        let e = unsafe { handle(engine, "engine") }?;
        let v = c_string(imp::ort_version(&e.engine)?).into_raw();
        // SAFETY: the caller's contract, passed on.
        unsafe { put(out, v, "out") }.inspect_err(|_| {
            // SAFETY: made just above and never shared.
            unsafe { weft_string_free(v) }
        })
    })
}

/// The execution providers that ran `bundle`'s encoders in this engine so
/// far, as a JSON object, e.g. `{"image":"CPUExecutionProvider"}` (`{}`
/// before the first encode). Free `*out` with `weft_string_free`.
/// Thread-safe.
///
/// # Safety
/// `engine` is a live engine; `bundle` is NUL-terminated; `out` is valid
/// for a write.
#[no_mangle]
pub unsafe extern "C" fn weft_engine_providers(
    engine: *const weft_engine,
    bundle: *const c_char,
    out: *mut *mut c_char,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        unsafe { clear(out) };
        // SAFETY: the caller's contract, passed on.
        let e = unsafe { handle(engine, "engine") }?;
        // SAFETY: the caller's contract, passed on.
        let bundle = unsafe { text(bundle, "bundle") }?;
        let v = c_string(imp::providers(&e.engine, bundle)?).into_raw();
        // SAFETY: the caller's contract, passed on.
        unsafe { put(out, v, "out") }.inspect_err(|_| {
            // SAFETY: made just above and never shared.
            unsafe { weft_string_free(v) }
        })
    })
}

/// Opens the collection in folder `dir` for writing. With a `bundle` (a
/// name in the models folder, or a bundle folder) a missing collection is
/// created for it, and an existing one must have been made with it; with
/// NULL the collection must exist. One writer per collection at a time
/// (`WEFT_LOCKED`). Free with `weft_collection_free`. Thread-safe.
///
/// # Safety
/// `engine` is a live engine; strings are NULL (`bundle` only) or
/// NUL-terminated; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn weft_collection_open(
    engine: *const weft_engine,
    dir: *const c_char,
    bundle: *const c_char,
    out: *mut *mut weft_collection,
) -> weft_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { open(engine, dir, bundle, false, out) }
}

/// Opens the collection in folder `dir` for searching only (any number of
/// readers, beside one writer). Free with `weft_collection_free`.
/// Thread-safe.
///
/// # Safety
/// `engine` is a live engine; `dir` is NUL-terminated; `out` is valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn weft_collection_open_read_only(
    engine: *const weft_engine,
    dir: *const c_char,
    out: *mut *mut weft_collection,
) -> weft_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { open(engine, dir, std::ptr::null(), true, out) }
}

/// # Safety
/// As `weft_collection_open`.
unsafe fn open(
    engine: *const weft_engine,
    dir: *const c_char,
    bundle: *const c_char,
    read_only: bool,
    out: *mut *mut weft_collection,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        unsafe { clear(out) };
        // SAFETY: the caller's contract, passed on.
        let e = unsafe { handle(engine, "engine") }?;
        // SAFETY: the caller's contract, passed on.
        let dir = unsafe { text(dir, "dir") }?;
        // SAFETY: the caller's contract, passed on.
        let bundle = unsafe { optional_text(bundle, "bundle") }?;
        let inner = CollectionHandle::open(&e.engine, dir, bundle, read_only)?;
        // SAFETY: the caller's contract, passed on.
        unsafe { put_new(out, weft_collection { inner }) }
    })
}

/// Frees a collection handle (NULL is ignored). Staged changes not
/// committed are discarded; committed ones are durable.
///
/// # Safety
/// `collection` is NULL or a handle not yet freed, used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn weft_collection_free(collection: *mut weft_collection) {
    // SAFETY: the caller's contract, passed on.
    unsafe { free(collection) }
}

/// Indexes a file or folder incrementally (images, text files, JSON lines,
/// molecule files): new and changed files are added, vanished ones
/// removed; it commits as it goes (staged `add`s are not part of it).
/// Item ids are the file paths as given. `report` and `errors_out` may be
/// NULL; `*errors_out` gets one line per file or item that failed (NULL
/// when none), to free with `weft_string_free`. Thread-safe.
///
/// # Safety
/// `collection` is a live handle; `path` is NUL-terminated; `report` and
/// `errors_out` are NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn weft_collection_index(
    collection: *const weft_collection,
    path: *const c_char,
    report: *mut weft_index_report,
    errors_out: *mut *mut c_char,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        unsafe { clear(errors_out) };
        // SAFETY: the caller's contract, passed on.
        let c = unsafe { handle(collection, "collection") }?;
        // SAFETY: the caller's contract, passed on.
        let path = unsafe { text(path, "path") }?;
        let r = c.inner.index(path)?;
        if !report.is_null() {
            let counts = weft_index_report {
                files_seen: r.files_seen,
                files_indexed: r.files_indexed,
                files_unchanged: r.files_unchanged,
                items_added: r.items_added,
                items_removed: r.items_removed,
                errors: r.errors.len(),
            };
            // SAFETY: the caller's contract, passed on.
            unsafe { put(report, counts, "report") }?;
        }
        if !errors_out.is_null() && !r.errors.is_empty() {
            let lines = c_string(r.errors.join("\n")).into_raw();
            // SAFETY: the caller's contract, passed on.
            unsafe { put(errors_out, lines, "errors_out") }?;
        }
        Ok(())
    })
}

/// Encodes an input and stages it as item `id` for the next
/// `weft_collection_commit`. `kind` is `WEFT_TEXT`, `WEFT_IMAGE` (image
/// file bytes), `WEFT_IMAGE_PATH` or `WEFT_SMILES`; `payload_json` (may be
/// NULL) is a JSON object stored with the item and matched by filters. An
/// id that exists is `WEFT_INVALID_INPUT`. Thread-safe.
///
/// # Safety
/// `collection` is a live handle; `id` is NUL-terminated; `data` holds
/// `len` bytes; `payload_json` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn weft_collection_add(
    collection: *const weft_collection,
    id: *const c_char,
    kind: u32,
    data: *const u8,
    len: usize,
    payload_json: *const c_char,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        let c = unsafe { handle(collection, "collection") }?;
        // SAFETY: the caller's contract, passed on.
        let id = unsafe { text(id, "id") }?;
        let kind = Kind::from_raw(kind, "kind")?;
        // SAFETY: the caller's contract, passed on.
        let data = unsafe { bytes(data, len, "data") }?;
        // SAFETY: the caller's contract, passed on.
        let payload = unsafe { optional_text(payload_json, "payload_json") }?;
        let content = imp::content(kind, data, &format!("item `{id}`"))?;
        c.inner.add(id, content, payload)
    })
}

/// Stages the deletion of item `id` for the next commit; `*existed` (may
/// be NULL) says whether it exists. Thread-safe.
///
/// # Safety
/// `collection` is a live handle; `id` is NUL-terminated; `existed` is
/// NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn weft_collection_delete(
    collection: *const weft_collection,
    id: *const c_char,
    existed: *mut bool,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        let c = unsafe { handle(collection, "collection") }?;
        // SAFETY: the caller's contract, passed on.
        let id = unsafe { text(id, "id") }?;
        let found = c.inner.delete(id)?;
        if !existed.is_null() {
            // SAFETY: the caller's contract, passed on.
            unsafe { put(existed, found, "existed") }?;
        }
        Ok(())
    })
}

/// Makes every staged add and delete durable and visible, all or nothing;
/// `*changes` (may be NULL) gets how many were committed. Thread-safe.
///
/// # Safety
/// `collection` is a live handle; `changes` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn weft_collection_commit(
    collection: *const weft_collection,
    changes: *mut usize,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        let c = unsafe { handle(collection, "collection") }?;
        let n = c.inner.commit()?;
        if !changes.is_null() {
            // SAFETY: the caller's contract, passed on.
            unsafe { put(changes, n, "changes") }?;
        }
        Ok(())
    })
}

/// The number of live items. Thread-safe.
///
/// # Safety
/// `collection` is a live handle; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn weft_collection_len(
    collection: *const weft_collection,
    out: *mut usize,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        let c = unsafe { handle(collection, "collection") }?;
        let n = c.inner.collection.info().items;
        // SAFETY: the caller's contract, passed on.
        unsafe { put(out, n, "out") }
    })
}

/// Searches: `kind` is `WEFT_TEXT`, `WEFT_IMAGE`, `WEFT_IMAGE_PATH`,
/// `WEFT_SMILES` or `WEFT_ID` (the stored item's own vectors; it is left
/// out of the hits). `scorer` (NULL: global) is `global`, `filip`,
/// `filip-reverse`, `filip-symmetric`, `maxsim`, `hybrid[:W]`, `motif` or
/// `multi[:G,T,M]`; `filter_json` (may be NULL) is a payload filter such as
/// `{"year": {"gte": 2020}}`. Free `*out` with `weft_results_free`.
/// Thread-safe.
///
/// # Safety
/// `collection` is a live handle; `query` holds `len` bytes; strings are
/// NULL or NUL-terminated; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn weft_search(
    collection: *const weft_collection,
    kind: u32,
    query: *const u8,
    len: usize,
    k: usize,
    scorer: *const c_char,
    filter_json: *const c_char,
    out: *mut *mut weft_results,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        unsafe { clear(out) };
        // SAFETY: the caller's contract, passed on.
        let c = unsafe { handle(collection, "collection") }?;
        let kind = Kind::from_raw(kind, "kind")?;
        // SAFETY: the caller's contract, passed on.
        let query = unsafe { bytes(query, len, "query") }?;
        // SAFETY: the caller's contract, passed on.
        let scorer = unsafe { optional_text(scorer, "scorer") }?;
        // SAFETY: the caller's contract, passed on.
        let filter = unsafe { optional_text(filter_json, "filter_json") }?;
        let inner = c.inner.search(kind, query, k, scorer, filter)?;
        // SAFETY: the caller's contract, passed on.
        unsafe { put_new(out, weft_results { inner }) }
    })
}

/// The number of hits (0 for NULL).
///
/// # Safety
/// `results` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn weft_results_len(results: *const weft_results) -> usize {
    // SAFETY: the caller's contract, passed on.
    unsafe { results.as_ref() }.map_or(0, |r| r.inner.hits.len())
}

/// # Safety
/// `results` is NULL or live.
unsafe fn hit<'a>(results: *const weft_results, i: usize) -> Option<&'a imp::ResultHit> {
    // SAFETY: the caller's contract, passed on.
    unsafe { results.as_ref() }.and_then(|r| r.inner.hits.get(i))
}

/// Hit `i`'s item id (NULL when out of range); valid until the results are
/// freed.
///
/// # Safety
/// `results` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn weft_results_id(results: *const weft_results, i: usize) -> *const c_char {
    // SAFETY: the caller's contract, passed on.
    unsafe { hit(results, i) }.map_or(std::ptr::null(), |h| h.id.as_ptr())
}

/// Hit `i`'s score (NaN when out of range).
///
/// # Safety
/// `results` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn weft_results_score(results: *const weft_results, i: usize) -> f32 {
    // SAFETY: the caller's contract, passed on.
    unsafe { hit(results, i) }.map_or(f32::NAN, |h| h.score)
}

/// Hit `i`'s source file ("" when none; NULL when out of range); valid
/// until the results are freed.
///
/// # Safety
/// `results` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn weft_results_source(
    results: *const weft_results,
    i: usize,
) -> *const c_char {
    // SAFETY: the caller's contract, passed on.
    unsafe { hit(results, i) }.map_or(std::ptr::null(), |h| h.source.as_ptr())
}

/// Hit `i`'s payload as JSON (`null` when none; NULL when out of range);
/// valid until the results are freed.
///
/// # Safety
/// `results` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn weft_results_payload(
    results: *const weft_results,
    i: usize,
) -> *const c_char {
    // SAFETY: the caller's contract, passed on.
    unsafe { hit(results, i) }.map_or(std::ptr::null(), |h| h.payload.as_ptr())
}

/// Frees search results (NULL is ignored).
///
/// # Safety
/// `results` is NULL or results not yet freed, used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn weft_results_free(results: *mut weft_results) {
    // SAFETY: the caller's contract, passed on.
    unsafe { free(results) }
}

/// Zero-shot classification of an input (`WEFT_IMAGE`, `WEFT_IMAGE_PATH`,
/// `WEFT_TEXT` or `WEFT_SMILES`) with `bundle` (a name or folder) over
/// `n_labels` UTF-8 labels, prompted with the bundle's templates. Free
/// `*out` with `weft_classification_free`. Thread-safe.
///
/// # Safety
/// `engine` is a live engine; `bundle` is NUL-terminated; `input` holds
/// `len` bytes; `labels` holds `n_labels` NUL-terminated strings; `out` is
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn weft_classify(
    engine: *const weft_engine,
    bundle: *const c_char,
    kind: u32,
    input: *const u8,
    len: usize,
    labels: *const *const c_char,
    n_labels: usize,
    out: *mut *mut weft_classification,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        unsafe { clear(out) };
        // SAFETY: the caller's contract, passed on.
        let e = unsafe { handle(engine, "engine") }?;
        // SAFETY: the caller's contract, passed on.
        let bundle = unsafe { text(bundle, "bundle") }?;
        let kind = Kind::from_raw(kind, "kind")?;
        // SAFETY: the caller's contract, passed on.
        let input = unsafe { bytes(input, len, "input") }?;
        if labels.is_null() && n_labels > 0 {
            return Err(Failure::argument("labels", "is NULL"));
        }
        let mut names = Vec::with_capacity(n_labels);
        for i in 0..n_labels {
            // SAFETY: `labels` holds `n_labels` pointers (the caller's contract).
            let p = unsafe { *labels.add(i) };
            // SAFETY: each is NUL-terminated (the caller's contract).
            names.push(unsafe { text(p, &format!("labels[{i}]")) }?.to_string());
        }
        let content = imp::content(kind, input, "input")?;
        let inner = imp::classify(&e.engine, bundle, content, names)?;
        // SAFETY: the caller's contract, passed on.
        unsafe { put_new(out, weft_classification { inner }) }
    })
}

/// The number of labels (0 for NULL).
///
/// # Safety
/// `c` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn weft_classification_len(c: *const weft_classification) -> usize {
    // SAFETY: the caller's contract, passed on.
    unsafe { c.as_ref() }.map_or(0, |c| c.inner.labels.len())
}

/// # Safety
/// `c` is NULL or live.
unsafe fn label<'a>(c: *const weft_classification, i: usize) -> Option<&'a imp::LabelResult> {
    // SAFETY: the caller's contract, passed on.
    unsafe { c.as_ref() }.and_then(|c| c.inner.labels.get(i))
}

/// Label `i`, best first (NULL when out of range); valid until freed.
///
/// # Safety
/// `c` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn weft_classification_label(
    c: *const weft_classification,
    i: usize,
) -> *const c_char {
    // SAFETY: the caller's contract, passed on.
    unsafe { label(c, i) }.map_or(std::ptr::null(), |l| l.label.as_ptr())
}

/// Label `i`'s probability (softmax over the labels; a SigLIP bundle's
/// per-label sigmoid); NaN when out of range.
///
/// # Safety
/// `c` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn weft_classification_probability(
    c: *const weft_classification,
    i: usize,
) -> f32 {
    // SAFETY: the caller's contract, passed on.
    unsafe { label(c, i) }.map_or(f32::NAN, |l| l.probability)
}

/// Label `i`'s cosine score; NaN when out of range.
///
/// # Safety
/// `c` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn weft_classification_score(c: *const weft_classification, i: usize) -> f32 {
    // SAFETY: the caller's contract, passed on.
    unsafe { label(c, i) }.map_or(f32::NAN, |l| l.score)
}

/// Frees a classification (NULL is ignored).
///
/// # Safety
/// `c` is NULL or a classification not yet freed, used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn weft_classification_free(c: *mut weft_classification) {
    // SAFETY: the caller's contract, passed on.
    unsafe { free(c) }
}

/// Encodes an input with `bundle` and writes its L2-normalised global
/// embedding into `out` (`capacity` floats); `*dim` gets its dimension.
/// A buffer too small (NULL with 0 asks for the size) is
/// `WEFT_BUFFER_TOO_SMALL`, with `*dim` set. Thread-safe.
///
/// # Safety
/// `engine` is a live engine; `bundle` is NUL-terminated; `input` holds
/// `len` bytes; `out` is NULL or holds `capacity` floats; `dim` is valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn weft_embed(
    engine: *const weft_engine,
    bundle: *const c_char,
    kind: u32,
    input: *const u8,
    len: usize,
    out: *mut f32,
    capacity: usize,
    dim: *mut usize,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        let encoded = unsafe { encode(engine, bundle, kind, input, len) }?;
        let n = encoded.embedding.len();
        // SAFETY: the caller's contract, passed on.
        unsafe { put(dim, n, "dim") }?;
        // SAFETY: the caller's contract, passed on.
        unsafe { copy_out(&encoded.embedding, out, capacity) }
    })
}

/// Like `weft_embed`, for the input's token matrix (real tokens only,
/// row-major `*n_tokens x *dim` floats; image patches, text or SMILES
/// tokens): `capacity` must hold `n_tokens * dim` floats. Thread-safe.
///
/// # Safety
/// As `weft_embed`; `n_tokens` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn weft_embed_tokens(
    engine: *const weft_engine,
    bundle: *const c_char,
    kind: u32,
    input: *const u8,
    len: usize,
    out: *mut f32,
    capacity: usize,
    n_tokens: *mut usize,
    dim: *mut usize,
) -> weft_status {
    call(|| {
        // SAFETY: the caller's contract, passed on.
        let encoded = unsafe { encode(engine, bundle, kind, input, len) }?;
        let d = encoded
            .tokens
            .len()
            .checked_div(encoded.n_tokens)
            .unwrap_or(0);
        // SAFETY: the caller's contract, passed on.
        unsafe { put(n_tokens, encoded.n_tokens, "n_tokens") }?;
        // SAFETY: the caller's contract, passed on.
        unsafe { put(dim, d, "dim") }?;
        // SAFETY: the caller's contract, passed on.
        unsafe { copy_out(&encoded.tokens, out, capacity) }
    })
}

/// # Safety
/// As `weft_embed`.
unsafe fn encode(
    engine: *const weft_engine,
    bundle: *const c_char,
    kind: u32,
    input: *const u8,
    len: usize,
) -> Outcome<weft::encoder::Encoded> {
    // SAFETY: the caller's contract, passed on.
    let e = unsafe { handle(engine, "engine") }?;
    // SAFETY: the caller's contract, passed on.
    let bundle = unsafe { text(bundle, "bundle") }?;
    let kind = Kind::from_raw(kind, "kind")?;
    // SAFETY: the caller's contract, passed on.
    let input = unsafe { bytes(input, len, "input") }?;
    let content = imp::content(kind, input, "input")?;
    imp::embed(&e.engine, bundle, content)
}

/// Copies `values` into the caller's buffer.
///
/// # Safety
/// `out` is NULL or holds `capacity` floats.
unsafe fn copy_out(values: &[f32], out: *mut f32, capacity: usize) -> Outcome<()> {
    if out.is_null() || capacity < values.len() {
        return Err(Failure {
            status: weft_status::WEFT_BUFFER_TOO_SMALL,
            message: format!(
                "argument `out`: needs {} floats, capacity is {capacity}",
                values.len()
            ),
        });
    }
    // SAFETY: `out` holds `capacity >= values.len()` floats (the caller's
    // contract) and does not overlap `values`, which weft owns.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len()) };
    Ok(())
}
