//! The `[database]` section: which backend the URL selects, pool size and writer threads.

use std::fmt;
use std::path::{Path, PathBuf};

use super::ConfigError;
use super::raw::RawDatabase;

/// Which database backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (`sqlite://path`, `sqlite:path` or a plain path).
    Sqlite,
    /// A PostgreSQL server (`postgres://` or `postgresql://`).
    Postgres,
}

/// A database URL with its backend decided from the scheme.
#[derive(Clone)]
pub struct DatabaseUrl {
    backend: Backend,
    /// What the diesel connection takes: a file path for SQLite, the URL for PostgreSQL.
    connect: String,
}

impl DatabaseUrl {
    /// Parses a database URL; the scheme alone picks the backend.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self {
                backend: Backend::Postgres,
                connect: raw.to_owned(),
            });
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.contains("://") {
            return Err("unsupported scheme: use sqlite://PATH or postgres://…".into());
        }
        if path.is_empty() {
            return Err("sqlite URL has no file path".into());
        }
        Ok(Self {
            backend: Backend::Sqlite,
            connect: path.to_owned(),
        })
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection string handed to diesel.
    pub fn connect_string(&self) -> &str {
        &self.connect
    }

    /// For SQLite, the directory that holds the database file.
    pub fn sqlite_dir(&self) -> Option<PathBuf> {
        match self.backend {
            Backend::Sqlite => Some(
                Path::new(&self.connect)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            ),
            Backend::Postgres => None,
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    // The URL may carry a password; show only the backend.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.backend)
    }
}

/// The validated `[database]` section.
pub(super) struct DatabaseSettings {
    pub(super) url: DatabaseUrl,
    pub(super) pool_size: u32,
    pub(super) writers: usize,
}

/// Validates `[database]`: a URL whose scheme names the backend, a pool of 1 to 512
/// connections, and the group-commit writers (always 1 on SQLite, 1 to 64 on PostgreSQL).
pub(super) fn validate_database(raw: &RawDatabase) -> Result<DatabaseSettings, ConfigError> {
    let url = DatabaseUrl::parse(&raw.url).map_err(|m| ConfigError::new("database.url", m))?;
    if raw.pool_size == 0 || raw.pool_size > 512 {
        return Err(ConfigError::new(
            "database.pool_size",
            "must be between 1 and 512",
        ));
    }
    let writers = match url.backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => raw.writers.unwrap_or(4).clamp(1, 64) as usize,
    };
    Ok(DatabaseSettings {
        url,
        pool_size: raw.pool_size,
        writers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_pick_their_backend_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db")
                .unwrap()
                .connect_string(),
            "/tmp/x.db"
        );
        assert_eq!(
            DatabaseUrl::parse("data/p.db").unwrap().backend(),
            Backend::Sqlite
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://h/d").unwrap().backend(),
            Backend::Postgres
        );
        assert!(DatabaseUrl::parse("redis://x").is_err());
        assert!(DatabaseUrl::parse("").is_err());
    }
}
