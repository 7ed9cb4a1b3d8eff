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

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
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
    pub fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
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

/// What the cache file holds, in the order it was written (the board's
/// listing order, so a lookup in the same order rarely has to search).
pub struct Entries<T> {
    records: Chunked<Option<(String, Identity, T)>>,
    /// The next record a lookup in listing order expects.
    cursor: usize,
    /// Where each path is, built only if lookups leave the order.
    index: Option<HashMap<String, usize>>,
    /// Records not taken, or that could not be read.
    leftovers: usize,
}

impl<T> Entries<T> {
    pub fn empty() -> Entries<T> {
        Entries {
            records: Chunked::default(),
            cursor: 0,
            index: None,
            leftovers: 0,
        }
    }

    /// The parse of `rel` if the cache has it for the identity `id`.
    pub fn take(&mut self, rel: &str, id: Option<Identity>) -> Option<T> {
        let at = match self.records.get(self.cursor) {
            Some(Some((r, _, _))) if r == rel => Some(self.cursor),
            _ => {
                let records = &self.records;
                self.index
                    .get_or_insert_with(|| {
                        records
                            .iter()
                            .enumerate()
                            .filter_map(|(i, r)| Some((r.as_ref()?.0.clone(), i)))
                            .collect()
                    })
                    .get(rel)
                    .copied()
            }
        }?;
        self.cursor = at + 1;
        let (_, cached, value) = self.records.get_mut(at)?.take()?;
        self.leftovers -= 1;
        if Some(cached) == id {
            Some(value)
        } else {
            // A record of another version of the file: the cache is out of
            // date, and is written again.
            self.leftovers += 1;
            None
        }
    }

    /// Whether the file holds records nobody took (for files gone or
    /// changed) or could not be read.
    pub fn has_leftovers(&self) -> bool {
        self.leftovers > 0
    }
}

/// A vector in chunks of a fixed size: a cache of 100,000 records grows
/// without the doubling that would, at its last step, hold twice the
/// records at once.
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
}

const CHUNK: usize = 1024;

impl<T> Default for Chunked<T> {
    fn default() -> Chunked<T> {
        Chunked { chunks: Vec::new() }
    }
}

impl<T> Chunked<T> {
    fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
    }

    fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

/// Read the cache file. Anything wrong with it makes it (or the rest of
/// it) a miss, never an error.
pub fn read<T: DeserializeOwned>(path: &Path) -> Entries<T> {
    read_reduced(path, |_, value| value)
}

/// [`read`], each value passed through `reduce` as it is decoded: what a
/// caller would throw away is never held for the whole file.
pub fn read_reduced<T: DeserializeOwned>(
    path: &Path,
    mut reduce: impl FnMut(&str, T) -> T,
) -> Entries<T> {
    let mut entries = Entries::empty();
    let Ok(file) = std::fs::File::open(path) else {
        return entries;
    };
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut first = String::new();
    match reader.read_line(&mut first) {
        Ok(0) => return entries,
        Ok(_) if first.trim_end_matches('\n') == header() => {}
        _ => {
            entries.leftovers += 1;
            return entries;
        }
    }
    let mut buf = Vec::new();
    loop {
        match read_record(&mut reader, &mut buf) {
            Ok(Some((rel, id, value))) => {
                let value = reduce(&rel, value);
                entries.records.push(Some((rel, id, value)));
                entries.leftovers += 1;
            }
            Ok(None) => return entries,
            // A record cut short or garbled: the rest cannot be trusted
            // to start where it seems to.
            Err(()) => {
                entries.leftovers += 1;
                return entries;
            }
        }
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

/// One record of a cache being written.
pub enum Record<'a, T> {
    /// A parse to write.
    New(&'a T),
    /// The record the cache file already holds for this path and identity,
    /// copied as it is: a reader that reduced what it decoded (see
    /// [`read_reduced`]) has no whole value to write. Left out if the old
    /// file no longer holds it.
    Kept,
}

/// Write the cache anew with `entries` (path, identity, record), in the
/// order the board lists its files. Failures are ignored: the cache only
/// saves time.
pub fn save<'a, T: Serialize + 'a>(
    path: &Path,
    entries: impl Iterator<Item = (&'a str, Identity, Record<'a, T>)>,
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
        let mut old = OldRecords::open(path);
        let mut payload = Vec::new();
        for (rel, id, record) in entries {
            match record {
                Record::New(value) => {
                    payload.clear();
                    payload = postcard::to_extend(value, payload).map_err(std::io::Error::other)?;
                }
                Record::Kept => {
                    if !old.find(rel, id, &mut payload) {
                        continue;
                    }
                }
            }
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

/// The records of the cache file being replaced, read once, in order.
struct OldRecords {
    reader: Option<BufReader<std::fs::File>>,
    /// The record read but not yet asked for, its payload in `buf`.
    ahead: Option<(String, Identity)>,
    buf: Vec<u8>,
}

impl OldRecords {
    fn open(path: &Path) -> OldRecords {
        let reader = std::fs::File::open(path).ok().and_then(|file| {
            let mut reader = BufReader::with_capacity(1 << 16, file);
            let mut first = String::new();
            reader.read_line(&mut first).ok()?;
            (first.trim_end_matches('\n') == header()).then_some(reader)
        });
        OldRecords {
            reader,
            ahead: None,
            buf: Vec::new(),
        }
    }

    /// Put the payload of the old record for `rel` at `id` into `payload`.
    /// Both files are in listing order, so records before `rel` are
    /// passed over for good, and one after it waits for a later call.
    fn find(&mut self, rel: &str, id: Identity, payload: &mut Vec<u8>) -> bool {
        loop {
            if self.ahead.is_none() {
                let Some(reader) = self.reader.as_mut() else {
                    return false;
                };
                match read_raw(reader, &mut self.buf) {
                    Ok(Some(record)) => self.ahead = Some(record),
                    _ => {
                        self.reader = None;
                        return false;
                    }
                }
            }
            let Some((at, kept)) = &self.ahead else {
                return false;
            };
            match at.as_str().cmp(rel) {
                std::cmp::Ordering::Less => self.ahead = None,
                std::cmp::Ordering::Greater => return false,
                std::cmp::Ordering::Equal => {
                    let same = *kept == id;
                    if same {
                        payload.clear();
                        payload.extend_from_slice(&self.buf);
                    }
                    self.ahead = None;
                    return same;
                }
            }
        }
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
            [
                ("t.md", id, Record::New(&value)),
                ("u.md", id, Record::New(&value)),
            ]
            .into_iter(),
        );
        let mut found = read::<(String, Option<u32>)>(&cache);
        assert_eq!(found.take("t.md", Some(id)), Some(value.clone()));
        assert_eq!(found.take("u.md", Some(id)), Some(value.clone()));
        assert!(!found.has_leftovers());

        // Another identity: a miss, and the entry is a leftover.
        let mut other = id;
        other.ctime.1 += 1;
        let mut found = read::<(String, Option<u32>)>(&cache);
        assert_eq!(found.take("t.md", Some(other)), None);
        assert!(found.has_leftovers());

        // Another build's header: a miss, no error.
        let bytes = std::fs::read(&cache).unwrap();
        let mut older = bytes.clone();
        older[17] = b'1';
        std::fs::write(&cache, &older).unwrap();
        let mut found = read::<(String, Option<u32>)>(&cache);
        assert_eq!(found.take("t.md", Some(id)), None);
        assert!(found.has_leftovers());

        // Cut anywhere, or a byte changed: never a wrong value, no panic.
        for cut in 0..bytes.len() {
            std::fs::write(&cache, &bytes[..cut]).unwrap();
            let mut found = read::<(String, Option<u32>)>(&cache);
            for rel in ["t.md", "u.md"] {
                let got = found.take(rel, Some(id));
                assert!(got.is_none() || got == Some(value.clone()), "cut at {cut}");
            }
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x55;
            std::fs::write(&cache, &flipped).unwrap();
            let _ = read::<(String, Option<u32>)>(&cache);
        }
    }

    #[test]
    fn a_kept_record_is_copied_from_the_old_file_only_at_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.md");
        std::fs::write(&f, "x").unwrap();
        let id = Identity::of(&std::fs::metadata(&f).unwrap());
        let mut other = id;
        other.mtime.1 += 1;
        let cache = dir.path().join("cache/board");
        let (a, b, c) = (1u32, 2u32, 3u32);
        save(
            &cache,
            [
                ("a.md", id, Record::New(&a)),
                ("b.md", id, Record::New(&b)),
                ("c.md", id, Record::New(&c)),
            ]
            .into_iter(),
        );
        // a is gone, b is kept, c changed and is kept (so left out), d is
        // new; the reader reduced what it decoded.
        let d = 4u32;
        let mut seen = Vec::new();
        let _ = read_reduced::<u32>(&cache, |rel, v| {
            seen.push(rel.to_string());
            v * 100
        });
        assert_eq!(seen, ["a.md", "b.md", "c.md"]);
        save(
            &cache,
            [
                ("b.md", id, Record::Kept),
                ("c.md", other, Record::Kept),
                ("d.md", id, Record::New(&d)),
            ]
            .into_iter(),
        );
        let mut found = read::<u32>(&cache);
        assert_eq!(found.take("b.md", Some(id)), Some(2));
        assert_eq!(found.take("c.md", Some(other)), None);
        assert_eq!(found.take("d.md", Some(id)), Some(4));
        assert!(!found.has_leftovers(), "c was left out, not written");
    }
}
