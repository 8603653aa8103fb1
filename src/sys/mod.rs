//! Every `unsafe` block of the crate lives in this module (`simd.rs`: the
//! x86 scoring kernels).
//!
//! Each block says why it is sound in a `// SAFETY:` comment. Callers get
//! safe functions.

#[cfg(target_arch = "x86_64")]
pub(crate) mod simd;

use std::ffi::{c_char, c_int, CStr};

/// Asks the CPU to bring every cache line of `elems` into L1 (a hint: it
/// never faults and reads nothing architecturally; a no-op off x86-64).
#[inline(always)]
pub(crate) fn prefetch<T>(elems: &[T]) {
    #[cfg(target_arch = "x86_64")]
    simd::prefetch_all(elems);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = elems;
}
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// A `Vec` of capacity `n` whose memory the kernel is asked to back with
/// transparent huge pages (`MADV_HUGEPAGE`; where THP is `madvise`, the
/// default here, big buffers otherwise take one page fault per 4 KiB). For
/// the buffers an open fills at once (the layer-0 lists of a 1M-item HNSW
/// graph are 132 MB: 32k faults). A hint: without THP, or on another OS,
/// it is an ordinary `Vec::with_capacity`.
pub(crate) fn vec_for_bulk<T>(n: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = v.capacity() * std::mem::size_of::<T>();
        let start = v.as_ptr() as usize;
        // Only whole huge pages inside the allocation.
        let (from, to) = (start.next_multiple_of(HUGE), (start + bytes) / HUGE * HUGE);
        if bytes >= 4 * HUGE && to > from {
            // SAFETY: [from, to) lies inside the allocation `v` owns (it
            // was rounded inwards to 2 MiB boundaries, so it is also
            // page-aligned as madvise requires); MADV_HUGEPAGE only changes
            // how the kernel backs those pages, never their contents or
            // mapping, and a failure is harmless (ignored).
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    v
}

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

/// A read-only mapping of a whole file that outlives the file being
/// truncated under it: a read past the new end gets zeros instead of a
/// SIGBUS (once [`handle_sigbus`] is installed), and [`Mapped::truncated`]
/// says so, so that the read that saw them fails instead of using them.
pub(crate) struct Mapped {
    map: memmap2::Mmap,
    /// The file's path, to compare its size with the mapping's (no
    /// descriptor is kept: a collection maps many files).
    path: std::path::PathBuf,
    slot: Option<usize>,
}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapped")
            .field("len", &self.map.len())
            .field("truncated", &self.truncated(false))
            .finish()
    }
}

impl Mapped {
    /// The mapped file.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// True once a read past the file's new end faulted (and got zeros).
    /// With `stat`, also when the file's size is below the mapping's (a
    /// cut inside the last page reads zeros without a fault); that costs a
    /// system call.
    pub(crate) fn truncated(&self, stat: bool) -> bool {
        self.slot
            .is_some_and(|i| MAPS[i].truncated.load(Ordering::SeqCst))
            || (stat
                && std::fs::metadata(&self.path).is_ok_and(|m| m.len() < self.map.len() as u64))
    }
}

impl std::ops::Deref for Mapped {
    type Target = memmap2::Mmap;
    fn deref(&self) -> &memmap2::Mmap {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // Out of the registry, and no handler inside this slot, before
        // `map` unmaps (fields drop after this body).
        if let Some(i) = self.slot {
            let s = &MAPS[i];
            s.state.store(FREE, Ordering::SeqCst);
            wait_for_handlers(s);
        }
    }
}

/// Maps a whole file read-only.
///
/// Only used for files weft never modifies after the rename that publishes
/// them (a compaction writes new files and deletes old ones; deleting keeps
/// existing mappings valid on Unix).
pub(crate) fn map_readonly(
    file: &std::fs::File,
    path: &std::path::Path,
) -> std::io::Result<Mapped> {
    // SAFETY: the mapping is read-only and the file is immutable once
    // published (see above). Another program truncating it is outside
    // weft's contract; `handle_sigbus` turns the reads that would fault
    // into zeros and `Mapped::truncated` reports them.
    let map = unsafe { memmap2::Mmap::map(file) }?;
    Ok(registered(map, path))
}

/// Maps the first `len` bytes of a file read-only: a file that only grows
/// while mapped (a write-ahead log, whose committed bytes never change; a
/// writer appends after them and cuts only what it appended after them).
pub(crate) fn map_prefix(
    file: &std::fs::File,
    path: &std::path::Path,
    len: usize,
) -> std::io::Result<Mapped> {
    // SAFETY: read-only, and the first `len` bytes of the file never
    // change while mapped (see above); a truncation by another program is
    // handled as in `map_readonly`.
    let map = unsafe { memmap2::MmapOptions::new().len(len).map(file) }?;
    Ok(registered(map, path))
}

fn registered(map: memmap2::Mmap, path: &std::path::Path) -> Mapped {
    let slot = register(map.as_ptr() as usize, map.len());
    Mapped {
        map,
        path: path.to_path_buf(),
        slot,
    }
}

/// Mappings the SIGBUS handler may repair: a fixed table of atomics, so
/// that the handler reads it without locks or allocation.
///
/// A handler counts itself in `handlers` before it looks at a slot, and
/// neither [`register`] (rewriting `start`/`len`) nor `Drop` (unmapping)
/// goes on while a handler is in the slot: so a handler that saw the slot
/// live reads one mapping's range, and that range stays mapped until its
/// `mmap` is done.
struct MapSlot {
    state: AtomicU8,
    handlers: AtomicUsize,
    start: AtomicUsize,
    len: AtomicUsize,
    truncated: AtomicBool,
}

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const LIVE: u8 = 2;
/// Mappings tracked at once; past this, a mapping is not repaired (a
/// truncation under it stops the process with the message).
const MAP_SLOTS: usize = 4096;

#[allow(clippy::declare_interior_mutable_const)] // only initialises MAPS
const EMPTY_SLOT: MapSlot = MapSlot {
    state: AtomicU8::new(FREE),
    handlers: AtomicUsize::new(0),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    truncated: AtomicBool::new(false),
};
static MAPS: [MapSlot; MAP_SLOTS] = [EMPTY_SLOT; MAP_SLOTS];
/// The page size, read once outside the handler (sysconf is not async-signal-safe).
static PAGE: AtomicUsize = AtomicUsize::new(0);

/// Spins while a SIGBUS handler is inside slot `s` (a handler runs for
/// the time of one `mmap` call).
fn wait_for_handlers(s: &MapSlot) {
    while s.handlers.load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
    }
}

fn register(start: usize, len: usize) -> Option<usize> {
    if len == 0 {
        return None;
    }
    if PAGE.load(Ordering::Relaxed) == 0 {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        PAGE.store(usize::try_from(page).unwrap_or(4096), Ordering::Relaxed);
    }
    for (i, s) in MAPS.iter().enumerate() {
        if s.state
            .compare_exchange(FREE, CLAIMED, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            wait_for_handlers(s);
            s.start.store(start, Ordering::SeqCst);
            s.len.store(len, Ordering::SeqCst);
            s.truncated.store(false, Ordering::SeqCst);
            s.state.store(LIVE, Ordering::SeqCst);
            return Some(i);
        }
    }
    None
}

/// In the SIGBUS handler: when `addr` lies in a live mapping of ours, maps
/// zero pages over the rest of it, marks it truncated and returns true.
fn repair_fault(addr: usize) -> bool {
    let page = PAGE.load(Ordering::Relaxed);
    if page == 0 {
        return false;
    }
    for s in MAPS.iter() {
        if s.state.load(Ordering::SeqCst) != LIVE {
            continue;
        }
        s.handlers.fetch_add(1, Ordering::SeqCst);
        // Counted in: the range read below cannot change or be unmapped
        // until we leave, if the slot is (still) live now.
        let repaired = s.state.load(Ordering::SeqCst) == LIVE && {
            let start = s.start.load(Ordering::SeqCst);
            let len = s.len.load(Ordering::SeqCst);
            addr >= start && addr < start + len && {
                let from = addr & !(page - 1);
                let end = (start + len + page - 1) & !(page - 1);
                // SAFETY: [from, end) lies inside a live read-only mapping
                // of ours, which cannot be unmapped while we are counted in
                // its slot (its pages past the file's new end are what
                // faulted); MAP_FIXED replaces them with zero pages of the
                // same protection, so every reference into the mapping
                // stays valid. mmap is a plain system call on Linux, safe
                // to make from a signal handler.
                let p = unsafe {
                    libc::mmap(
                        from as *mut libc::c_void,
                        end - from,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                        -1,
                        0,
                    )
                };
                p != libc::MAP_FAILED
            }
        };
        if repaired {
            s.truncated.store(true, Ordering::SeqCst);
        }
        s.handlers.fetch_sub(1, Ordering::SeqCst);
        if repaired {
            return true;
        }
    }
    false
}

/// Installs weft's SIGBUS handler. A SIGBUS is how a read shows up when
/// another program truncated a file weft has mapped (a collection's
/// segment or index file). When the faulting address lies in one of weft's
/// mappings, the handler maps zero pages over the rest of that mapping and
/// marks it truncated; the read resumes, sees zeros, and the operation that
/// made it fails with [`crate::Error::Corrupted`] naming the file (search,
/// verify and compaction check). The process keeps running. Any other
/// SIGBUS stops the process with a message (exit status 135, as a SIGBUS
/// death) instead of a bare "Bus error".
///
/// Installing a signal handler is the application's choice, so the library
/// never does it by itself: the `weft` binary does, and an embedding app may.
pub fn handle_sigbus() {
    extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO
        // handler. Only a fault raised by the kernel (si_code > 0, e.g.
        // BUS_ADRERR) carries an address; a SIGBUS sent with kill does not.
        let fault = unsafe { ((*info).si_code > 0).then(|| (*info).si_addr() as usize) };
        if fault.is_some_and(repair_fault) {
            return;
        }
        const MSG: &[u8] = b"weft: SIGBUS: a memory-mapped file was truncated or \
replaced while open (another program changed a collection's files); \
stopping. Nothing committed is lost: reopen, and check with `weft collections verify`.\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is a
        // static byte string whose pointer and length are valid.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(128 + libc::SIGBUS);
        }
    }
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handler
    // has the three-argument signature SA_SIGINFO calls for, and it stays
    // valid for the life of the process.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}
