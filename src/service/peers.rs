//! Notices between replicas, over Redis publish/subscribe (`redis.url`).
//!
//! Each replica caches clients and skills and holds revoked `jti`s in memory. Without Redis
//! other replicas learn of a change from the database: clients and skills within the
//! directory's one-second freshness, revocations within `tokens.revocation_sync_secs`.
//! With Redis, the replica that makes the change also publishes a notice on
//! `<prefix>notices`, and every other replica applies it as it arrives, in milliseconds.
//! The database paths stay as the safety net for notices lost while a replica was
//! disconnected.
//!
//! A notice is one line of text: `<sender> revoked <exp> <jti>`, `<sender> client <id>`,
//! `<sender> all-clients` or `<sender> skills`. A replica ignores its own notices (it has
//! applied them already) and anything it cannot parse.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;

use crate::clock::UnixTime;
use crate::service::redis_link::RedisLink;
use crate::state::AppState;

/// Longest notice accepted from the channel.
const MAX_NOTICE_BYTES: usize = 1024;

/// A change other replicas must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A token was revoked (until it expires).
    Revoked {
        /// Its `jti`.
        jti: String,
        /// Its expiry.
        exp: UnixTime,
    },
    /// A client's registration, state or grants changed.
    Client(String),
    /// Possibly every client changed (an owner's revoke-all).
    AllClients,
    /// A skill was added or changed.
    Skills,
}

impl Notice {
    /// The wire form, from `sender`.
    pub fn encode(&self, sender: &str) -> String {
        match self {
            Notice::Revoked { jti, exp } => format!("{sender} revoked {exp} {jti}"),
            Notice::Client(id) => format!("{sender} client {id}"),
            Notice::AllClients => format!("{sender} all-clients"),
            Notice::Skills => format!("{sender} skills"),
        }
    }

    /// Parses the wire form into its sender and notice.
    pub fn decode(line: &str) -> Option<(&str, Notice)> {
        if line.len() > MAX_NOTICE_BYTES {
            return None;
        }
        let mut parts = line.split(' ');
        let sender = parts.next().filter(|s| !s.is_empty())?;
        let notice = match (parts.next()?, parts.next(), parts.next()) {
            ("revoked", Some(exp), Some(jti)) if !jti.is_empty() => Notice::Revoked {
                jti: jti.to_owned(),
                exp: exp.parse().ok()?,
            },
            ("client", Some(id), None) if !id.is_empty() => Notice::Client(id.to_owned()),
            ("all-clients", None, None) => Notice::AllClients,
            ("skills", None, None) => Notice::Skills,
            _ => return None,
        };
        match parts.next() {
            None => Some((sender, notice)),
            Some(_) => None,
        }
    }
}

/// This replica's side of the notices: publishing, when Redis is configured.
pub struct Peers {
    sender: String,
    link: Option<Arc<RedisLink>>,
}

impl Peers {
    /// Publishing through `link`, or nowhere.
    pub fn new(link: Option<Arc<RedisLink>>) -> Self {
        Self {
            sender: crate::crypto::random_id(""),
            link,
        }
    }

    fn channel(link: &RedisLink) -> String {
        format!("{}notices", link.prefix())
    }

    /// Publishes `notice`. A failure is logged, not returned: the database paths still
    /// carry the change, only later.
    async fn tell(&self, notice: &Notice) {
        let Some(link) = &self.link else { return };
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(Self::channel(link))
            .arg(notice.encode(&self.sender));
        if let Err(e) = link.query::<i64>(cmd).await {
            tracing::warn!(error = %e, "publishing a notice to other replicas failed");
        }
    }
}

/// Applies `notice` to this replica's caches and documents.
async fn apply(state: &AppState, notice: &Notice) {
    match notice {
        Notice::Revoked { jti, exp } => state.revocations.insert(jti, *exp),
        Notice::Client(id) => state.directory.forget_client(id),
        Notice::AllClients => state.directory.forget_all_clients(),
        Notice::Skills => {
            state.directory.forget_skills();
            // The periodic refresh retries if the database is unavailable now.
            if let Err(e) = crate::service::discovery::refresh(state).await {
                tracing::warn!(error = %e, "refreshing the discovery document failed");
            }
        }
    }
}

/// Applies `notice` here and tells the other replicas.
pub async fn announce(state: &AppState, notice: Notice) {
    apply(state, &notice).await;
    state.peers.tell(&notice).await;
}

/// Applies other replicas' notices until the process stops, resubscribing (every second)
/// after Redis goes away.
pub async fn listen(state: actix_web::web::Data<AppState>) {
    let Some(link) = state.peers.link.clone() else {
        return;
    };
    let channel = Peers::channel(&link);
    loop {
        match link.client().get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    tracing::info!(%channel, "listening for other replicas' notices");
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(line) = msg.get_payload::<String>() else {
                            continue;
                        };
                        match Notice::decode(&line) {
                            Some((sender, _)) if sender == state.peers.sender => {}
                            Some((_, notice)) => apply(&state, &notice).await,
                            None => tracing::warn!("ignored a malformed notice"),
                        }
                    }
                    tracing::warn!("lost the notice subscription; resubscribing");
                }
                Err(e) => tracing::warn!(error = %e, "subscribing to notices failed"),
            },
            Err(e) => tracing::warn!(error = %e, "connecting for notices failed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip() {
        for n in [
            Notice::Revoked {
                jti: "j-1_x".into(),
                exp: 1_700_000_000,
            },
            Notice::Client("agent_abc".into()),
            Notice::AllClients,
            Notice::Skills,
        ] {
            let line = n.encode("r1");
            assert_eq!(Notice::decode(&line), Some(("r1", n.clone())), "{line}");
        }
    }

    #[test]
    fn malformed_notices_are_ignored() {
        for bad in [
            "",
            "r1",
            "r1 revoked",
            "r1 revoked soon j1",
            "r1 revoked 5 j1 extra",
            "r1 client",
            "r1 client a b",
            "r1 all-clients now",
            "r1 reboot",
            " client a",
        ] {
            assert_eq!(Notice::decode(bad), None, "{bad:?}");
        }
        let long = format!("r1 client {}", "a".repeat(MAX_NOTICE_BYTES));
        assert_eq!(Notice::decode(&long), None);
    }
}
