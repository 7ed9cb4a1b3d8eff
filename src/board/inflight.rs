//! The plan paths a board change has written but not yet published. A
//! change that fails is put back at once; when even that fails (a full
//! disk cannot take the old file back), the next transaction finds the
//! paths here and puts them back before it adopts anything, so orch's
//! half-made change is never committed as a person's edit.
//!
//! The file is reserved at full size once and rewritten in place, like
//! the pending results: on a disk that is full it still takes the list.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const RESERVED: usize = 64 * 1024;

pub struct Inflight {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Inflight {
    /// Open (reserving on first use) the record at `path`. Without one
    /// (it cannot be made), changes go unrecorded, as before.
    pub fn open(path: &Path) -> Inflight {
        let file = (|| -> std::io::Result<std::fs::File> {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            if f.metadata()?.len() < RESERVED as u64 {
                f.seek(SeekFrom::End(0))?;
                let have = f.metadata()?.len() as usize;
                f.write_all(&vec![b'\n'; RESERVED - have])?;
            }
            Ok(f)
        })()
        .ok();
        Inflight {
            path: path.to_path_buf(),
            file,
        }
    }

    /// The paths a change that did not finish left, if any.
    pub fn left(&self) -> Vec<String> {
        let Ok(bytes) = std::fs::read(&self.path) else {
            return Vec::new();
        };
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Record `paths` (all the change has written so far) before the next
    /// write. A list too long for the room is cut: the rest is adopted.
    pub fn set(&mut self, paths: &[String]) {
        let Some(f) = self.file.as_mut() else { return };
        let mut text = String::new();
        for p in paths {
            if text.len() + p.len() + 1 > RESERVED {
                break;
            }
            text.push_str(p);
            text.push('\n');
        }
        let mut bytes = text.into_bytes();
        bytes.resize(RESERVED, b'\n');
        // Best effort: a record that cannot be written leaves the old
        // behaviour (adoption), never a failed change.
        // Synced: the record must be on the disk before the write it guards.
        let _ = f
            .seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&bytes))
            .and_then(|()| f.sync_data());
    }

    pub fn clear(&mut self) {
        self.set(&[]);
    }
}
