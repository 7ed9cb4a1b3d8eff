//! Runs a tick could not settle, counted per ticket. A failure that
//! concerns one ticket (something in the way of its file, its local state
//! unusable) would otherwise be met again by every tick, for ever: after
//! [`TRIES`] the ticket goes to blocked with the error, for a person.
//!
//! A failure of the whole disk is not counted: when space returns, the
//! run settles as it would have.

use std::path::PathBuf;

use rustix::io::Errno;

use crate::board::Layout;

/// Failed settles of one run before its ticket is blocked.
pub const TRIES: u32 = 3;

fn path(layout: &Layout, id: &str) -> PathBuf {
    // Not under the ticket's state directory: that may be what is broken.
    layout.local.join("unsettled").join(id)
}

/// Count one more failed settle of `run`; the count so far. Without room
/// to count (a broken local state), the ticket is never blocked for it.
pub fn count(layout: &Layout, id: &str, run: &str) -> u32 {
    let p = path(layout, id);
    let before = std::fs::read_to_string(&p)
        .ok()
        .and_then(|text| {
            let (r, n) = text.trim().rsplit_once(' ')?;
            (r == run).then(|| n.parse::<u32>().ok()).flatten()
        })
        .unwrap_or(0);
    let now = before.saturating_add(1);
    match crate::board::write_atomic(&p, format!("{run} {now}\n").as_bytes()) {
        Ok(()) => now,
        Err(_) => 0,
    }
}

pub fn forget(layout: &Layout, id: &str) {
    let _ = std::fs::remove_file(path(layout, id));
}

/// Whether `e` is the disk's (full, read-only, over quota) rather than
/// the ticket's: every ticket would meet it, and it passes.
pub fn is_the_disks(e: &crate::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && [Errno::NOSPC, Errno::ROFS, Errno::DQUOT]
                .iter()
                .any(|n| io.raw_os_error() == Some(n.raw_os_error()))
        {
            return true;
        }
        source = err.source();
    }
    // A remote that could not be reached is no fault of the ticket's either.
    if crate::remote::is_unreachable(e) {
        return true;
    }
    // libgit2 reports the same as text.
    let text = crate::error::render_chain(e);
    [
        "No space left on device",
        "Read-only file system",
        "Disk quota exceeded",
    ]
    .iter()
    .any(|m| text.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_run_and_starts_again_for_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path(), &dir.path().join(".git"));
        assert_eq!(count(&layout, "t", "r1"), 1);
        assert_eq!(count(&layout, "t", "r1"), 2);
        assert_eq!(count(&layout, "t", "r2"), 1, "another run starts at one");
        forget(&layout, "t");
        assert_eq!(count(&layout, "t", "r2"), 1);
    }

    #[test]
    fn a_full_disk_is_the_disks_and_a_directory_in_the_way_is_not() {
        let full = crate::Error::io(
            "cannot write",
            "x",
            std::io::Error::from_raw_os_error(Errno::NOSPC.raw_os_error()),
        );
        assert!(is_the_disks(&full));
        let dir = crate::Error::io(
            "cannot move",
            "x",
            std::io::Error::from_raw_os_error(Errno::ISDIR.raw_os_error()),
        );
        assert!(!is_the_disks(&dir));
        assert!(is_the_disks(&crate::Error::other(
            "failed to write object: No space left on device"
        )));
    }
}
