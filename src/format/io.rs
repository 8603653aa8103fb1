//! Every write the store makes to a collection's folder goes through here:
//! creating, writing, truncating and fsyncing files, renames, removals and
//! folder fsyncs. Reads use `std::fs` directly.
//!
//! In tests, a recorder can log these operations for the files under one
//! folder (`record`); `crash_sim` (tests only) replays any prefix of the log
//! as a power loss would leave it: writes not yet fsynced dropped or torn at
//! sector granularity, folder changes not yet fsynced kept only as a prefix.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Logs an operation when a test records (compiled out otherwise).
macro_rules! record {
    ($op:expr) => {
        #[cfg(test)]
        rec::log(|| $op);
    };
}

/// A file being written, with its position tracked (for the recorder).
#[derive(Debug)]
pub struct WFile {
    file: File,
    #[cfg_attr(not(test), allow(dead_code))]
    path: PathBuf,
    pos: u64,
}

impl WFile {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<WFile> {
        let file = File::create(path)?;
        record!(rec::Op::Create(path.to_path_buf()));
        Ok(WFile {
            file,
            path: path.to_path_buf(),
            pos: 0,
        })
    }

    /// Opens an existing `path` for reading and writing, at offset 0.
    pub fn open(path: &Path) -> std::io::Result<WFile> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(WFile {
            file,
            path: path.to_path_buf(),
            pos: 0,
        })
    }

    /// The file's length on disk now.
    pub fn len(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Cuts or extends the file to `len`.
    pub fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)?;
        record!(rec::Op::SetLen(self.path.clone(), len));
        Ok(())
    }

    /// Moves the write position.
    pub fn seek_to(&mut self, pos: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(pos))?;
        self.pos = pos;
        Ok(())
    }

    /// fsyncs data and size.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()?;
        record!(rec::Op::Sync(self.path.clone()));
        Ok(())
    }
}

impl Write for WFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        record!(rec::Op::Write(
            self.path.clone(),
            self.pos,
            buf[..n].to_vec()
        ));
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Renames `from` over `to`.
pub fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    record!(rec::Op::Rename(from.to_path_buf(), to.to_path_buf()));
    Ok(())
}

/// Makes `to` a second name of the file `from` (durable after a
/// [`sync_dir`]).
pub fn hard_link(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    if rec::link_refused(to) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "hard links refused here (test)",
        ));
    }
    std::fs::hard_link(from, to)?;
    record!(rec::Op::Link(from.to_path_buf(), to.to_path_buf()));
    Ok(())
}

/// Removes a file.
pub fn remove_file(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    record!(rec::Op::Remove(path.to_path_buf()));
    Ok(())
}

/// fsyncs a folder, so that creates, renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()?;
    record!(rec::Op::SyncDir(dir.to_path_buf()));
    Ok(())
}

#[cfg(test)]
pub(crate) mod rec {
    use std::path::PathBuf;
    use std::sync::Mutex;

    /// One recorded operation.
    #[derive(Debug, Clone)]
    pub enum Op {
        Create(PathBuf),
        Write(PathBuf, u64, Vec<u8>),
        SetLen(PathBuf, u64),
        Sync(PathBuf),
        Rename(PathBuf, PathBuf),
        Link(PathBuf, PathBuf),
        Remove(PathBuf),
        SyncDir(PathBuf),
        /// A marker the test adds (e.g. "commit 3 returned").
        Mark(String),
    }

    static RECORDER: Mutex<Option<(PathBuf, Vec<Op>)>> = Mutex::new(None);

    fn under(op: &Op, root: &std::path::Path) -> bool {
        match op {
            Op::Create(p)
            | Op::Write(p, ..)
            | Op::SetLen(p, _)
            | Op::Sync(p)
            | Op::Remove(p)
            | Op::SyncDir(p) => p.starts_with(root),
            Op::Rename(a, b) | Op::Link(a, b) => a.starts_with(root) || b.starts_with(root),
            Op::Mark(_) => true,
        }
    }

    pub fn log(op: impl FnOnce() -> Op) {
        let mut r = RECORDER.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((root, ops)) = r.as_mut() {
            let op = op();
            if under(&op, root) {
                ops.push(op);
            }
        }
    }

    static REFUSED_LINKS: Mutex<Option<PathBuf>> = Mutex::new(None);

    /// From now on `hard_link` fails for every new name under `root`, as on
    /// a file system without hard links (`None`: links work again).
    pub fn refuse_links_under(root: Option<&std::path::Path>) {
        *REFUSED_LINKS.lock().unwrap_or_else(|e| e.into_inner()) = root.map(|r| r.to_path_buf());
    }

    pub(crate) fn link_refused(to: &std::path::Path) -> bool {
        REFUSED_LINKS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            .is_some_and(|root| to.starts_with(root))
    }

    /// Starts recording the operations under `root` (one recorder at a time).
    pub fn start(root: &std::path::Path) {
        *RECORDER.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((root.to_path_buf(), Vec::new()));
    }

    /// Stops recording and returns the log.
    pub fn stop() -> Vec<Op> {
        RECORDER
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|(_, ops)| ops)
            .unwrap_or_default()
    }
}
