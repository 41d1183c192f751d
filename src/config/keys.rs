//! The `[keys]` section: signing algorithm, key-encryption key and rotation timing.

use std::fmt;
use std::path::PathBuf;

use super::raw::RawKeys;
use super::{ConfigError, Mode, positive};
use crate::jose::keys::SigningAlgorithm;

/// Where the key-encryption key comes from.
#[derive(Clone)]
pub enum KeyEncryptionKeySource {
    /// Given in configuration (base64 of 32 bytes).
    Inline([u8; 32]),
    /// Read from (or, in development mode, generated into) a file.
    File(PathBuf),
}

impl fmt::Debug for KeyEncryptionKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline([redacted])"),
            Self::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

/// Signing-key settings.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// Algorithm of newly generated keys.
    pub algorithm: SigningAlgorithm,
    /// Source of the key-encryption key.
    pub encryption_key: KeyEncryptionKeySource,
    /// Whether the key-encryption key file may be generated when missing.
    pub generate_encryption_key: bool,
    /// Age after which a scheduled rotation pre-publishes the next key.
    pub rotation_interval_secs: i64,
    /// How long a new key is published before it signs.
    pub promote_delay_secs: i64,
    /// Longest lifetime of anything Patron signs; retired keys stay published this long.
    pub max_token_lifetime_secs: i64,
    /// How often a server reloads keys from the database (rotations by other replicas or
    /// the CLI).
    pub refresh_interval_secs: u64,
}

fn decode_kek(setting: &str, value: &str) -> Result<[u8; 32], ConfigError> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value.trim()))
        .map_err(|_| ConfigError::new(setting, "must be base64 (32 random bytes)"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        ConfigError::new(
            setting,
            format!(
                "must decode to exactly 32 bytes, got {}; generate one with `openssl rand -base64 32`",
                bytes.len()
            ),
        )
    })
}

/// Validates `[keys]`. Without an explicit key-encryption key, development mode keeps a
/// generated one beside the SQLite database (`database_dir`); production mode refuses.
pub(super) fn validate_keys(
    raw: &RawKeys,
    mode: Mode,
    database_dir: Option<PathBuf>,
) -> Result<KeysConfig, ConfigError> {
    let algorithm: SigningAlgorithm = raw
        .algorithm
        .parse()
        .map_err(|m: String| ConfigError::new("keys.algorithm", m))?;
    let (encryption_key, generate_encryption_key) =
        match (&raw.encryption_key, &raw.encryption_key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "keys.encryption_key",
                    "set either keys.encryption_key or keys.encryption_key_file, not both",
                ));
            }
            (Some(v), None) => (
                KeyEncryptionKeySource::Inline(decode_kek("keys.encryption_key", v)?),
                false,
            ),
            (None, Some(path)) => (KeyEncryptionKeySource::File(path.clone()), false),
            (None, None) => {
                if mode == Mode::Production {
                    return Err(ConfigError::new(
                        "keys.encryption_key",
                        "production mode needs an explicit key-encryption key \
                         (PATRON_KEY_ENCRYPTION_KEY or PATRON_KEY_ENCRYPTION_KEY_FILE)",
                    ));
                }
                let dir = database_dir.unwrap_or_default();
                (KeyEncryptionKeySource::File(dir.join("patron.kek")), true)
            }
        };
    Ok(KeysConfig {
        algorithm,
        encryption_key,
        generate_encryption_key,
        rotation_interval_secs: positive(
            "keys.rotation_interval_secs",
            raw.rotation_interval_secs,
        )?,
        promote_delay_secs: i64::try_from(raw.promote_delay_secs)
            .map_err(|_| ConfigError::new("keys.promote_delay_secs", "is too large"))?,
        max_token_lifetime_secs: positive(
            "keys.max_token_lifetime_secs",
            raw.max_token_lifetime_secs,
        )?,
        refresh_interval_secs: positive("keys.refresh_interval_secs", raw.refresh_interval_secs)?
            as u64,
    })
}
