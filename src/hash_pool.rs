//! Slow password hashing (argon2id) on the blocking pool behind a global cap, so that no
//! request runs it on an async worker and a flood of failed authentications cannot occupy
//! more than [`HashPool::permits`] cores at once (the rest of the server keeps answering).

use tokio::sync::Semaphore;

/// A cap on concurrent slow hashes.
#[derive(Debug)]
pub struct HashPool {
    permits: Semaphore,
    size: usize,
}

impl HashPool {
    /// A pool running at most `size` hashes at once; `0` means one per CPU core.
    pub fn new(size: usize) -> Self {
        let size = if size == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            size
        };
        Self {
            permits: Semaphore::new(size),
            size,
        }
    }

    /// How many hashes may run at once.
    pub fn permits(&self) -> usize {
        self.size
    }

    /// Runs `f` on the blocking pool once a permit is free. `None` if the task panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.permits.acquire().await.ok()?;
        match tokio::task::spawn_blocking(f).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(error = %e, "hashing task failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_the_cap_run_at_once() {
        let pool = Arc::new(HashPool::new(2));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Some(()));
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(HashPool::new(3).permits(), 3);
        assert!(HashPool::new(0).permits() >= 1);
    }
}
