//! Things the daemon opens once per name (collections, bundles, encoders),
//! opened off the async threads.
//!
//! The map's lock is held only to find or insert a name's cell. The open
//! itself runs in a task of its own (whose blocking parts go through
//! [`blocking`]), so a slow first open (an HNSW load, a bundle hash, ONNX
//! session creation) neither blocks a runtime thread nor holds up requests
//! for other names, and a client that hangs up does not cancel it halfway
//! (a cancelled collection open would leave its writer lock taken while the
//! next caller opened again). Concurrent first uses of one name wait on the
//! same open; a failed open removes the name's cell, and the next use tries
//! again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use tokio::sync::OnceCell;

use super::ApiError;

/// Opened values by name.
pub struct OnceMap<V> {
    cells: Mutex<HashMap<String, Arc<OnceCell<V>>>>,
}

impl<V> Default for OnceMap<V> {
    fn default() -> Self {
        OnceMap {
            cells: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> OnceMap<V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OnceCell<V>>>> {
        self.cells.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of `key`, opened by `open` on first use.
    pub async fn get_or_open<F, Fut>(&self, key: &str, open: F) -> Result<V, ApiError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, ApiError>> + Send + 'static,
    {
        let cell = Arc::clone(self.lock().entry(key.to_string()).or_default());
        if let Some(v) = cell.get() {
            return Ok(v.clone());
        }
        let task = {
            let cell = Arc::clone(&cell);
            tokio::spawn(async move { cell.get_or_try_init(open).await.cloned() })
        };
        let result = task.await.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("an open failed: {e}"),
            )
        })?;
        if result.is_err() {
            // No cell per name that never opened (names come from clients).
            let mut map = self.lock();
            if map
                .get(key)
                .is_some_and(|c| Arc::ptr_eq(c, &cell) && !c.initialized())
            {
                map.remove(key);
            }
        }
        result
    }

    /// The value of `key` if it is open.
    pub fn get(&self, key: &str) -> Option<V> {
        self.lock().get(key).and_then(|c| c.get().cloned())
    }

    /// Sets `key` (a value opened elsewhere, such as a new collection).
    pub fn insert(&self, key: &str, value: V) {
        self.lock()
            .insert(key.to_string(), Arc::new(OnceCell::new_with(Some(value))));
    }

    /// Forgets `key`; returns its value if it was open.
    pub fn remove(&self, key: &str) -> Option<V> {
        self.lock().remove(key).and_then(|c| c.get().cloned())
    }

    /// Every open value, by name.
    pub fn opened(&self) -> Vec<(String, V)> {
        self.lock()
            .iter()
            .filter_map(|(k, c)| c.get().map(|v| (k.clone(), v.clone())))
            .collect()
    }
}

/// Runs `f` on the blocking pool (file I/O, hashing, session creation).
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("a blocking task failed: {e}"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_uses_open_once_and_a_failed_open_is_retried() {
        let map: Arc<OnceMap<usize>> = Arc::default();
        let opens = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (map, opens) = (Arc::clone(&map), Arc::clone(&opens));
            tasks.push(tokio::spawn(async move {
                map.get_or_open("a", move || async move {
                    blocking(move || {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Ok(opens.fetch_add(1, Ordering::SeqCst) + 7)
                    })
                    .await
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 7);
        }
        assert_eq!(opens.load(Ordering::SeqCst), 1);
        let failed = map
            .get_or_open("b", move || async move {
                Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no b"))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(map.get("b"), None);
        assert!(
            !map.lock().contains_key("b"),
            "a failed open leaves no cell behind"
        );
        let retried = map
            .get_or_open("b", move || async move { Ok(2) })
            .await
            .unwrap();
        assert_eq!(retried, 2);
        assert_eq!(map.remove("a"), Some(7));
        let mut names: Vec<String> = map.opened().into_iter().map(|(k, _)| k).collect();
        names.sort();
        assert_eq!(names, ["b"]);
    }

    /// A caller that goes away mid-open (a client that hung up) does not
    /// cancel the open: the next caller gets its value, opened once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_first_use_still_completes_the_open_once() {
        let map: Arc<OnceMap<usize>> = Arc::default();
        let opens = Arc::new(AtomicUsize::new(0));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let first = {
            let (map, opens) = (Arc::clone(&map), Arc::clone(&opens));
            tokio::spawn(async move {
                map.get_or_open("c", move || async move {
                    blocking(move || {
                        wait.recv().ok();
                        Ok(opens.fetch_add(1, Ordering::SeqCst) + 40)
                    })
                    .await
                })
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        first.abort();
        let second = {
            let (map, opens) = (Arc::clone(&map), Arc::clone(&opens));
            tokio::spawn(async move {
                map.get_or_open("c", move || async move {
                    Ok(opens.fetch_add(1, Ordering::SeqCst) + 100)
                })
                .await
            })
        };
        release.send(()).unwrap();
        assert_eq!(second.await.unwrap().unwrap(), 40);
        assert_eq!(opens.load(Ordering::SeqCst), 1);
    }

    /// An open that cannot finish until another name has opened: with the
    /// map lock or the runtime's one thread held during an open, this hangs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_slow_open_does_not_hold_up_another_name() {
        let map: Arc<OnceMap<usize>> = Arc::default();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let slow = {
            let map = Arc::clone(&map);
            tokio::spawn(async move {
                map.get_or_open("slow", move || async move {
                    blocking(move || {
                        wait.recv().map_err(|_| {
                            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "dropped")
                        })?;
                        Ok(1)
                    })
                    .await
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        let fast = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            map.get_or_open("fast", move || async move { Ok(2) }),
        )
        .await
        .expect("the open of `fast` waited for `slow`");
        assert_eq!(fast.unwrap(), 2);
        release.send(()).unwrap();
        assert_eq!(slow.await.unwrap().unwrap(), 1);
    }
}
