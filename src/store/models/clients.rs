//! Registered clients (agents and skills that act as clients).

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::oauth::client_metadata::ClientMetadata;
use crate::store::schema::clients;
use crate::store::{DbConnection, StoreError};

/// Lifecycle state of a registration, stored as its [`as_str`](Self::as_str) form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStatus {
    /// Registered, not yet claimed by an owner; gets no tokens.
    Pending,
    /// Linked to an owner; may get tokens.
    Active,
    /// Stopped by its owner or an admin.
    Suspended,
}

impl ClientStatus {
    /// The stored and wire form (`owner_status`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            other => Err(StoreError::Corrupt(format!(
                "unknown client status {other:?}"
            ))),
        }
    }
}

impl TryFrom<String> for ClientStatus {
    type Error = StoreError;

    fn try_from(s: String) -> Result<Self, StoreError> {
        Self::parse(&s)
    }
}

impl From<ClientStatus> for String {
    fn from(s: ClientStatus) -> Self {
        s.as_str().to_owned()
    }
}

/// Who suspended an agent, stored as its [`as_str`](Self::as_str) form. Only an admin lifts
/// an admin's suspension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendedBy {
    /// The admin API or CLI, or a console admin.
    Admin,
    /// The agent's owner.
    Owner,
}

impl SuspendedBy {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }
}

/// A registration's validated metadata as stored: the JSON itself (which the RFC 7591
/// response echoes, software statement included) and its parse, made once when the row is
/// read. `parsed` is `None` only for a row that does not hold valid metadata (corrupt).
#[derive(Debug, Clone)]
pub struct StoredMetadata {
    json: String,
    parsed: Option<ClientMetadata>,
}

impl StoredMetadata {
    /// The stored JSON.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The parsed metadata, unless the stored JSON is not valid metadata.
    pub fn parsed(&self) -> Option<&ClientMetadata> {
        self.parsed.as_ref()
    }
}

impl From<String> for StoredMetadata {
    fn from(json: String) -> Self {
        let parsed = serde_json::from_str(&json).ok();
        Self { json, parsed }
    }
}

/// A stored registration.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    /// The `client_id`.
    pub client_id: String,
    /// Where it is in its lifecycle.
    #[diesel(deserialize_as = String)]
    pub status: ClientStatus,
    /// The owner who claimed it.
    pub owner_id: Option<String>,
    /// The validated client metadata, parsed when the row is read.
    #[diesel(deserialize_as = String)]
    pub metadata: StoredMetadata,
    /// Hash of the client secret, for secret-based authentication (`hmac-sha256$…`, or a
    /// legacy `$argon2id$…` until its first successful check).
    pub client_secret_hash: Option<String>,
    /// SHA-256 (hex) of the registration access token.
    pub registration_token_hash: String,
    /// The user code a human enters to claim it, while pending.
    pub user_code: Option<String>,
    /// Source address of the registration request.
    pub source_addr: Option<String>,
    /// When it registered.
    pub created_at: UnixTime,
    /// Last change.
    pub updated_at: UnixTime,
    /// When an unclaimed registration is purged.
    pub expires_at: Option<UnixTime>,
    /// Tokens issued before this instant are invalid.
    pub tokens_revoked_before: Option<UnixTime>,
    /// Who suspended it ([`SuspendedBy::as_str`]), while suspended; `None` when not, or
    /// when it was suspended before this was recorded (counted as its owner's suspension).
    pub suspended_by: Option<String>,
}

impl ClientRow {
    /// Whether the row is an unclaimed registration past its expiry (treated as gone).
    pub fn is_expired(&self, now: UnixTime) -> bool {
        self.status == ClientStatus::Pending && self.expires_at.is_some_and(|t| t <= now)
    }

    /// Whether an admin suspended it (so only an admin may resume it).
    pub fn suspended_by_admin(&self) -> bool {
        self.status == ClientStatus::Suspended
            && self.suspended_by.as_deref() == Some(SuspendedBy::Admin.as_str())
    }
}

/// A registration to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = clients)]
pub struct NewClient<'a> {
    /// The `client_id`.
    pub client_id: &'a str,
    /// Initial status.
    #[diesel(serialize_as = String)]
    pub status: ClientStatus,
    /// The owner, when registered with an enrollment token.
    pub owner_id: Option<&'a str>,
    /// Validated metadata JSON.
    pub metadata: &'a str,
    /// Hash of the secret, if one was issued (`hmac-sha256$…`, or a legacy `$argon2id$…`).
    pub client_secret_hash: Option<&'a str>,
    /// SHA-256 (hex) of the registration access token.
    pub registration_token_hash: &'a str,
    /// User code while pending.
    pub user_code: Option<&'a str>,
    /// Source address.
    pub source_addr: Option<&'a str>,
    /// Now.
    pub created_at: UnixTime,
    /// Now.
    pub updated_at: UnixTime,
    /// Expiry of an unclaimed registration; for a client identified by a metadata
    /// document, when the document must be fetched again.
    pub expires_at: Option<UnixTime>,
    /// Its keys' [thumbprints](crate::jose::jwks::PublicKeySet::thumbprints),
    /// when it has keys.
    pub key_thumbprints: Option<&'a str>,
}

/// Inserts a registration; a duplicate id or user code is [`StoreError::Conflict`].
pub fn insert(conn: &mut DbConnection, new: NewClient<'_>) -> Result<(), StoreError> {
    diesel::insert_into(clients::table)
        .values(new)
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Looks a registration up by `client_id`.
pub fn find(conn: &mut DbConnection, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
    clients::table
        .find(client_id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()
        .map_err(StoreError::from_diesel)
}

/// The pending, unexpired registration made from `source_addr` with the key set whose
/// thumbprints are `key_thumbprints`, if any (the newest, should there be several).
pub fn find_pending_duplicate(
    conn: &mut DbConnection,
    key_thumbprints: &str,
    source_addr: &str,
    now: UnixTime,
) -> Result<Option<ClientRow>, StoreError> {
    // Only the two columns of `clients_key_thumbprints_source_idx` are in the query: with
    // the status and expiry too, SQLite's planner prefers the expiry index and scans every
    // pending registration. The rows sharing one key and address are few.
    let rows: Vec<ClientRow> = clients::table
        .filter(clients::key_thumbprints.eq(key_thumbprints))
        .filter(clients::source_addr.eq(source_addr))
        .select(ClientRow::as_select())
        .load(conn)
        .map_err(StoreError::from_diesel)?;
    Ok(rows
        .into_iter()
        .filter(|r| r.status == ClientStatus::Pending && r.expires_at.is_some_and(|t| t > now))
        .max_by_key(|r| r.created_at))
}

/// New credentials and metadata for a pending registration made again.
#[derive(Debug)]
pub struct RenewedPending<'a> {
    /// The new request's validated metadata JSON.
    pub metadata: &'a str,
    /// argon2id hash of a newly issued secret, if the metadata uses one.
    pub client_secret_hash: Option<&'a str>,
    /// SHA-256 (hex) of the new registration access token.
    pub registration_token_hash: &'a str,
    /// The new user code.
    pub user_code: &'a str,
    /// The new end of the claim window.
    pub expires_at: UnixTime,
}

/// Replaces a pending registration's metadata, secret, registration access token and user
/// code (the old ones stop working). Returns whether it was still pending; a user code
/// taken meanwhile is [`StoreError::Conflict`].
pub fn renew_pending(
    conn: &mut DbConnection,
    client_id: &str,
    renewed: &RenewedPending<'_>,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        clients::table
            .find(client_id)
            .filter(clients::status.eq(ClientStatus::Pending.as_str())),
    )
    .set((
        clients::metadata.eq(renewed.metadata),
        clients::client_secret_hash.eq(renewed.client_secret_hash),
        clients::registration_token_hash.eq(renewed.registration_token_hash),
        clients::user_code.eq(renewed.user_code),
        clients::expires_at.eq(renewed.expires_at),
        clients::updated_at.eq(now),
    ))
    .execute(conn)
    .map_err(StoreError::from_diesel)?;
    Ok(n == 1)
}

/// Replaces the metadata of a client identified by a metadata document with the document
/// fetched again, and when it must be fetched next.
pub fn update_document(
    conn: &mut DbConnection,
    client_id: &str,
    metadata: &str,
    key_thumbprints: Option<&str>,
    fresh_until: UnixTime,
    now: UnixTime,
) -> Result<(), StoreError> {
    diesel::update(clients::table.find(client_id))
        .set((
            clients::metadata.eq(metadata),
            clients::key_thumbprints.eq(key_thumbprints),
            clients::expires_at.eq(Some(fresh_until)),
            clients::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Replaces a registration's metadata (RFC 7592 update).
pub fn update_metadata(
    conn: &mut DbConnection,
    client_id: &str,
    metadata: &str,
    client_secret_hash: Option<&str>,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let n = diesel::update(clients::table.find(client_id))
        .set((
            clients::metadata.eq(metadata),
            clients::client_secret_hash.eq(client_secret_hash),
            clients::updated_at.eq(now),
        ))
        .execute(conn)
        .map_err(StoreError::from_diesel)?;
    Ok(n == 1)
}

/// Replaces a client-secret hash with another form of the same secret, only if the stored
/// hash is still `old` (a secret changed meanwhile stays); returns whether it replaced it.
pub fn replace_secret_hash(
    conn: &mut DbConnection,
    client_id: &str,
    old: &str,
    new: &str,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        clients::table
            .find(client_id)
            .filter(clients::client_secret_hash.eq(old)),
    )
    .set(clients::client_secret_hash.eq(new))
    .execute(conn)
    .map_err(StoreError::from_diesel)?;
    Ok(n == 1)
}

/// Records the [thumbprints](crate::jose::jwks::PublicKeySet::thumbprints) of a
/// registration's keys (`None`: it has none).
pub fn set_key_thumbprints(
    conn: &mut DbConnection,
    client_id: &str,
    key_thumbprints: Option<&str>,
) -> Result<(), StoreError> {
    diesel::update(clients::table.find(client_id))
        .set(clients::key_thumbprints.eq(key_thumbprints))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Deletes a registration and (by cascade) its grants.
pub fn delete(conn: &mut DbConnection, client_id: &str) -> Result<bool, StoreError> {
    let n = diesel::delete(clients::table.find(client_id))
        .execute(conn)
        .map_err(StoreError::from_diesel)?;
    Ok(n == 1)
}

/// Deletes unclaimed registrations whose window has passed; returns how many.
pub fn purge_expired_pending(conn: &mut DbConnection, now: UnixTime) -> Result<usize, StoreError> {
    diesel::delete(
        clients::table
            .filter(clients::status.eq(ClientStatus::Pending.as_str()))
            .filter(clients::expires_at.le(now)),
    )
    .execute(conn)
    .map_err(StoreError::from_diesel)
}

/// Counts registrations by status (for metrics).
pub fn count_by_status(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, StoreError> {
    clients::table
        .group_by(clients::status)
        .select((clients::status, diesel::dsl::count_star()))
        .load(conn)
        .map_err(StoreError::from_diesel)
}

/// Invalidates every token issued to a registration before `at` (keeping its status).
pub fn revoke_tokens_before(
    conn: &mut DbConnection,
    client_id: &str,
    at: UnixTime,
) -> Result<bool, StoreError> {
    diesel::update(clients::table.find(client_id))
        .set((
            clients::tokens_revoked_before.eq(at),
            clients::updated_at.eq(at),
        ))
        .execute(conn)
        .map(|n| n == 1)
        .map_err(StoreError::from_diesel)
}

/// Sets a registration's status; when `revoke_before` is given, tokens issued up to that
/// instant stop working. Returns whether the client exists.
pub fn set_status(
    conn: &mut DbConnection,
    client_id: &str,
    status: ClientStatus,
    owner_id: Option<&str>,
    revoke_before: Option<UnixTime>,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let target = clients::table.find(client_id);
    let n = match (owner_id, revoke_before) {
        (Some(owner), _) => diesel::update(target)
            .set((
                clients::status.eq(status.as_str()),
                clients::owner_id.eq(owner),
                clients::user_code.eq(None::<String>),
                clients::expires_at.eq(None::<i64>),
                clients::updated_at.eq(now),
            ))
            .execute(conn),
        (None, Some(t)) => diesel::update(target)
            .set((
                clients::status.eq(status.as_str()),
                clients::tokens_revoked_before.eq(t),
                clients::updated_at.eq(now),
            ))
            .execute(conn),
        (None, None) => diesel::update(target)
            .set((
                clients::status.eq(status.as_str()),
                clients::updated_at.eq(now),
            ))
            .execute(conn),
    }
    .map_err(StoreError::from_diesel)?;
    Ok(n == 1)
}

/// Links a registration that is still pending to `owner_id` and makes it active, as
/// [`set_status`] does; returns `false` (changing nothing) when it is no longer pending. The
/// condition is part of the update, so of two concurrent claims only one changes the row.
pub fn claim_pending(
    conn: &mut DbConnection,
    client_id: &str,
    owner_id: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    diesel::update(
        clients::table
            .find(client_id)
            .filter(clients::status.eq(ClientStatus::Pending.as_str())),
    )
    .set((
        clients::status.eq(ClientStatus::Active.as_str()),
        clients::owner_id.eq(owner_id),
        clients::user_code.eq(None::<String>),
        clients::expires_at.eq(None::<i64>),
        clients::updated_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
    .map_err(StoreError::from_diesel)
}

/// Records who suspended a registration (`None` when it is resumed or approved).
pub fn set_suspended_by(
    conn: &mut DbConnection,
    client_id: &str,
    by: Option<SuspendedBy>,
) -> Result<bool, StoreError> {
    diesel::update(clients::table.find(client_id))
        .set(clients::suspended_by.eq(by.map(SuspendedBy::as_str)))
        .execute(conn)
        .map(|n| n == 1)
        .map_err(StoreError::from_diesel)
}

/// Looks a pending registration up by its user code (stored without the dash).
pub fn find_by_user_code(
    conn: &mut DbConnection,
    code: &str,
) -> Result<Option<ClientRow>, StoreError> {
    clients::table
        .filter(clients::user_code.eq(code))
        .select(ClientRow::as_select())
        .first(conn)
        .optional()
        .map_err(StoreError::from_diesel)
}

/// All registrations of one owner, newest first.
pub fn for_owner(conn: &mut DbConnection, owner_id: &str) -> Result<Vec<ClientRow>, StoreError> {
    clients::table
        .filter(clients::owner_id.eq(owner_id))
        .order(clients::created_at.desc())
        .limit(500)
        .select(ClientRow::as_select())
        .load(conn)
        .map_err(StoreError::from_diesel)
}

/// The newest registrations of all owners (admin view).
pub fn newest(conn: &mut DbConnection, limit: i64) -> Result<Vec<ClientRow>, StoreError> {
    clients::table
        .order(clients::created_at.desc())
        .limit(limit)
        .select(ClientRow::as_select())
        .load(conn)
        .map_err(StoreError::from_diesel)
}
