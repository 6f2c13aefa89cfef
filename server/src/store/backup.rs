//! Copies of the database for `hb admin backup` and `hb admin restore`, taken while the
//! server serves: SQLite with `VACUUM INTO` (one read transaction: a consistent copy under
//! concurrent writers), PostgreSQL with `pg_dump` (one repeatable-read snapshot) and
//! `pg_restore`. Rows are copied as they are: password hashes, token hashes and the issuer's
//! signing keys stay exactly as protected as they are at rest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// Which kind of database a URL names, as the server reads it (see [`super::Store::connect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Database {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else a SQLite path.
    pub fn from_url(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::Postgres(url.to_owned())
        } else {
            Self::Sqlite(PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url)))
        }
    }

    /// `sqlite` or `postgres`, as the backup's manifest says it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A copy of the database could not be taken or put back.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseCopyError {
    /// The database did not answer or refused a statement.
    #[error("the database")]
    Sql(#[from] sqlx::Error),
    /// `pg_dump` or `pg_restore` could not run.
    #[error("could not run {tool} (is the PostgreSQL client installed?)")]
    Spawn {
        /// The tool.
        tool: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `pg_dump` or `pg_restore` failed.
    #[error("{tool} failed: {stderr}")]
    Tool {
        /// The tool.
        tool: &'static str,
        /// What it said.
        stderr: String,
    },
    /// The PostgreSQL URL does not parse.
    #[error("the PostgreSQL URL does not parse")]
    Url(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Restoring needs a fresh database; this one holds tables or data.
    #[error("{0} is not empty: restore only into a fresh database")]
    NotEmpty(String),
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Writes a consistent copy of `database` to `out` (which must not exist).
pub async fn dump(database: &Database, out: &Path) -> Result<(), DatabaseCopyError> {
    match database {
        Database::Sqlite(path) => {
            let options = SqliteConnectOptions::new()
                .filename(path)
                .busy_timeout(Duration::from_secs(30));
            let mut conn = SqliteConnection::connect_with(&options).await?;
            sqlx::query("VACUUM INTO $1")
                .bind(out.display().to_string())
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            Ok(())
        }
        Database::Postgres(url) => {
            let mut command = pg_command("pg_dump", url)?;
            command
                .args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
                .arg(out);
            run("pg_dump", command)
        }
    }
}

/// Puts the copy `from` (written by [`dump`]) into `database`, which must be fresh: a SQLite
/// file that does not exist, or a PostgreSQL database without tables.
pub async fn load(database: &Database, from: &Path) -> Result<(), DatabaseCopyError> {
    match database {
        Database::Sqlite(path) => {
            if path.exists() {
                return Err(DatabaseCopyError::NotEmpty(path.display().to_string()));
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| DatabaseCopyError::Io {
                    path: parent.to_owned(),
                    source,
                })?;
            }
            std::fs::copy(from, path).map_err(|source| DatabaseCopyError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(())
        }
        Database::Postgres(url) => {
            let options = sqlx::postgres::PgConnectOptions::from_str(url)?;
            let mut conn = sqlx::PgConnection::connect_with(&options).await?;
            let tables: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_catalog.pg_tables \
                 WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
            )
            .fetch_one(&mut conn)
            .await?;
            conn.close().await?;
            if tables > 0 {
                return Err(DatabaseCopyError::NotEmpty(
                    "the PostgreSQL database".into(),
                ));
            }
            let mut command = pg_command("pg_restore", url)?;
            command
                .args([
                    "--no-owner",
                    "--no-privileges",
                    "--exit-on-error",
                    "--single-transaction",
                ])
                .arg(from);
            run("pg_restore", command)
        }
    }
}

/// `tool` connecting to `url`, its password in `PGPASSWORD` rather than on the command line
/// (where `ps` would show it).
fn pg_command(tool: &'static str, url: &str) -> Result<Command, DatabaseCopyError> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| DatabaseCopyError::Url(Box::new(e)))?;
    let mut command = Command::new(tool);
    if let Some(password) = parsed.password() {
        let password = percent_decode(password);
        command.env("PGPASSWORD", password);
        let _ = parsed.set_password(None);
    }
    command.arg("--dbname").arg(parsed.as_str());
    Ok(command)
}

/// `%XX` escapes of a URL's password, decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn run(tool: &'static str, mut command: Command) -> Result<(), DatabaseCopyError> {
    let out = command
        .output()
        .map_err(|source| DatabaseCopyError::Spawn { tool, source })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DatabaseCopyError::Tool {
            tool,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_database() {
        assert_eq!(
            Database::from_url("sqlite:///d/hexabase.db"),
            Database::Sqlite("/d/hexabase.db".into())
        );
        assert_eq!(Database::from_url("d/x.db").kind(), "sqlite");
        assert_eq!(Database::from_url("postgresql://u@h/db").kind(), "postgres");
    }

    #[test]
    fn passwords_leave_the_command_line() {
        let command = pg_command("pg_dump", "postgres://u:p%40ss@h:5432/db").expect("parses");
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["--dbname", "postgres://u@h:5432/db"]);
        let env: Vec<_> = command.get_envs().collect();
        assert_eq!(
            env,
            [(
                std::ffi::OsStr::new("PGPASSWORD"),
                Some(std::ffi::OsStr::new("p@ss"))
            )]
        );
    }
}
