//! The board cache: each ticket file's parse, kept by its path and file
//! identity in `<git dir>/orch/cache/board-<state>`, so a board read parses only
//! the files that changed since the last one.
//!
//! The cache is advisory. A board change never trusts it: every transition
//! reads its ticket again from the file. A cache that cannot be read, was
//! written by another build of orch or holds a line that does not parse is
//! ignored (and rewritten), and deleting it changes no result.
//!
//! A file's identity is its size, modification and change times (to the
//! nanosecond), inode and device. The change time cannot be set by hand, and
//! an editor that writes a new file and renames it gives a new inode, so an
//! edit that keeps the size and puts the modification time back is still
//! seen. What remains is an edit inside one tick of the file system's clock
//! right after the file was read; as git does for its index, a file changed
//! less than [`SETTLE`] before it was looked at is never cached, only read.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first line of a cache file: the format, and which build wrote it
/// (another build may parse tickets differently).
const FORMAT: &str = "orch-board-cache 2";

/// How long a file must have been left alone before its parse is cached.
pub const SETTLE: Duration = Duration::from_secs(2);

/// [`SETTLE`], or `ORCH_CACHE_SETTLE_MS` (tests set it to 0 to have files
/// they just wrote cached, and so test the identity itself).
fn settle() -> Duration {
    std::env::var("ORCH_CACHE_SETTLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(SETTLE)
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
}

impl Identity {
    /// The identity from std's metadata: what the tests compare
    /// [`Identity::of_stat`] with.
    #[cfg(test)]
    pub fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// The identity from `fstatat(2)`: what [`Identity::of`] gives for the
    /// same file.
    #[allow(clippy::unnecessary_cast)] // the field types differ by target
    pub fn of_stat(st: &rustix::fs::Stat) -> Identity {
        Identity {
            size: st.st_size as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
        }
    }

    /// Whether the file was last changed at least [`SETTLE`] before `now`
    /// (a time in the future, from a skewed clock, is not).
    pub fn settled(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let limit = now.saturating_sub(settle());
        let before = |(s, ns): (i64, i64)| {
            (s, ns) < (limit.as_secs() as i64, i64::from(limit.subsec_nanos()))
        };
        before(self.mtime) && before(self.ctime)
    }
}

fn header() -> String {
    // The build: orch's version and the executable's size and time, so a
    // rebuilt orch with another parser never reads an older build's parse.
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| format!("{}.{}.{}", m.size(), m.mtime(), m.mtime_nsec()))
        .unwrap_or_default();
    format!("{FORMAT} {} {exe}", env!("CARGO_PKG_VERSION"))
}

/// A cache file read by a thread of its own, handed over in order. Both
/// the file and the board's listing are in name order, so the two are
/// merged as they go: no record waits in memory for the listing to end,
/// and a board of 100,000 tickets never holds its whole cache at once.
pub struct Stream<T> {
    rx: Option<mpsc::Receiver<Batch<T>>>,
    batch: std::vec::IntoIter<Item<T>>,
    /// The next record, read but not yet asked for.
    ahead: Option<(String, Identity, T)>,
    /// Records nobody asked for (files gone or renamed), or that could
    /// not be read.
    leftovers: usize,
}

/// A record, or `None` where the file stops making sense.
type Item<T> = Option<(String, Identity, T)>;
type Batch<T> = Vec<Item<T>>;

/// Records handed over at a time, and batches read ahead of the merge.
const BATCH: usize = 256;
const AHEAD: usize = 32;

/// Read the cache file at `path` on a thread. Anything wrong with the
/// file makes it, or the rest of it, a miss, never an error.
pub fn stream<T: DeserializeOwned + Send + 'static>(path: PathBuf) -> Stream<T> {
    let (tx, rx) = mpsc::sync_channel::<Batch<T>>(AHEAD);
    let spawned = std::thread::Builder::new()
        .name("board-cache".into())
        .spawn(move || {
            let Ok(file) = std::fs::File::open(&path) else {
                return;
            };
            let mut reader = BufReader::with_capacity(1 << 16, file);
            let mut first = String::new();
            match reader.read_line(&mut first) {
                Ok(0) => return,
                Ok(_) if first.trim_end_matches('\n') == header() => {}
                _ => {
                    let _ = tx.send(vec![None]);
                    return;
                }
            }
            let mut buf = Vec::new();
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let (item, end) = match read_record::<T>(&mut reader, &mut buf) {
                    Ok(Some(record)) => (Some(Some(record)), false),
                    Ok(None) => (None, true),
                    // Cut short or garbled: the rest cannot be trusted to
                    // start where it seems to.
                    Err(()) => (Some(None), true),
                };
                batch.extend(item);
                if (end || batch.len() == BATCH)
                    && tx
                        .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                        .is_err()
                {
                    return; // the board read ended early
                }
                if end {
                    return;
                }
            }
        });
    Stream {
        rx: spawned.ok().map(|_| rx),
        batch: Vec::new().into_iter(),
        ahead: None,
        leftovers: 0,
    }
}

impl<T> Stream<T> {
    /// A stream of nothing: every lookup a miss.
    pub fn empty() -> Stream<T> {
        Stream {
            rx: None,
            batch: Vec::new().into_iter(),
            ahead: None,
            leftovers: 0,
        }
    }

    fn next(&mut self) -> Option<(String, Identity, T)> {
        loop {
            match self.batch.next() {
                Some(Some(record)) => return Some(record),
                Some(None) => self.leftovers += 1,
                None => {
                    let batch = self.rx.as_ref()?.recv().ok();
                    match batch {
                        Some(b) => self.batch = b.into_iter(),
                        None => {
                            self.rx = None;
                            return None;
                        }
                    }
                }
            }
        }
    }

    /// The record for `rel` with the identity it was cached at. Asked in
    /// name order: records before `rel` are passed over for good (and make
    /// the cache stale), one after it waits for a later call.
    pub fn take(&mut self, rel: &str) -> Option<(Identity, T)> {
        loop {
            if self.ahead.is_none() {
                self.ahead = Some(self.next()?);
            }
            let at = self.ahead.as_ref().map(|(r, _, _)| r.as_str().cmp(rel))?;
            match at {
                std::cmp::Ordering::Less => {
                    self.ahead = None;
                    self.leftovers += 1;
                }
                std::cmp::Ordering::Greater => return None,
                std::cmp::Ordering::Equal => {
                    let (_, id, value) = self.ahead.take()?;
                    return Some((id, value));
                }
            }
        }
    }

    /// Whether the file held records nobody took (for files gone) or that
    /// could not be read. Reads what is left.
    pub fn finish(&mut self) -> bool {
        if self.ahead.take().is_some() {
            self.leftovers += 1;
        }
        while self.next().is_some() {
            self.leftovers += 1;
        }
        self.leftovers > 0
    }
}

/// One record: path length and path, the identity, payload length and the
/// payload (postcard). `Ok(None)` at a clean end of the file.
fn read_record<T: DeserializeOwned>(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> Result<Option<(String, Identity, T)>, ()> {
    let Some((rel, id)) = read_raw(reader, buf)? else {
        return Ok(None);
    };
    let value = postcard::from_bytes(buf).map_err(|_| ())?;
    Ok(Some((rel, id, value)))
}

/// One record with its payload left undecoded in `buf`.
fn read_raw(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> Result<Option<(String, Identity)>, ()> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            // A clean end only if nothing of a record was there.
            return if reader.fill_buf().map(|b| b.is_empty()).unwrap_or(false) {
                Ok(None)
            } else {
                Err(())
            };
        }
        Err(_) => return Err(()),
    }
    let mut bytes = |n: usize, buf: &mut Vec<u8>| -> Result<(), ()> {
        if n > MAX_RECORD {
            return Err(());
        }
        buf.resize(n, 0);
        reader.read_exact(buf).map_err(|_| ())
    };
    bytes(u32::from_le_bytes(len) as usize, buf)?;
    // A copy of its own size: `buf` grows to the largest payload.
    let rel = std::str::from_utf8(buf).map_err(|_| ())?.to_string();
    bytes(IDENTITY_BYTES + 4, buf)?;
    let id = Identity::decode(&buf[..IDENTITY_BYTES]).ok_or(())?;
    let mut n = [0u8; 4];
    n.copy_from_slice(&buf[IDENTITY_BYTES..]);
    bytes(u32::from_le_bytes(n) as usize, buf)?;
    Ok(Some((rel, id)))
}

/// Larger than any ticket file's parse: a length past it is garbage.
const MAX_RECORD: usize = 64 << 20;
const IDENTITY_BYTES: usize = 7 * 8;

impl Identity {
    fn encode(&self) -> [u8; IDENTITY_BYTES] {
        let mut out = [0u8; IDENTITY_BYTES];
        let words = [
            self.size,
            self.mtime.0 as u64,
            self.mtime.1 as u64,
            self.ctime.0 as u64,
            self.ctime.1 as u64,
            self.ino,
            self.dev,
        ];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Identity> {
        let mut words = bytes
            .chunks_exact(8)
            .map(|c| c.try_into().ok().map(u64::from_le_bytes));
        let mut next = || words.next().flatten();
        Some(Identity {
            size: next()?,
            mtime: (next()? as i64, next()? as i64),
            ctime: (next()? as i64, next()? as i64),
            ino: next()?,
            dev: next()?,
        })
    }
}

/// Write the cache anew with `entries` (path, identity, parse), in the
/// order the board lists its files. Failures are ignored: the cache only
/// saves time.
pub fn save<'a, T: Serialize + 'a, R: AsRef<str>>(
    path: &Path,
    entries: impl Iterator<Item = (R, Identity, &'a T)>,
) {
    let Some(dir) = path.parent() else {
        return;
    };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("cache"),
        std::process::id()
    ));
    let written = (|| -> std::io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::create(&tmp)?);
        writeln!(out, "{}", header())?;
        let mut payload = Vec::new();
        for (rel, id, value) in entries {
            let rel = rel.as_ref();
            payload.clear();
            payload = postcard::to_extend(value, payload).map_err(std::io::Error::other)?;
            let (Ok(rel_len), Ok(len)) = (u32::try_from(rel.len()), u32::try_from(payload.len()))
            else {
                continue;
            };
            out.write_all(&rel_len.to_le_bytes())?;
            out.write_all(rel.as_bytes())?;
            out.write_all(&id.encode())?;
            out.write_all(&len.to_le_bytes())?;
            out.write_all(&payload)?;
        }
        out.flush()
    })();
    // A rename replaces the cache whole: a reader sees the old one or the
    // new one, never half of either.
    if written.is_err() || std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_through_its_bytes() {
        let meta = std::fs::metadata(env!("CARGO_MANIFEST_DIR")).unwrap();
        let id = Identity::of(&meta);
        assert_eq!(Identity::decode(&id.encode()), Some(id));
        assert_eq!(Identity::decode(&id.encode()[..48]), None);
    }

    #[test]
    fn the_identity_from_fstatat_is_the_one_from_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.md");
        std::fs::write(&f, "some bytes").unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let st = rustix::fs::statat(&fd, "t.md", rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
        let of_stat = Identity::of_stat(&st);
        assert_eq!(
            of_stat,
            Identity::of(&std::fs::symlink_metadata(&f).unwrap())
        );
        assert_eq!(of_stat.size, 10);
    }

    #[test]
    fn a_file_changed_just_now_is_not_settled() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.md");
        std::fs::write(&f, "x").unwrap();
        let id = Identity::of(&std::fs::metadata(&f).unwrap());
        assert!(!id.settled(SystemTime::now()));
        assert!(id.settled(SystemTime::now() + Duration::from_secs(3)));
    }

    #[test]
    fn a_cache_from_another_build_or_garbled_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.md");
        std::fs::write(&f, "x").unwrap();
        let id = Identity::of(&std::fs::metadata(&f).unwrap());
        let cache = dir.path().join("cache/board");
        let value = (String::from("ticket"), Some(7u32));
        save(
            &cache,
            [("t.md", id, &value), ("u.md", id, &value)].into_iter(),
        );
        let read = || stream::<(String, Option<u32>)>(cache.clone());
        let mut found = read();
        assert_eq!(found.take("t.md"), Some((id, value.clone())));
        assert_eq!(found.take("u.md"), Some((id, value.clone())));
        assert!(!found.finish());

        // A path asked past: a leftover.
        let mut found = read();
        assert_eq!(found.take("u.md"), Some((id, value.clone())));
        assert!(found.finish());

        // Another build's header: a miss, no error.
        let bytes = std::fs::read(&cache).unwrap();
        let mut older = bytes.clone();
        older[17] = b'1';
        std::fs::write(&cache, &older).unwrap();
        let mut found = read();
        assert_eq!(found.take("t.md"), None);
        assert!(found.finish());

        // Cut anywhere, or a byte changed: never a wrong value, no panic.
        for cut in 0..bytes.len() {
            std::fs::write(&cache, &bytes[..cut]).unwrap();
            let mut found = read();
            for rel in ["t.md", "u.md"] {
                let got = found.take(rel);
                assert!(
                    got.is_none() || got == Some((id, value.clone())),
                    "cut at {cut}"
                );
            }
            found.finish();
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x55;
            std::fs::write(&cache, &flipped).unwrap();
            read().finish();
        }
    }
}
