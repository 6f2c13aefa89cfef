//! `hb admin backup <dir>` and `hb admin restore <dir>`: the SQL database and the Git
//! repository, taken while the server serves, with a manifest of versions, refs, sizes and
//! SHA-256 checksums (docs/operations.md, "Backup and restore").
//!
//! Order: the database first, then the repository. Git is the record of every change (the
//! request index that makes retries replay is read from the commits' trailers), and at start
//! the server rebuilds from Git what SQL only indexes (organizations found in Git get their
//! rows, workspaces and groups are re-indexed). So a repository newer than the database is
//! reconciled, while the reverse (SQL rows of commits the bundle lacks) would not be: with
//! this order every action acknowledged before the database copy began is in both, and
//! actions acknowledged while the copy ran are in Git at least.
//!
//! Nothing is decrypted or re-encoded: password and token hashes, the issuer's signing keys
//! and every other row are copied as they are at rest, and the backup folder and its files
//! are readable by their owner only.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::gitops::backup::{BundleError, BundledRefs, bundle, unbundle};
use crate::settings::Settings;
use crate::store::backup::{Database, DatabaseCopyError, dump, load};

/// The manifest's format; a restore refuses others.
pub const FORMAT: u32 = 1;
/// The manifest's file name in a backup folder.
pub const MANIFEST: &str = "manifest.json";
const BUNDLE: &str = "repository.bundle";

/// What a backup holds, written last as `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The `hb` that took it: version and commit.
    pub hexabase_version: String,
    /// The commit `hb` was built from.
    pub hexabase_commit: String,
    /// The compiler's version (the `Hexabase-Compiler` trailer of new commits).
    pub compiler_version: String,
    /// When the database copy began (Unix seconds): every action acknowledged before it is in
    /// the backup.
    pub taken_at: i64,
    /// The database copy.
    pub database: Part,
    /// The repository bundle.
    pub repository: Part,
    /// The branch `HEAD` names, and the commit of every ref in the bundle.
    pub refs: BundledRefs,
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// `sqlite`, `postgres` or `git-bundle`.
    pub kind: String,
    /// Its name in the backup folder.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// A backup could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The backup folder exists and is not empty.
    #[error("the backup folder {0} exists and is not empty")]
    NotEmpty(PathBuf),
    /// The database copy failed.
    #[error("copying the database")]
    Database(#[source] DatabaseCopyError),
    /// The repository bundle failed.
    #[error("bundling the repository")]
    Repository(#[source] BundleError),
    /// A file of the backup could not be written or read.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A backup could not be restored; nothing was changed when it fails before writing.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The manifest is missing or unreadable.
    #[error("{path}: not a Hexabase backup manifest")]
    Manifest {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The manifest has another format.
    #[error("manifest.json format {0} is not {FORMAT}: restore it with the hb that took it")]
    Format(u32),
    /// The backup's database is of another kind than the configured one.
    #[error("the backup holds a {backup} database but the settings name a {settings} one")]
    Kind {
        /// The backup's.
        backup: String,
        /// The settings'.
        settings: &'static str,
    },
    /// A file's size or checksum is not the manifest's.
    #[error("{file}: {what} is {found}, the manifest says {expected}")]
    Checksum {
        /// The file.
        file: String,
        /// `size` or `sha256`.
        what: &'static str,
        /// The manifest's.
        expected: String,
        /// The file's.
        found: String,
    },
    /// A file name in the manifest is not a plain name.
    #[error("manifest.json names {0:?}, which is not a file name of the backup folder")]
    BadName(String),
    /// The database could not be restored.
    #[error("restoring the database")]
    Database(#[source] DatabaseCopyError),
    /// The repository could not be restored.
    #[error("restoring the repository")]
    Repository(#[source] BundleError),
    /// The repository already exists: nothing was restored.
    #[error("the repository {0} exists and is not empty: restore only into a fresh data folder")]
    RepositoryExists(PathBuf),
    /// A file could not be read.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Writes a backup of the server `settings` name into `dir` (created; it must not exist or
/// be empty): the database, then the repository, then the manifest.
pub async fn backup(settings: &Settings, dir: &Path) -> Result<Manifest, BackupError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { path, source }
    };
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .map_err(io(dir))?
    {
        return Err(BackupError::NotEmpty(dir.to_owned()));
    }
    create_private_dir(dir).map_err(io(dir))?;
    let database = Database::from_url(settings.database_url().expose());
    let db_file = database_file(&database);
    let taken_at = now();
    dump(&database, &dir.join(db_file))
        .await
        .map_err(BackupError::Database)?;
    let repo = settings.git_repo();
    let bundle_path = dir.join(BUNDLE);
    let refs = tokio::task::spawn_blocking(move || bundle(&repo, &bundle_path))
        .await
        .map_err(|e| BackupError::Io {
            path: dir.join(BUNDLE),
            source: std::io::Error::other(e),
        })?
        .map_err(BackupError::Repository)?;
    let manifest = Manifest {
        format: FORMAT,
        hexabase_version: crate::VERSION.to_owned(),
        hexabase_commit: crate::COMMIT.to_owned(),
        compiler_version: compiler::VERSION.to_owned(),
        taken_at,
        database: part(dir, database.kind(), db_file).map_err(io(&dir.join(db_file)))?,
        repository: part(dir, "git-bundle", BUNDLE).map_err(io(&dir.join(BUNDLE)))?,
        refs,
    };
    for file in [db_file, BUNDLE] {
        set_private(&dir.join(file)).map_err(io(&dir.join(file)))?;
    }
    let path = dir.join(MANIFEST);
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| BackupError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    write_private(&path, &text).map_err(io(&path))?;
    Ok(manifest)
}

/// Restores the backup in `dir` into the fresh database and repository `settings` name:
/// checks every size and checksum first, then the database, then the repository.
pub async fn restore(settings: &Settings, dir: &Path) -> Result<Manifest, RestoreError> {
    let manifest = read_manifest(dir)?;
    let database = Database::from_url(settings.database_url().expose());
    if manifest.database.kind != database.kind() {
        return Err(RestoreError::Kind {
            backup: manifest.database.kind.clone(),
            settings: database.kind(),
        });
    }
    for part in [&manifest.database, &manifest.repository] {
        check(dir, part)?;
    }
    let repo = settings.git_repo();
    if repo.exists()
        && std::fs::read_dir(&repo)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(RestoreError::RepositoryExists(repo));
    }
    load(&database, &dir.join(&manifest.database.file))
        .await
        .map_err(RestoreError::Database)?;
    if let Database::Sqlite(path) = &database {
        set_private(path).map_err(|source| RestoreError::Io {
            path: path.clone(),
            source,
        })?;
    }
    let bundle_path = dir.join(&manifest.repository.file);
    let refs = manifest.refs.clone();
    tokio::task::spawn_blocking(move || unbundle(&bundle_path, &repo, &refs))
        .await
        .map_err(|e| RestoreError::Io {
            path: dir.join(&manifest.repository.file),
            source: std::io::Error::other(e),
        })?
        .map_err(RestoreError::Repository)?;
    Ok(manifest)
}

/// Reads and checks `dir/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, RestoreError> {
    let path = dir.join(MANIFEST);
    let bad = |source: Box<dyn std::error::Error + Send + Sync>| RestoreError::Manifest {
        path: path.clone(),
        source,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(Box::new(e)))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| bad(Box::new(e)))?;
    if manifest.format != FORMAT {
        return Err(RestoreError::Format(manifest.format));
    }
    for part in [&manifest.database, &manifest.repository] {
        let plain = Path::new(&part.file).file_name().and_then(|n| n.to_str());
        if plain != Some(part.file.as_str()) {
            return Err(RestoreError::BadName(part.file.clone()));
        }
    }
    Ok(manifest)
}

/// The file's size and SHA-256 are the manifest's.
fn check(dir: &Path, part: &Part) -> Result<(), RestoreError> {
    let path = dir.join(&part.file);
    let (bytes, sha256) = digest(&path).map_err(|source| RestoreError::Io {
        path: path.clone(),
        source,
    })?;
    let mismatch = |what, expected: String, found: String| RestoreError::Checksum {
        file: part.file.clone(),
        what,
        expected,
        found,
    };
    if bytes != part.bytes {
        return Err(mismatch("size", part.bytes.to_string(), bytes.to_string()));
    }
    if sha256 != part.sha256 {
        return Err(mismatch("sha256", part.sha256.clone(), sha256));
    }
    Ok(())
}

fn database_file(database: &Database) -> &'static str {
    match database {
        Database::Sqlite(_) => "database.sqlite",
        Database::Postgres(_) => "database.pgdump",
    }
}

fn part(dir: &Path, kind: &str, file: &str) -> std::io::Result<Part> {
    let (bytes, sha256) = digest(&dir.join(file))?;
    Ok(Part {
        kind: kind.to_owned(),
        file: file.to_owned(),
        bytes,
        sha256,
    })
}

/// A file's size and SHA-256 (hex).
fn digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    let mut bytes = 0;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    set_mode(dir, 0o700)
}

#[cfg(unix)]
fn set_private(path: &Path) -> std::io::Result<()> {
    set_mode(path, 0o600)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
