//! The state directory is private to the service's user: it holds raw attachments (evidence
//! copies), held messages, the approval key and the audit database. Directories are made 0700
//! and files 0600 whatever the process's umask, and [`secure_tree`] checks an existing state
//! directory at start, takes group and other access away from anything that has it, and says
//! what it changed so that the caller can warn.
//!
//! Symbolic links are not followed (an attacker who can plant one in the state directory
//! already owns it); a link is left as it is.

use std::fs::OpenOptions;
use std::path::Path;

use super::{Result, WorkflowError};

fn io(path: &Path, e: std::io::Error) -> WorkflowError {
    WorkflowError::Io(format!("{}: {e}", path.display()))
}

/// Creates `dir` and its missing parents; the ones made here get mode 0700.
pub fn create_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| io(dir, e))
}

/// Open options for a new file of the state directory: mode 0600 (the umask can only take
/// bits away from it).
pub fn file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Makes sure `path` exists as a file with mode 0600 before another library (SQLite) creates
/// it with its own default (0644): SQLite gives the `-wal` and `-shm` files the database
/// file's mode.
pub fn precreate_file(path: &Path) -> Result<()> {
    match file_options().create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(path, e)),
    }
}

/// Writes a new file with mode 0600 and syncs it (refused when it exists).
pub fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut f = file_options()
        .create_new(true)
        .open(path)
        .map_err(|e| io(path, e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(path, e))
}

/// Walks `dir` (without following symbolic links) and removes group and other permission bits
/// from every directory and file that has them, the directory itself included. Returns the
/// changes made, one line each (`path: 0644 -> 0600`); an unreadable entry is an error.
pub fn secure_tree(dir: &Path) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    #[cfg(unix)]
    {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(p) = stack.pop() {
            let meta = std::fs::symlink_metadata(&p).map_err(|e| io(&p, e))?;
            if meta.file_type().is_symlink() {
                continue;
            }
            fix_mode(&p, &meta, &mut changed)?;
            if meta.is_dir() {
                for entry in std::fs::read_dir(&p).map_err(|e| io(&p, e))? {
                    stack.push(entry.map_err(|e| io(&p, e))?.path());
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(changed)
}

#[cfg(unix)]
fn fix_mode(p: &Path, meta: &std::fs::Metadata, changed: &mut Vec<String>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let new = mode & !0o077;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(new)).map_err(|e| io(p, e))?;
    changed.push(format!("{}: {:04o} -> {:04o}", p.display(), mode, new));
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_things_are_private_and_old_ones_are_fixed() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("state/evidence/ab");
        create_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&t.path().join("state")), 0o700);
        let f = t.path().join("state/audit.db");
        precreate_file(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        // What an older version (or a careless umask) left behind.
        let old = t.path().join("state/evidence/ab/copy");
        std::fs::write(&old, b"raw attachment").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let fixed = secure_tree(&t.path().join("state")).unwrap();
        assert_eq!(fixed.len(), 2, "{fixed:?}");
        assert_eq!(mode(&old), 0o600);
        assert_eq!(mode(&d), 0o700);
        assert!(secure_tree(&t.path().join("state")).unwrap().is_empty());
    }
}
