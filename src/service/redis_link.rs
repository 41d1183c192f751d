//! The connection to the Redis server replicas share (`redis.url`).
//!
//! Each HTTP worker thread opens its own connection on first use: a connection's I/O task
//! then runs on the thread that sends the commands, instead of every command waking another
//! thread and back (which cost more than the round trip itself). Connections reconnect by
//! themselves after Redis restarts. Every command is bounded by `redis.timeout_ms`.
//!
//! `rediss://` URLs speak TLS (rustls), checking the server's certificate and host name
//! against `redis.ca_file` when set, else against the operating system's roots.

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;

/// A shared Redis server.
pub struct RedisLink {
    id: usize,
    client: redis::Client,
    prefix: String,
    timeout: Duration,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's connection, tagged with the id of the link it belongs to.
    static CONNECTION: RefCell<Option<(usize, ConnectionManager)>> = const { RefCell::new(None) };
}

impl RedisLink {
    /// Connects to `url` and checks it answers a `PING` within `timeout`. `ca_file` (PEM)
    /// replaces the system roots for a `rediss://` URL.
    pub async fn open(
        url: &str,
        ca_file: Option<&Path>,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = match ca_file {
            None => redis::Client::open(url),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read redis.ca_file {}: {e}", path.display()))?;
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
        }
        .map_err(|e| e.to_string())?;
        let link = Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            client,
            prefix: prefix.to_owned(),
            timeout,
        };
        // One direct connection first: the connection manager would retry a refused TLS
        // handshake until the timeout and report only that, not why.
        let ping = async {
            let mut conn = link
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        let pong = tokio::time::timeout(timeout, ping)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))?;
        if pong != "PONG" {
            return Err(format!("unexpected answer to PING: {pong}"));
        }
        Ok(link)
    }

    /// The prefix of Patron's keys and channels.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The client, for connections of its own (subscriptions).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Runs `cmd` on this thread's connection, within the timeout.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, String> {
        let run = async {
            let mut conn = self.connection().await?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", self.timeout.as_millis())))
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        let existing = CONNECTION.with(|c| {
            c.borrow()
                .as_ref()
                .filter(|(id, _)| *id == self.id)
                .map(|(_, conn)| conn.clone())
        });
        if let Some(conn) = existing {
            return Ok(conn);
        }
        let conn = ConnectionManager::new(self.client.clone())
            .await
            .map_err(|e| e.to_string())?;
        CONNECTION.with(|c| *c.borrow_mut() = Some((self.id, conn.clone())));
        Ok(conn)
    }
}
