//! What orch last published on orch/plan, kept in the git directory
//! (`<git dir>/orch/plan-published`), where neither `git clean` nor an agent
//! in the sandbox can reach it. With it, a deleted or rewound orch/plan is
//! put back: the audit history can never be lost by moving a ref.

use std::path::PathBuf;

use crate::git::{self, MainRepo, Oid};

fn path(main: &MainRepo) -> PathBuf {
    main.git_dir.join("orch").join("plan-published")
}

/// The last board commit orch published here, if it is still in the
/// repository.
pub fn last_published(main: &MainRepo) -> Option<Oid> {
    let text = std::fs::read_to_string(path(main)).ok()?;
    let oid = Oid::from_str(text.trim()).ok()?;
    main.repo.find_commit(oid).ok().map(|c| c.id())
}

/// Remember `oid` as the board orch published. Best effort: without the
/// record orch only loses the means to restore a deleted orch/plan.
pub fn record(main: &MainRepo, oid: Oid) {
    let p = path(main);
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = super::write_atomic(&p, format!("{oid}\n").as_bytes());
}

fn verified_path(main: &MainRepo) -> PathBuf {
    main.git_dir.join("orch").join("plan-verified")
}

/// The last board commit of the remote whose signatures were checked (or
/// that needed none): the next check starts from there.
pub fn last_verified(main: &MainRepo) -> Option<Oid> {
    let text = std::fs::read_to_string(verified_path(main)).ok()?;
    let oid = Oid::from_str(text.trim()).ok()?;
    main.repo.find_commit(oid).ok().map(|c| c.id())
}

pub fn record_verified(main: &MainRepo, oid: Oid) {
    let _ = super::write_atomic(&verified_path(main), format!("{oid}\n").as_bytes());
}

/// What [`guard`] found and did.
#[derive(Debug, PartialEq, Eq)]
pub enum Guarded {
    /// orch/plan is where orch left it, or ahead of it (a person's commits).
    Intact,
    /// orch/plan was gone: it points at orch's last board again.
    Restored { to: Oid },
    /// orch/plan was moved to a history without orch's last board: it is
    /// back there, and what it pointed at is kept on `kept`.
    Rewound { from: Oid, to: Oid, kept: String },
}

/// Put orch/plan back where orch last published it if it was deleted, or
/// moved to a history that lacks that commit (a reset, a rewrite). A tip
/// ahead of it is taken as it is: commits made on the board by hand. Call
/// under the board lock.
pub fn guard(main: &MainRepo) -> crate::Result<Guarded> {
    let tip = main.ref_target(git::PLAN_REF);
    let Some(last) = last_published(main) else {
        if let Some(tip) = tip {
            record(main, tip);
        }
        return Ok(Guarded::Intact);
    };
    match tip {
        None => {
            main.set_ref(git::PLAN_REF, last, "orch: restore orch/plan")?;
            Ok(Guarded::Restored { to: last })
        }
        Some(tip) if main.contains(tip, last) => {
            if tip != last {
                record(main, tip);
            }
            Ok(Guarded::Intact)
        }
        Some(tip) => {
            let kept = format!("refs/orch/kept/plan/{}", jiff::Timestamp::now().as_second());
            let kept = main.keep(&kept, tip, "orch: orch/plan as it was found, rewound")?;
            main.set_ref(git::PLAN_REF, last, "orch: restore orch/plan")?;
            Ok(Guarded::Rewound {
                from: tip,
                to: last,
                kept,
            })
        }
    }
}
