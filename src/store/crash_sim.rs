//! Simulated power loss (tests only). A workload runs against a real
//! collection while `io::rec` logs every write, fsync, rename, removal and
//! folder fsync. Then, for many crash points and random tearing, the folder
//! is rebuilt as a power loss at that point could leave it:
//!
//! - a file's bytes are those of its last fsync; the writes after it are
//!   all lost, all kept, or each on its own kept, lost or torn (a random
//!   subset of its 512-byte sectors reached the disk, in any order; the
//!   rest reads as before, or as zeros past the old end);
//! - folder changes (creates, renames, removals) are those of the last
//!   folder fsync, plus a prefix of the later ones (metadata is journalled in
//!   order).
//!
//! The rebuilt folder must open, report no damage, hold every item whose
//! commit returned (less the deletions that returned), show no item that was
//! never committed, and accept a writer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use super::{Collection, CollectionConfig, NewItem};
use crate::bundle::Modality;
use crate::format::io::rec::{self, Op};

const SECTOR: u64 = 512;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Clone, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Writes and truncations since the last fsync, in order.
    unsynced: Vec<Change>,
}

#[derive(Clone)]
enum Change {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Clone)]
enum DirOp {
    Link(String, usize),
    Rename(String, String),
    Remove(String),
}

fn apply(data: &mut Vec<u8>, c: &Change) {
    match c {
        Change::Write(off, bytes) => {
            let end = *off as usize + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[*off as usize..end].copy_from_slice(bytes);
        }
        Change::SetLen(len) => data.resize(*len as usize, 0),
    }
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The folder a crash right after `ops[..k]` may leave, written into `out`.
fn materialize(ops: &[Op], k: usize, rng: &mut Rng, out: &Path) {
    let mut inodes: Vec<Inode> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut durable_names: HashMap<String, usize> = HashMap::new();
    let mut pending: Vec<DirOp> = Vec::new();
    for op in &ops[..k] {
        match op {
            Op::Create(p) => {
                inodes.push(Inode::default());
                let id = inodes.len() - 1;
                names.insert(name(p), id);
                pending.push(DirOp::Link(name(p), id));
            }
            Op::Write(p, off, bytes) => {
                let id = names[&name(p)];
                let c = Change::Write(*off, bytes.clone());
                apply(&mut inodes[id].data, &c);
                inodes[id].unsynced.push(c);
            }
            Op::SetLen(p, len) => {
                let id = names[&name(p)];
                let c = Change::SetLen(*len);
                apply(&mut inodes[id].data, &c);
                inodes[id].unsynced.push(c);
            }
            Op::Sync(p) => {
                let id = names[&name(p)];
                inodes[id].durable = inodes[id].data.clone();
                inodes[id].unsynced.clear();
            }
            Op::Rename(a, b) => {
                let id = names.remove(&name(a)).expect("renamed file exists");
                names.insert(name(b), id);
                pending.push(DirOp::Rename(name(a), name(b)));
            }
            Op::Link(a, b) => {
                let id = names[&name(a)];
                names.insert(name(b), id);
                pending.push(DirOp::Link(name(b), id));
            }
            Op::Remove(p) => {
                names.remove(&name(p));
                pending.push(DirOp::Remove(name(p)));
            }
            Op::SyncDir(_) => {
                durable_names = names.clone();
                pending.clear();
            }
            Op::Mark(_) => {}
        }
    }
    // Folder: the durable entries and a prefix of the later changes.
    let mut entries = durable_names;
    for d in &pending[..rng.below(pending.len() + 1)] {
        match d {
            DirOp::Link(n, id) => {
                entries.insert(n.clone(), *id);
            }
            DirOp::Rename(a, b) => {
                if let Some(id) = entries.remove(a) {
                    entries.insert(b.clone(), id);
                }
            }
            DirOp::Remove(n) => {
                entries.remove(n);
            }
        }
    }
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    for (n, id) in entries {
        let ino = &inodes[id];
        let mut bytes = ino.durable.clone();
        if !ino.unsynced.is_empty() {
            match rng.below(3) {
                0 => {}
                1 => bytes = ino.data.clone(),
                _ => {
                    // The disk wrote back in its own order: each change
                    // since the fsync independently kept, lost, or (a
                    // write) kept in some of its sectors only.
                    for c in &ino.unsynced {
                        match c {
                            Change::Write(off, data) => {
                                let end = off + data.len() as u64;
                                let mut s = off / SECTOR * SECTOR;
                                let all = rng.below(3);
                                while s < end {
                                    let (a, b) = (s.max(*off), (s + SECTOR).min(end));
                                    let keep = match all {
                                        0 => false,
                                        1 => true,
                                        _ => rng.below(2) == 0,
                                    };
                                    if keep {
                                        if bytes.len() < b as usize {
                                            bytes.resize(b as usize, 0);
                                        }
                                        bytes[a as usize..b as usize].copy_from_slice(
                                            &data[(a - off) as usize..(b - off) as usize],
                                        );
                                    }
                                    s += SECTOR;
                                }
                            }
                            c @ Change::SetLen(_) => {
                                if rng.below(2) == 0 {
                                    apply(&mut bytes, c);
                                }
                            }
                        }
                    }
                }
            }
        }
        std::fs::write(out.join(n), bytes).unwrap();
    }
}

/// What the workload had acknowledged at a mark.
#[derive(Clone, Default)]
struct Acked {
    added: BTreeSet<String>,
    deleted: BTreeSet<String>,
    /// The `tag` of items whose payload was updated in place.
    tags: BTreeMap<String, u64>,
}

impl Acked {
    /// Every `step`-th item added and not deleted, at most `take` of them.
    fn live(&self, step: usize, take: usize) -> Vec<String> {
        self.added
            .iter()
            .filter(|id| !self.deleted.contains(*id))
            .step_by(step)
            .take(take)
            .cloned()
            .collect()
    }
}

fn item(id: &str, seed: u64) -> NewItem {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut v = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| (r.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect()
    };
    NewItem::new(id, Modality::Text, v(8))
        .with_tokens(v(16), None)
        .with_payload(serde_json::json!({ "seed": seed }))
}

#[test]
fn no_committed_item_is_lost_and_no_uncommitted_one_appears_at_1000_crash_points() {
    let base = std::env::temp_dir().join(format!("weft-crash-sim-{}", std::process::id()));
    let dir = base.join("live");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&dir).unwrap();
    rec::start(&dir);
    // The workload: commits that checkpoint (every 20 items), deletes, an
    // explicit checkpoint and a compaction, with a mark after each return.
    let mut states: Vec<Acked> = vec![Acked::default()];
    let mut now = Acked::default();
    let mark = |states: &mut Vec<Acked>, now: &Acked| {
        states.push(now.clone());
        rec::log(|| Op::Mark((states.len() - 1).to_string()));
    };
    let c = Collection::create(
        &dir,
        CollectionConfig::new("t", "h", 8).with_checkpoint_items(20),
    )
    .unwrap();
    let mut seed = 0;
    for round in 0..14 {
        let ids: Vec<String> = (0..6).map(|i| format!("r{round}-{i}")).collect();
        for id in &ids {
            seed += 1;
            c.add(item(id, seed)).unwrap();
        }
        c.commit().unwrap();
        now.added.extend(ids);
        mark(&mut states, &now);
        if round % 3 == 2 {
            let victims = now.live(5, 2);
            for v in &victims {
                assert!(c.delete(v).unwrap());
            }
            c.commit().unwrap();
            now.deleted.extend(victims);
            mark(&mut states, &now);
        }
        if round % 3 == 1 {
            // Payload updates in place (what `weft tag` does), twice for
            // some items, so the overlay's newest value must win.
            let live = now.live(4, 3);
            for id in &live {
                let tag = round as u64;
                assert!(c
                    .update_payload(id, serde_json::json!({ "tag": tag }))
                    .unwrap());
                now.tags.insert(id.clone(), tag);
            }
            c.commit().unwrap();
            mark(&mut states, &now);
        }
        if round == 6 {
            c.checkpoint().unwrap();
        }
        if round == 10 {
            c.compact().unwrap();
        }
    }
    drop(c);
    let ops = rec::stop();
    assert!(ops.len() > 200, "{} operations recorded", ops.len());
    let writes = ops.iter().filter(|o| matches!(o, Op::Write(..))).count();
    let wal_writes = ops
        .iter()
        .filter(|o| matches!(o, Op::Write(p, ..) if name(p).starts_with("wal-")))
        .count();
    // Checkpoints keep their log as the segment's token file (a hard link).
    let links = ops
        .iter()
        .filter(|o| matches!(o, Op::Link(_, b) if name(b).ends_with(".tlog")))
        .count();
    assert!(links > 2, "{links} logs linked as segment token files");
    eprintln!(
        "crash sim: {} operations ({writes} writes, {wal_writes} to the WAL, {links} links)",
        ops.len()
    );

    // The acknowledged state at each op, and the next one (in flight).
    let mut at: Vec<usize> = Vec::with_capacity(ops.len() + 1);
    let mut current = 0;
    at.push(0);
    for op in &ops {
        if let Op::Mark(m) = op {
            current = m.parse().unwrap();
        }
        at.push(current);
    }
    let runs: usize = std::env::var("WEFT_CRASH_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut rng = Rng(0x00c0_ffee_d15c_0001);
    let out = base.join("crashed");
    // Half the crash points fall right after a write, where tearing matters.
    let after_write: Vec<usize> = (0..ops.len())
        .filter(|i| matches!(ops[*i], Op::Write(..)))
        .map(|i| i + 1)
        .collect();
    for run in 0..runs {
        let k = if run % 2 == 0 {
            rng.below(ops.len() + 1)
        } else {
            after_write[rng.below(after_write.len())]
        };
        materialize(&ops, k, &mut rng, &out);
        let acked = &states[at[k]];
        let next = states.get(at[k] + 1).unwrap_or(acked);
        let what = format!("run {run}, crash after op {k} of {}", ops.len());
        let c = match Collection::open(&out) {
            Ok(c) => c,
            // Before the collection's first manifest is durable there is
            // no collection yet: only then may it not open.
            Err(e) => {
                assert!(at[k] == 0, "{what}: {e}");
                continue;
            }
        };
        assert_eq!(c.damage(), None, "{what}: a crash was reported as damage");
        let snap = c.snapshot();
        let visible = |id: &str| snap.doc_of(id).unwrap().is_some();
        for id in &acked.added {
            let deleted = acked.deleted.contains(id) || next.deleted.contains(id);
            if !deleted {
                assert!(visible(id), "{what}: committed item {id} is missing");
            }
            if acked.deleted.contains(id) {
                assert!(!visible(id), "{what}: deleted item {id} came back");
            }
        }
        for (id, tag) in &acked.tags {
            let Some(doc) = snap.doc_of(id).unwrap() else {
                continue;
            };
            let payload: serde_json::Value =
                serde_json::from_str(&snap.meta(doc).unwrap().payload).unwrap();
            let got = payload["tag"].as_u64();
            assert!(
                got == Some(*tag) || got == next.tags.get(id).copied(),
                "{what}: item {id} has payload {payload}, acknowledged tag {tag}"
            );
        }
        for doc in snap.live_docs() {
            let id = snap.meta(doc).unwrap().id;
            assert!(
                acked.added.contains(&id) || next.added.contains(&id),
                "{what}: item {id} was never committed"
            );
        }
        let n = snap.len();
        drop(snap);
        drop(c);
        // A writer opens (cleaning up what the crash left) and keeps it all.
        let w = Collection::open_writer(&out).unwrap_or_else(|e| panic!("{what}: writer: {e}"));
        assert_eq!(w.snapshot().len(), n, "{what}");
        w.add(item("after", 1)).unwrap();
        w.commit().unwrap();
    }
    let _ = std::fs::remove_dir_all(&base);
}
