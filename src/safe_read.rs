//! Reading files orch does not write itself: the plan worktree (anyone
//! with push access to orch/plan shapes it), an agent's result file, a log.
//!
//! One rule for all of them: only a regular file is read, never through a
//! symbolic link (a link could lead out of the plan, to a secret or to
//! `/dev/zero`), never a fifo or a device (opening or reading one can block
//! forever, while orch holds the board lock), and never more than a cap.
//! The open is `O_NOFOLLOW | O_NONBLOCK`, then `fstat` decides, so nothing
//! can be swapped in between the look and the read.
//!
//! Also here: cutting text to a cap, saying so in the text.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Why a file was not read.
#[derive(Debug)]
pub enum Refused {
    /// Something else than a regular file is there, or on the way there.
    NotRegular {
        /// "a symbolic link", "a fifo", ...
        kind: &'static str,
        /// The directory on the way that is not a plain directory, when it
        /// is not the file itself.
        via: Option<String>,
    },
    /// Larger than the cap for this file.
    TooLarge {
        cap: u64,
    },
    Io(std::io::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotRegular { kind, via: None } => write!(
                f,
                "it is {kind}, not a regular file (orch reads only regular files here and follows no symbolic link)"
            ),
            Refused::NotRegular {
                kind,
                via: Some(dir),
            } => write!(
                f,
                "`{dir}` on its path is {kind}, not a directory (orch follows no symbolic link here)"
            ),
            Refused::TooLarge { cap } => {
                write!(
                    f,
                    "it is larger than {}, the limit for this file",
                    size(*cap)
                )
            }
            Refused::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Refused {}

const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// Open `path` if it is a regular file; `Ok(None)` when nothing is there.
/// Only its last component is checked: the directories above it are the
/// caller's.
pub fn open(path: &Path) -> Result<Option<File>, Refused> {
    let fd = rustix::fs::openat(rustix::fs::CWD, path, FILE_FLAGS, Mode::empty());
    checked(fd)
}

/// Open `rel` under `root` if it and every directory between are what
/// they seem: no component may be a symbolic link. `Ok(None)` when
/// nothing is there. `rel` must be relative and plain (no `..`).
pub fn open_in(root: &Path, rel: &Path) -> Result<Option<File>, Refused> {
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(p) => Ok(p),
            _ => Err(Refused::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{}` is not a plain relative path", rel.display()),
            ))),
        })
        .collect::<Result<_, _>>()?;
    let Some((file, dirs)) = parts.split_last() else {
        return Err(Refused::NotRegular {
            kind: "a directory",
            via: None,
        });
    };
    // The root is the caller's to trust (it may be reached through links);
    // everything below it is not.
    let root_flags = DIR_FLAGS.difference(OFlags::NOFOLLOW);
    let mut dir = match rustix::fs::openat(rustix::fs::CWD, root, root_flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(Refused::Io(e.into())),
    };
    let mut walked = std::path::PathBuf::new();
    for d in dirs {
        walked.push(d);
        dir = match rustix::fs::openat(&dir, *d, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                return Err(Refused::NotRegular {
                    kind: if e == Errno::LOOP {
                        "a symbolic link"
                    } else {
                        "a file"
                    },
                    via: Some(walked.display().to_string()),
                });
            }
            Err(e) => return Err(Refused::Io(e.into())),
        };
    }
    let fd = rustix::fs::openat(&dir, *file, FILE_FLAGS, Mode::empty());
    checked(fd)
}

fn checked(fd: rustix::io::Result<OwnedFd>) -> Result<Option<File>, Refused> {
    let file = match fd {
        Ok(fd) => File::from(fd),
        Err(Errno::NOENT) => return Ok(None),
        // O_NOFOLLOW on a symbolic link.
        Err(Errno::LOOP) => {
            return Err(Refused::NotRegular {
                kind: "a symbolic link",
                via: None,
            });
        }
        Err(e) => return Err(Refused::Io(e.into())),
    };
    let kind = file.metadata().map_err(Refused::Io)?.file_type();
    if kind.is_file() {
        return Ok(Some(file));
    }
    use std::os::unix::fs::FileTypeExt;
    let kind = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a fifo"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "something else"
    };
    Err(Refused::NotRegular { kind, via: None })
}

/// The whole of an opened file, if it is at most `cap` bytes.
fn whole(file: Option<File>, cap: u64) -> Result<Option<Vec<u8>>, Refused> {
    let Some(file) = file else {
        return Ok(None);
    };
    let h = head_of(file, cap)?;
    if h.more > 0 {
        return Err(Refused::TooLarge { cap });
    }
    Ok(Some(h.bytes))
}

/// The regular file at `path` (its last component not a link), whole, if
/// it is at most `cap` bytes.
pub fn regular_file(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, Refused> {
    whole(open(path)?, cap)
}

/// The regular file `rel` under `root` (no component a link), whole, if it
/// is at most `cap` bytes.
pub fn regular_file_in(root: &Path, rel: &Path, cap: u64) -> Result<Option<Vec<u8>>, Refused> {
    whole(open_in(root, rel)?, cap)
}

/// The start of a file and how much of it was left unread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub bytes: Vec<u8>,
    /// Bytes after `bytes` (0 when the file was read whole).
    pub more: u64,
}

/// At most the first `cap` bytes of the regular file at `path`.
pub fn head(path: &Path, cap: u64) -> Result<Option<Head>, Refused> {
    match open(path)? {
        Some(file) => head_of(file, cap).map(Some),
        None => Ok(None),
    }
}

fn head_of(file: File, cap: u64) -> Result<Head, Refused> {
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(size.min(cap.saturating_add(1)) as usize);
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Refused::Io)?;
    let mut more = 0;
    if bytes.len() as u64 > cap {
        bytes.truncate(cap as usize);
        // The file may have grown since fstat; at least one byte is left.
        more = size.saturating_sub(cap).max(1);
    }
    Ok(Head { bytes, more })
}

/// A size for people: `512 bytes`, `64.0 kB`, `99.9 MB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// What a cut text ends with: `… [cut: 99.9 MB more]`.
pub fn cut_note(more: u64) -> String {
    format!("… [cut: {} more]", size(more))
}

/// `text` cut to at most `max` bytes of its own (on a character boundary),
/// followed by [`cut_note`] when it was cut. `already_cut` is what was
/// left out before (a file read only in part), added to the note.
pub fn cut(text: &str, max: usize, already_cut: u64) -> String {
    if text.len() <= max && already_cut == 0 {
        return text.to_string();
    }
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let more = (text.len() - end) as u64 + already_cut;
    format!("{}{}", &text[..end], cut_note(more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_regular_files_and_only_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), "12345").unwrap();
        std::fs::write(root.join("secret"), "top secret").unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("d/link")).unwrap();
        std::os::unix::fs::symlink(root.join("d"), root.join("dlink")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("zero")).unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(root.join("fifo"))
                .status()
                .unwrap()
                .success()
        );

        assert_eq!(
            regular_file(&root.join("d/f"), 5).unwrap(),
            Some(b"12345".to_vec())
        );
        assert!(matches!(
            regular_file(&root.join("d/f"), 4),
            Err(Refused::TooLarge { cap: 4 })
        ));
        assert_eq!(regular_file(&root.join("missing"), 4).unwrap(), None);
        for (path, kind) in [
            ("d/link", "a symbolic link"),
            ("zero", "a symbolic link"),
            ("fifo", "a fifo"),
            ("d", "a directory"),
        ] {
            match regular_file(&root.join(path), 100) {
                Err(Refused::NotRegular { kind: k, .. }) => assert_eq!(k, kind, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
        assert_eq!(
            regular_file_in(root, Path::new("d/f"), 10).unwrap(),
            Some(b"12345".to_vec())
        );
        match regular_file_in(root, Path::new("dlink/f"), 10) {
            Err(e @ Refused::NotRegular { .. }) => {
                assert!(e.to_string().contains("`dlink`"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            regular_file_in(root, Path::new("nothing/f"), 10).unwrap(),
            None
        );
        assert!(regular_file_in(root, Path::new("../x"), 10).is_err());

        let h = head(&root.join("d/f"), 2).unwrap().unwrap();
        assert_eq!(
            h,
            Head {
                bytes: b"12".to_vec(),
                more: 3
            }
        );
    }

    #[test]
    fn cuts_say_how_much_is_gone() {
        assert_eq!(cut("abc", 3, 0), "abc");
        assert_eq!(cut("héllo", 2, 0), "h… [cut: 5 bytes more]");
        assert_eq!(cut("ab", 5, 99_934_464), "ab… [cut: 99.9 MB more]");
        assert_eq!(size(65_536), "65.5 kB");
        assert_eq!(size(999_999), "1.0 MB");
    }
}
