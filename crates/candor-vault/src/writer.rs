//! The log's single writer: group commit.
//!
//! Requests queue on a channel. The writer thread takes everything queued, commits it as one
//! transaction (one fsync for the whole group, one signed checkpoint), then answers each caller.
//! While it waits on the disk, new requests queue up for the next group, so the batch size grows
//! with load by itself and no timer is needed.

use std::sync::Arc;
use std::sync::mpsc;

use candor_log::{Checkpoint, Frontier, Hash, NoteSigner};
use candor_store::{RequestOutcome, Sequencer, Store, StoreError, StoredCheckpoint, WriteRequest};
use tokio::sync::{oneshot, watch};

/// The most requests committed in one transaction; bounds the latency of a single group.
const MAX_GROUP: usize = 1024;

struct Job {
    request: WriteRequest,
    // A oneshot, so callers await the commit on the async runtime instead of parking a thread.
    reply: oneshot::Sender<Result<RequestOutcome, WriterError>>,
}

/// Why a write did not commit.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The store failed; nothing of this group was committed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The group this write was in failed to commit; nothing of it is durable.
    #[error("the write could not be committed")]
    CommitFailed,
    /// The writer thread is gone (shutting down, or it panicked).
    #[error("the log writer has stopped")]
    Stopped,
}

/// The log's state as the writer owns it: the tree's right edge and the key that signs each
/// group's checkpoint. Public so benchmarks drive the store exactly as the writer does.
pub struct LogSequencer {
    // Owned by the writer thread alone; restored from a snapshot when a commit fails.
    frontier: Frontier,
    signer: NoteSigner,
}

impl LogSequencer {
    /// A sequencer continuing the tree whose right edge is `frontier`.
    pub fn new(frontier: Frontier, signer: NoteSigner) -> LogSequencer {
        LogSequencer { frontier, signer }
    }
}

impl Sequencer for LogSequencer {
    fn append(&mut self, commitment: &[u8; 32]) -> (u64, Vec<(u64, Hash)>) {
        self.frontier.append(commitment)
    }

    fn checkpoint(&mut self) -> StoredCheckpoint {
        let body = Checkpoint {
            origin: self.signer.name().to_owned(),
            size: self.frontier.size(),
            root: self.frontier.root(),
        };
        let note = self
            .signer
            .sign(&body.to_text())
            .expect("checkpoint text ends with a newline");
        StoredCheckpoint {
            size: body.size,
            note,
        }
    }
}

/// A handle for submitting writes; cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    queue: mpsc::Sender<Job>,
    // The tree size after each durable commit, for whoever publishes checkpoints onward.
    committed: watch::Receiver<u64>,
}

impl LogWriter {
    /// Loads the tree from `store`, checks the stored checkpoint against it, and starts the writer.
    pub fn start(store: Arc<dyn Store>, signer: NoteSigner) -> Result<LogWriter, StoreError> {
        let latest = store.latest_checkpoint()?;
        let size = latest.as_ref().map_or(0, |c| c.size);
        let frontier = Frontier::load(size, &candor_store::StoreHashes(&*store))?;
        if let Some(cp) = &latest {
            let opened = Checkpoint::open(&cp.note, &signer.verifier())
                .map_err(|_| StoreError::Corrupt("latest checkpoint does not verify"))?;
            if opened.size != size || !opened.root.ct_eq(&frontier.root()) {
                return Err(StoreError::Corrupt(
                    "stored tree does not match its checkpoint",
                ));
            }
        }
        let (queue, jobs) = mpsc::channel::<Job>();
        let (sizes, committed) = watch::channel(size);
        let sequencer = LogSequencer::new(frontier, signer);
        std::thread::Builder::new()
            .name("candor-log-writer".into())
            .spawn(move || run(store, sequencer, jobs, sizes))
            .expect("spawn log writer");
        Ok(LogWriter { queue, committed })
    }

    /// Follows the committed tree size; it changes after each durable group commit.
    pub fn committed_sizes(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// Commits `request` durably in the next group; completes once it is on disk.
    pub async fn submit(&self, request: WriteRequest) -> Result<RequestOutcome, WriterError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { request, reply })
            .map_err(|_| WriterError::Stopped)?;
        answer.await.map_err(|_| WriterError::Stopped)?
    }
}

fn run(
    store: Arc<dyn Store>,
    mut sequencer: LogSequencer,
    jobs: mpsc::Receiver<Job>,
    sizes: watch::Sender<u64>,
) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) =
            group.into_iter().map(|j| (j.request, j.reply)).unzip();
        let before = sequencer.frontier.clone();
        match store.commit(&requests, &mut sequencer) {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
                sizes.send_if_modified(|size| {
                    let grew = *size != sequencer.frontier.size();
                    *size = sequencer.frontier.size();
                    grew
                });
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    cause = ?std::error::Error::source(&e),
                    group = requests.len(),
                    "log commit failed"
                );
                sequencer.frontier = before;
                for reply in replies {
                    let _ = reply.send(Err(WriterError::CommitFailed));
                }
            }
        }
    }
}
