//! Refusals that suggest a stolen credential (a replayed assertion or proof, a foreign DPoP
//! key, a token presented by someone who does not hold it) are collected per client and
//! mailed to the owner as one digest per interval, so an attack cannot flood their inbox.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::mail::Notification;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::models::{clients, owners};

/// Reason codes that suggest theft rather than a bug in the agent.
pub const THEFT_REASONS: &[&str] = &[
    "jti_replayed",
    "dpop_jti_replayed",
    "dpop_key_mismatch",
    "exchange_not_holder",
    "aud_mismatch",
    "signature_invalid",
    "client_secret_invalid",
];

/// Counts of suspicious refusals per (client, reason) since the last digest.
#[derive(Default)]
pub struct Suspicion {
    counts: Mutex<HashMap<(String, String), i64>>,
}

impl Suspicion {
    /// Records a refusal if its reason suggests theft.
    pub fn record(&self, client_id: &str, reason: &str) {
        if !THEFT_REASONS.contains(&reason) {
            return;
        }
        if let Ok(mut m) = self.counts.lock() {
            if m.len() < 10_000 {
                *m.entry((client_id.to_owned(), reason.to_owned()))
                    .or_insert(0) += 1;
            }
        }
    }

    fn drain(&self) -> Vec<((String, String), i64)> {
        self.counts
            .lock()
            .map(|mut m| m.drain().collect())
            .unwrap_or_default()
    }
}

/// Mails each owner a digest of the suspicious refusals of their agents since last time.
pub async fn send_digests(state: &AppState) -> Result<usize, StoreError> {
    let entries = state.suspicion.drain();
    if entries.is_empty() {
        return Ok(0);
    }
    let by_owner = state
        .store
        .read(move |c| {
            let mut by_owner: HashMap<String, Vec<(String, String, i64)>> = HashMap::new();
            for ((client_id, reason), n) in entries {
                let Some(row) = clients::find(c, &client_id)? else {
                    continue;
                };
                let Some(owner) = row.owner_id else { continue };
                let Some(email) = owners::find(c, &owner)?.and_then(|o| o.email) else {
                    continue;
                };
                by_owner
                    .entry(email)
                    .or_default()
                    .push((client_id, reason, n));
            }
            Ok::<_, StoreError>(by_owner)
        })
        .await?;
    let n = by_owner.len();
    for (email, mut events) in by_owner {
        events.sort();
        state
            .mailer
            .notify(&email, Notification::SuspiciousActivity { events });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_theft_reasons_are_counted() {
        let s = Suspicion::default();
        s.record("agt_1", "jti_replayed");
        s.record("agt_1", "jti_replayed");
        s.record("agt_1", "scope_exceeds_grant");
        let d = s.drain();
        assert_eq!(
            d,
            vec![(("agt_1".to_owned(), "jti_replayed".to_owned()), 2)]
        );
        assert!(s.drain().is_empty());
    }
}
