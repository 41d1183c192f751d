//! The connection to the Redis server replicas share (`redis.url`).
//!
//! Each HTTP worker thread opens its own connection on first use: a connection's I/O task
//! then runs on the thread that sends the commands, instead of every command waking another
//! thread and back (which cost more than the round trip itself). Connections reconnect by
//! themselves after Redis restarts. Every command is bounded by `redis.timeout_ms`.

use std::cell::RefCell;
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
    /// Connects to `url` and checks it answers a `PING` within `timeout`.
    pub async fn open(url: &str, prefix: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let link = Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            client,
            prefix: prefix.to_owned(),
            timeout,
        };
        let pong: String = link.query(redis::cmd("PING")).await?;
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
