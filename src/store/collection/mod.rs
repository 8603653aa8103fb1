//! The collection: snapshots for readers, one writer with a WAL, checkpoints
//! and compaction. See the module docs of `store` for the files.
//!
//! Files: `config.rs` (settings fixed at create), `manifest.rs` (the
//! MANIFEST and the files a checkpoint writes and an open reads),
//! `snapshot.rs` (what readers hold), `writer.rs` (write batches, staging,
//! commit), `checkpoint.rs` (checkpoint and compaction); this file opens,
//! creates, repairs and verifies.

mod checkpoint;
mod config;
mod manifest;
mod snapshot;
mod writer;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::segment::{self, Segment, SegmentWriter};
use super::tokens::TokenDtype;
use super::wal::{self, Op, WalWriter};
use super::{ItemMeta, NewItem, StoredItem, TokBlock};
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::format::{self, corrupt};
use crate::index::{DocFilter, DocId, HnswFiles, HnswIndex, HnswParams, VectorIndex};
use crate::score::TokensRef;

pub use config::CollectionConfig;
use manifest::*;
pub use snapshot::{CollectionInfo, RepairReport, Snapshot};
use writer::WriterState;
pub use writer::{CommitStats, WriteBatch};

const CONFIG_FILE: &str = "collection.cfg";
const MANIFEST_FILE: &str = "MANIFEST";
const LOCK_FILE: &str = "LOCK";

/// A collection folder, open for reading, or for reading and writing.
pub struct Collection {
    dir: PathBuf,
    config: Arc<CollectionConfig>,
    current: RwLock<Arc<Snapshot>>,
    writer: Option<Mutex<WriterState>>,
    /// The write-ahead log's damage, when a read-only open found some.
    damage: Option<String>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("dir", &self.dir)
            .field("writable", &self.writer.is_some())
            .finish()
    }
}

impl Collection {
    /// Creates a collection in `dir` (which must not hold one) and opens it for writing.
    pub fn create(dir: impl AsRef<Path>, config: CollectionConfig) -> Result<Collection> {
        let dir = dir.as_ref();
        config.hnsw.validate()?;
        if config.dim == 0 {
            return Err(Error::InvalidConfig {
                name: "dim".into(),
                reason: "must be > 0".into(),
            });
        }
        if config.pool_factor.is_nan() || config.pool_factor < 1.0 {
            return Err(Error::InvalidConfig {
                name: "pool_factor".into(),
                reason: format!("{} must be >= 1 (1 = no pooling)", config.pool_factor),
            });
        }
        if dir.join(MANIFEST_FILE).exists() {
            return Err(Error::InvalidConfig {
                name: "collection".into(),
                reason: format!("{} already holds a collection", dir.display()),
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let body = serde_json::to_vec_pretty(&config).expect("config serialises");
        format::write_framed(&dir.join(CONFIG_FILE), b"CCFG", &body)?;
        let manifest = Manifest {
            generation: 0,
            next_doc: 0,
            next_segment: 0,
            segments: Vec::new(),
            deletes: None,
            payloads: None,
            hnsw: None,
            wal: "wal-0.log".into(),
        };
        wal::create(&dir.join(&manifest.wal))?;
        write_manifest(dir, &manifest)?;
        Self::open_inner(dir, true)
    }

    /// Opens an existing collection read-only (no lock; many readers may open it).
    pub fn open(dir: impl AsRef<Path>) -> Result<Collection> {
        Self::open_inner(dir.as_ref(), false)
    }

    /// Whether `dir` holds a collection (its `MANIFEST`).
    pub fn exists(dir: &Path) -> bool {
        dir.join(MANIFEST_FILE).is_file()
    }

    /// Opens an existing collection for writing; a second writer gets [`Error::Locked`].
    pub fn open_writer(dir: impl AsRef<Path>) -> Result<Collection> {
        Self::open_inner(dir.as_ref(), true)
    }

    fn open_inner(dir: &Path, write: bool) -> Result<Collection> {
        if !dir.join(MANIFEST_FILE).is_file() {
            return Err(Error::NotFound {
                what: "collection",
                name: dir.display().to_string(),
            });
        }
        let cfg_path = dir.join(CONFIG_FILE);
        let config: CollectionConfig =
            serde_json::from_slice(&format::read_framed(&cfg_path, b"CCFG")?)
                .map_err(|e| corrupt(&cfg_path, e.to_string()))?;
        let lock = if write { Some(lock_writer(dir)?) } else { None };
        let config = Arc::new(config);
        let manifest = read_manifest(dir)?;
        let snapshot = load_snapshot(dir, &config, &manifest)?;
        let wal_path = dir.join(&manifest.wal);
        let mut replayed = wal::replay(&wal_path, config.dim)?;
        let damage = replayed.damage.take();
        if let (Some(err), true) = (&damage, lock.is_some()) {
            // Never write past (or truncate) a damaged log: a writer would
            // cut acknowledged items for good. Readers see what precedes it.
            return Err(Error::Corrupted {
                path: wal_path.clone(),
                reason: format!(
                    "{}; the collection opens read-only until it is repaired",
                    damage_reason(err)
                ),
            });
        }
        let mut snapshot = snapshot;
        if replayed.valid_len > format::HEADER_LEN as u64 {
            snapshot.wal = Some(Arc::new(wal::map(&wal_path, replayed.valid_len)?));
        }
        for (ops, next) in &replayed.batches {
            snapshot.apply(ops, *next)?;
        }
        let writer = match lock {
            Some(lock) => {
                cleanup(dir, &manifest)?;
                let wal = WalWriter::open(&wal_path, replayed.valid_len)?;
                Some(Mutex::new(WriterState {
                    _lock: lock,
                    wal,
                    manifest,
                    staged: WriteBatch::new(Arc::clone(&config)),
                    failed: None,
                }))
            }
            None => None,
        };
        Ok(Collection {
            dir: dir.to_path_buf(),
            config,
            current: RwLock::new(Arc::new(snapshot)),
            writer,
            damage: damage.as_ref().map(damage_reason),
        })
    }

    /// Repairs a collection whose write-ahead log is damaged: keeps a copy
    /// of the log beside it (`damaged-wal-N.log.UNIXTIME`), then cuts the log
    /// at the last commit before the damage. Items committed after that point
    /// are lost from the collection (they stay in the copy); the report says
    /// how many bytes went. Takes the writer lock; a collection with an
    /// intact log is left as it is.
    pub fn repair(dir: impl AsRef<Path>) -> Result<RepairReport> {
        let dir = dir.as_ref();
        let _lock = lock_writer(dir)?;
        let manifest = read_manifest(dir)?;
        let cfg_path = dir.join(CONFIG_FILE);
        let config: CollectionConfig =
            serde_json::from_slice(&format::read_framed(&cfg_path, b"CCFG")?)
                .map_err(|e| corrupt(&cfg_path, e.to_string()))?;
        let wal_path = dir.join(&manifest.wal);
        let replayed = wal::replay(&wal_path, config.dim)?;
        let mut report = RepairReport {
            wal: wal_path.clone(),
            copy: None,
            bytes_cut: 0,
            items: 0,
        };
        if replayed.damage.is_some() {
            let len = std::fs::metadata(&wal_path)
                .map_err(|e| Error::io(&wal_path, e))?
                .len();
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            // Not named `wal-*`: cleanup() removes those that the manifest does not name.
            let copy = dir.join(format!("damaged-{}.{stamp}", manifest.wal));
            std::fs::copy(&wal_path, &copy).map_err(|e| Error::io(&copy, e))?;
            std::fs::File::open(&copy)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&copy, e))?;
            format::sync_dir(dir).map_err(|e| Error::io(dir, e))?;
            drop(WalWriter::open(&wal_path, replayed.valid_len)?);
            report.copy = Some(copy);
            report.bytes_cut = len - replayed.valid_len;
        }
        drop(_lock);
        report.items = Self::open(dir)?.snapshot().len();
        Ok(report)
    }

    /// What is wrong with the write-ahead log, when a read-only open found
    /// it damaged (see [`CollectionInfo::damaged`]).
    pub fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings.
    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// Refuses a bundle other than the one the collection was made with.
    pub fn check_bundle(&self, bundle: &Bundle) -> Result<()> {
        if bundle.name() != self.config.bundle_name || bundle.hash() != self.config.bundle_hash {
            return Err(Error::BundleMismatch {
                path: self.dir.clone(),
                expected: format!(
                    "{} ({})",
                    self.config.bundle_name,
                    short(&self.config.bundle_hash)
                ),
                found: format!("{} ({})", bundle.name(), short(bundle.hash())),
            });
        }
        if bundle.dim() != self.config.dim {
            return Err(Error::WrongDimension {
                what: format!("bundle {}", bundle.name()),
                expected: self.config.dim,
                received: bundle.dim(),
            });
        }
        Ok(())
    }

    /// The current snapshot; it never changes, later commits publish new ones.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the collection from disk (for a read-only handle that wants the writer's latest commits).
    pub fn reload(&self) -> Result<()> {
        let fresh = Self::open_inner(&self.dir, false)?;
        let snap = fresh.snapshot();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snap;
        Ok(())
    }

    /// Reads every byte of every file and checks every checksum; a damaged
    /// write-ahead log is an error too.
    pub fn verify(&self) -> Result<()> {
        if let Some(reason) = &self.damage {
            return Err(Error::Corrupted {
                path: self.dir.join(read_manifest(&self.dir)?.wal),
                reason: reason.clone(),
            });
        }
        let snap = self.snapshot();
        let checked = snap
            .segments
            .iter()
            .try_for_each(|s| s.verify_all())
            .and_then(|()| snap.verify_logged())
            .and_then(|()| snap.index.verify());
        // A file cut under its mapping explains whatever else failed.
        snap.check_file_sizes()?;
        checked
    }

    /// A summary.
    pub fn info(&self) -> CollectionInfo {
        let snap = self.snapshot();
        let disk_bytes = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        CollectionInfo {
            path: self.dir.clone(),
            config: (*self.config).clone(),
            items: snap.len(),
            deleted: snap.deleted.len(),
            segments: snap.segments.len(),
            wal_items: snap.mem.len(),
            disk_bytes,
            generation: snap.generation,
            damaged: self.damage.clone(),
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Takes the collection's writer lock (a second writer gets [`Error::Locked`]).
fn lock_writer(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            path: dir.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// The reason of a `Corrupted` error (the path is said separately).
fn damage_reason(err: &Error) -> String {
    match err {
        Error::Corrupted { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}
