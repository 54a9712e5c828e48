//! Group commit for local posts: every post waiting when a flush starts shares that flush, and
//! each is acknowledged only after it. One fsync then covers many posts instead of one each.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use tokio::sync::oneshot;
use tracing::warn;

use crate::post::Post;
use crate::store::{Store, StoreError};

/// Most posts one flush covers; bounds how long the first of them waits.
const MAX_BATCH: usize = 512;

type Request = (Post, oneshot::Sender<Result<(), Arc<StoreError>>>);

/// Handle to the committer thread.
#[derive(Clone)]
pub(crate) struct Committer {
    tx: std_mpsc::SyncSender<Request>,
}

impl Committer {
    /// Start the committer's thread on `store`.
    pub fn start(store: Store) -> Committer {
        let (tx, rx) = std_mpsc::sync_channel::<Request>(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("lakitu-commit".into())
            .spawn(move || run(store, rx))
            .map_or_else(
                |e| warn!(error = %e, "cannot start the commit thread"),
                drop,
            );
        Committer { tx }
    }

    /// Store `post` durably; resolves once it is on disk.
    pub async fn commit(&self, post: Post) -> Result<(), CommitError> {
        let (done, wait) = oneshot::channel();
        let tx = self.tx.clone();
        // The queue is bounded: a full queue makes callers wait (back-pressure), off the runtime.
        tokio::task::spawn_blocking(move || tx.send((post, done)).is_ok())
            .await
            .map_err(|_| CommitError::Stopped)?
            .then_some(())
            .ok_or(CommitError::Stopped)?;
        wait.await
            .map_err(|_| CommitError::Stopped)?
            .map_err(CommitError::Store)
    }
}

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommitError {
    /// The store refused the batch.
    #[error("store: {0}")]
    Store(Arc<StoreError>),
    /// The committer is gone (shutdown).
    #[error("the node is shutting down")]
    Stopped,
}

fn run(store: Store, rx: std_mpsc::Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let posts: Vec<Post> = batch.iter().map(|(p, _)| p.clone()).collect();
        let result = store
            .insert_batch(&posts)
            .and_then(|_| store.flush())
            .map_err(Arc::new);
        for (_, done) in batch {
            let _ = done.send(result.clone().map(|_| ()));
        }
    }
}
