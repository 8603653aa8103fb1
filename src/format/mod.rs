//! The framing every collection file shares, and atomic writes.
//!
//! ```text
//! header (16 bytes): b"WEFT" | kind [4] | format version u32 LE | reserved u32
//! body
//! footer (16 bytes): body length u64 LE | crc32 of the body u32 LE | b"TFEW"
//! ```
//!
//! A file is written to `NAME.tmp`, fsynced, renamed over `NAME`, and the
//! folder is fsynced, so a reader sees the old file or the new one, never a
//! mix. Small files are verified whole when read; the large vector and token
//! files carry a crc32 per item (kept in the segment's index file) so that
//! opening a collection does not read them.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use self::io::WFile;
pub(crate) mod io;
use crate::error::{Error, Result};

/// Magic at the start of every file.
pub const MAGIC: &[u8; 4] = b"WEFT";
/// Magic at the end of every file.
pub const END_MAGIC: &[u8; 4] = b"TFEW";
/// Header length.
pub const HEADER_LEN: usize = 16;
/// Footer length.
pub const FOOTER_LEN: usize = 16;
/// The collection format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;

/// crc32 (IEEE) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The header bytes for `kind`.
pub fn header(kind: &[u8; 4]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4..8].copy_from_slice(kind);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// The footer bytes for a body.
pub fn footer(body_len: u64, crc: u32) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f[..8].copy_from_slice(&body_len.to_le_bytes());
    f[8..12].copy_from_slice(&crc.to_le_bytes());
    f[12..].copy_from_slice(END_MAGIC);
    f
}

pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::Corrupted {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Checks header and footer of a whole file image; returns the body.
/// With `verify_body` the body's crc32 is checked too.
pub fn open_framed<'a>(
    bytes: &'a [u8],
    kind: &[u8; 4],
    path: &Path,
    verify_body: bool,
) -> Result<&'a [u8]> {
    if bytes.len() < HEADER_LEN + FOOTER_LEN {
        return Err(corrupt(
            path,
            format!("{} bytes, too short for a weft file", bytes.len()),
        ));
    }
    if &bytes[..4] != MAGIC {
        return Err(corrupt(path, "not a weft file (bad magic)"));
    }
    if &bytes[4..8] != kind {
        return Err(corrupt(
            path,
            format!(
                "file kind {:?}, expected {:?}",
                String::from_utf8_lossy(&bytes[4..8]),
                String::from_utf8_lossy(kind)
            ),
        ));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if bytes[12..16] != [0, 0, 0, 0] {
        return Err(corrupt(path, "bad header (reserved bytes are not zero)"));
    }
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let foot = &bytes[bytes.len() - FOOTER_LEN..];
    if &foot[12..] != END_MAGIC {
        return Err(corrupt(path, "bad footer (file truncated or overwritten)"));
    }
    let body_len = u64::from_le_bytes(foot[..8].try_into().expect("8 bytes"));
    let body = &bytes[HEADER_LEN..bytes.len() - FOOTER_LEN];
    if body_len != body.len() as u64 {
        return Err(corrupt(
            path,
            format!("footer says {body_len} body bytes, file has {}", body.len()),
        ));
    }
    if verify_body {
        let want = u32::from_le_bytes(foot[8..12].try_into().expect("4 bytes"));
        let got = crc32(body);
        if want != got {
            return Err(corrupt(
                path,
                format!("checksum mismatch (stored {want:08x}, computed {got:08x})"),
            ));
        }
    }
    Ok(body)
}

/// What of a file an open is about to read, for [`prefetch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetch {
    /// The whole file (verified whole at open).
    Whole,
    /// Its header and footer pages only (the body is read lazily).
    Ends,
}

/// Asks the kernel to start reading `what` of `path` and returns without
/// waiting (`MADV_WILLNEED` on a read-only mapping starts readahead). Issued
/// for every file before an open verifies any of them, the open's hundreds of
/// small reads overlap on the device instead of queueing one after another
/// (a cold open of 1,000,000 items in 55 segments went from ~2 s to ~0.5 s;
/// BENCHMARKS.md). Best effort: errors are ignored, the open that follows
/// reports them.
pub fn prefetch(path: &Path, what: Prefetch) {
    #[cfg(unix)]
    {
        use memmap2::Advice;
        const PAGE: usize = 4096;
        let Ok(file) = File::open(path) else { return };
        let Ok(map) = crate::sys::map_readonly(&file, path) else {
            return;
        };
        let len = map.len();
        let _ = match what {
            Prefetch::Whole => map.advise(Advice::WillNeed),
            Prefetch::Ends => map
                .advise_range(Advice::WillNeed, 0, len.min(PAGE))
                .and_then(|()| {
                    let tail = len.saturating_sub(PAGE);
                    map.advise_range(Advice::WillNeed, tail, len - tail)
                }),
        };
    }
    #[cfg(not(unix))]
    let _ = (path, what);
}

/// Reads a small framed file whole and verifies it.
pub fn read_framed(path: &Path, kind: &[u8; 4]) -> Result<Vec<u8>> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let body_len = open_framed(&bytes, kind, path, true)?.len();
    // The body moved down in the same buffer, not copied into a second one.
    bytes.truncate(HEADER_LEN + body_len);
    bytes.drain(..HEADER_LEN);
    Ok(bytes)
}

/// Writes `body` framed as `kind` to `path` atomically (temp file, fsync, rename, fsync folder).
pub fn write_framed(path: &Path, kind: &[u8; 4], body: &[u8]) -> Result<()> {
    let mut w = FramedWriter::create(path, kind)?;
    w.write(body)?;
    w.finish()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    sync_dir(dir).map_err(|e| Error::io(path, e))
}

/// Writes a file through `fill` into `path.tmp`, fsyncs it and renames it over `path`.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&mut WFile>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut file = WFile::create(&tmp)?;
        {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut file);
            fill(&mut w)?;
            w.flush()?;
        }
        file.sync()?;
        io::rename(&tmp, path)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    })();
    result.map_err(|e| {
        let _ = io::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// A framed file written as a stream: header now, body in pieces, footer
/// (length and crc32 of everything written) at [`FramedWriter::finish`],
/// which fsyncs `path.tmp` and renames it over `path`. The caller fsyncs the
/// folder once all its files are in place. Dropped unfinished, it removes
/// its temp file.
pub struct FramedWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    out: Option<std::io::BufWriter<WFile>>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl FramedWriter {
    /// Creates `path.tmp` and writes the header of a `kind` file.
    pub fn create(path: &Path, kind: &[u8; 4]) -> Result<Self> {
        let tmp = tmp_path(path);
        let file = WFile::create(&tmp).map_err(|e| Error::io(path, e))?;
        let mut w = FramedWriter {
            path: path.to_path_buf(),
            tmp,
            out: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            crc: crc32fast::Hasher::new(),
            len: 0,
        };
        w.raw(&header(kind))?;
        Ok(w)
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self.out.as_mut().expect("written after finish");
        out.write_all(bytes).map_err(|e| Error::io(&self.path, e))
    }

    /// Appends `bytes` to the body.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.raw(bytes)?;
        self.crc.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Body bytes written so far.
    pub fn body_len(&self) -> u64 {
        self.len
    }

    /// Writes the footer, fsyncs and renames the file into place.
    pub fn finish(mut self) -> Result<()> {
        let foot = footer(self.len, self.crc.clone().finalize());
        self.raw(&foot)?;
        let out = self.out.take().expect("finished once");
        let done = out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync())
            .and_then(|()| io::rename(&self.tmp, &self.path));
        done.map_err(|e| {
            let _ = io::remove_file(&self.tmp);
            Error::io(&self.path, e)
        })
    }
}

impl Drop for FramedWriter {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            // close without flushing the buffer into a file about to be removed
            drop(out.into_parts());
            let _ = io::remove_file(&self.tmp);
        }
    }
}

/// The temporary name used while `path` is written.
pub fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// fsyncs a folder so that a rename or create in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    io::sync_dir(dir)
}

/// A little-endian byte writer for bodies.
#[derive(Debug, Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    /// Appends a u8.
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    /// Appends a u16.
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Appends a u32.
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Appends a u64.
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Appends a length-prefixed byte string.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    /// Appends a length-prefixed UTF-8 string.
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    /// Appends f32 values.
    pub fn f32s(&mut self, v: &[f32]) {
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// A little-endian byte reader for bodies; every read is bounds-checked.
#[derive(Debug)]
pub struct Dec<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    /// Reads from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Dec { bytes, pos: 0 }
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    /// Reads a u8.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    /// Reads a u16.
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2)
            .map(|b| u16::from_le_bytes(b.try_into().expect("2")))
    }
    /// Reads a u32.
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
    }
    /// Reads a u64.
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    }
    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// Reads a length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
    /// Reads `n` f32 values.
    pub fn f32s(&mut self, n: usize) -> Option<Vec<f32>> {
        let b = self.take(n.checked_mul(4)?)?;
        Some(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_file_equals_one_shot_file_and_an_unfinished_one_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("weft-format-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.bin"), dir.join("b.bin"));
        write_framed(&a, b"TEST", b"hello streamed body").unwrap();
        let mut w = FramedWriter::create(&b, b"TEST").unwrap();
        for piece in [&b"hello "[..], b"", b"streamed", b" body"] {
            w.write(piece).unwrap();
        }
        assert_eq!(w.body_len(), 19);
        assert!(!b.exists(), "visible before finish");
        w.finish().unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(!tmp_path(&b).exists());

        let c = dir.join("c.bin");
        let mut w = FramedWriter::create(&c, b"TEST").unwrap();
        w.write(b"half").unwrap();
        assert!(tmp_path(&c).exists());
        drop(w);
        assert!(!tmp_path(&c).exists() && !c.exists());

        // a finish that cannot rename (the target is a non-empty folder)
        // fails naming the file and leaves no temp file
        let d = dir.join("d.bin");
        std::fs::create_dir_all(d.join("inside")).unwrap();
        let mut w = FramedWriter::create(&d, b"TEST").unwrap();
        w.write(b"body").unwrap();
        let err = w.finish().unwrap_err().to_string();
        assert!(err.contains("d.bin"), "{err}");
        assert!(!tmp_path(&d).exists());

        // prefetch is a hint: missing, empty, tiny and framed files are fine
        std::fs::write(dir.join("empty"), b"").unwrap();
        for name in ["missing", "empty", "a.bin"] {
            for what in [Prefetch::Whole, Prefetch::Ends] {
                prefetch(&dir.join(name), what);
            }
        }
        assert_eq!(read_framed(&a, b"TEST").unwrap(), b"hello streamed body");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn framed_round_trip_and_every_flipped_byte_is_caught() {
        let dir = std::env::temp_dir().join(format!("weft-format-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.bin");
        write_framed(&path, b"TEST", b"hello body").unwrap();
        assert_eq!(read_framed(&path, b"TEST").unwrap(), b"hello body");
        assert!(!tmp_path(&path).exists());
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            let err = open_framed(&bad, b"TEST", &path, true);
            assert!(err.is_err(), "flip at byte {i} not detected");
            assert!(err.unwrap_err().to_string().contains("x.bin"));
        }
        let e = open_framed(&good, b"OTHR", &path, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("kind"), "{e}");
    }

    #[test]
    fn decoder_never_reads_past_the_end() {
        let mut e = Enc::default();
        e.str("abc");
        e.u64(7);
        let mut d = Dec::new(&e.0);
        assert_eq!(d.str(), Some("abc"));
        assert_eq!(d.u64(), Some(7));
        assert_eq!(d.u8(), None);
        let mut d = Dec::new(&[255, 255, 255, 255, 1]);
        assert_eq!(d.bytes(), None);
    }
}
