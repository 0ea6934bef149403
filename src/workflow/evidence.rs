//! The evidence store: copies of sent attachments, kept by content (their SHA-256) and checked
//! against it on every read. With SQLite they are files under the state directory, written
//! atomically (temporary file, fsync, rename); with a shared store that keeps them itself
//! ([`Store::keeps_blobs`], PostgreSQL) they are rows of the database, so that a console on
//! any host can show them and no shared file system is needed. The index (which record kept
//! which copy, until when) lives in the [`Store`]; [`EvidenceStore::purge`] removes copies whose
//! retention is over.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{hex, Result, Store, WorkflowError};

/// Content-addressed copies of attachments.
pub struct EvidenceStore {
    dir: PathBuf,
    store: Arc<dyn Store>,
}

impl EvidenceStore {
    /// Opens (creating) the directory.
    pub fn open(dir: &Path, store: Arc<dyn Store>) -> Result<EvidenceStore> {
        super::private::create_dir(dir)?;
        Ok(EvidenceStore {
            dir: dir.to_path_buf(),
            store,
        })
    }

    fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        if sha256.len() != 64
            || !sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        Some(self.dir.join(&sha256[..2]).join(sha256))
    }

    /// Keeps a copy of `data` for `days` days, referenced by `record_id` at `location`.
    /// Returns its SHA-256. A copy already kept is not written again (its retention grows).
    pub fn put(&self, data: &[u8], days: u32, record_id: i64, location: &str) -> Result<String> {
        let sha = hex(&Sha256::digest(data));
        let path = self.path_of(&sha).expect("a SHA-256 in hex");
        if self.store.keeps_blobs() {
            self.store.blob_put(&sha, data)?;
        } else if !path.exists() {
            let parent = path.parent().expect("evidence path has a parent");
            super::private::create_dir(parent)?;
            let tmp = parent.join(format!(".{sha}.{}", super::random_hex(4)));
            let written = (|| -> std::io::Result<()> {
                let mut f = super::private::file_options().create_new(true).open(&tmp)?;
                f.write_all(data)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(parent)?.sync_all()
            })();
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(WorkflowError::Io(format!("{}: {e}", path.display())));
            }
        }
        let expires = crate::timeutil::now() + i64::from(days) * 86_400;
        self.store
            .add_evidence(&sha, data.len() as u64, expires, record_id, location)?;
        Ok(sha)
    }

    /// The copy with this SHA-256, checked: `Ok(None)` when none is kept,
    /// [`WorkflowError::Tampered`] when the file no longer matches.
    pub fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let Some(path) = self.path_of(&sha256.to_ascii_lowercase()) else {
            return Ok(None);
        };
        if self.store.keeps_blobs() {
            let Some(data) = self.store.blob_get(&sha256.to_ascii_lowercase())? else {
                return Ok(None);
            };
            if hex(&Sha256::digest(&data)) != sha256.to_ascii_lowercase() {
                return Err(WorkflowError::Tampered(format!("stored copy {sha256}")));
            }
            return Ok(Some(data));
        }
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(WorkflowError::Io(format!("{}: {e}", path.display()))),
        };
        if hex(&Sha256::digest(&data)) != sha256.to_ascii_lowercase() {
            return Err(WorkflowError::Tampered(path.display().to_string()));
        }
        Ok(Some(data))
    }

    /// The copies kept for a record: (location, SHA-256).
    pub fn of_record(&self, record_id: i64) -> Result<Vec<(String, String)>> {
        self.store.evidence_of(record_id)
    }

    /// Deletes copies whose retention ended before `now`; returns how many.
    pub fn purge(&self, now: i64) -> Result<usize> {
        let due = self.store.expired_evidence(now)?;
        for sha in &due {
            if self.store.keeps_blobs() {
                self.store.blob_delete(sha)?;
            } else if let Some(p) = self.path_of(sha) {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(WorkflowError::Io(format!("{}: {e}", p.display()))),
                }
            }
            self.store.forget_evidence(sha)?;
        }
        Ok(due.len())
    }
}
