//! The log's single writer: group commit.
//!
//! Requests queue on a channel. The writer thread takes everything queued, commits it as one
//! transaction (one fsync for the whole group, one signed checkpoint), then answers each caller.
//! While it waits on the disk, new requests queue up for the next group, so the batch size grows
//! with load by itself and no timer is needed.

use std::sync::Arc;
use std::sync::mpsc;

use std::collections::HashSet;

use candor_crypto::LabelKey;
use candor_log::directory::{self, Directory, Head};
use candor_log::{Checkpoint, Frontier, NoteSigner};
use candor_store::{
    Appended, Claim, LogStore, RequestOutcome, Sequencer, StoreError, StoredCheckpoint, SubjectLog,
    WriteRequest,
};
use tokio::sync::{oneshot, watch};

use super::trees::{self, Trees};

/// The most requests committed in one transaction; bounds the latency of a single group.
const MAX_GROUP: usize = 1024;

/// How often a group the database aborted under contention is run again before it fails.
const COMMIT_ATTEMPTS: usize = 5;

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
    /// The writer thread is gone (shutting down, deposed as sequencer, or it panicked); the
    /// write was never committed.
    #[error("the log writer has stopped")]
    Stopped,
    /// The node that sequences the log could not be reached; the write was never sent.
    #[error("the node that sequences the log could not be reached")]
    SequencerUnreachable,
    /// The node the write was sent to no longer sequences the log; it did not commit it.
    #[error("the node asked no longer sequences the log")]
    NotSequencer,
}

impl WriterError {
    /// Whether the write certainly did not commit, so handing it to the log's (new) sequencer
    /// cannot duplicate it. A failed commit is not: its answer may have been lost.
    pub fn never_committed(&self) -> bool {
        matches!(
            self,
            WriterError::Stopped
                | WriterError::SequencerUnreachable
                | WriterError::NotSequencer
                | WriterError::Store(StoreError::Fenced)
        )
    }
}

/// The log as of a durable commit: what witnesses are sent and customers are shown.
#[derive(Clone, Debug)]
pub struct LogHead {
    /// The tree size.
    pub size: u64,
    /// The signed checkpoint of that size (`None` while the log is empty).
    pub note: Option<Arc<str>>,
    /// The directory that checkpoint commits to.
    pub directory: Directory,
}

impl LogHead {
    /// The head of an empty log.
    pub fn empty() -> LogHead {
        LogHead {
            size: 0,
            note: None,
            directory: Directory::default(),
        }
    }
}

/// What a failed group must put back.
struct Undo {
    frontier: Frontier,
    directory: Directory,
    note: Option<Arc<str>>,
    // Each customer touched in the group, with their tree before it (None: new in the group).
    subjects: Vec<([u8; 32], Option<Frontier>)>,
}

/// The log's state as the writer owns it: the tree's right edge, a bounded cache of customers'
/// own trees, the directory of their heads and the key that signs each group's checkpoint. Owned
/// by the writer thread alone. Public so benchmarks drive the store exactly as the writer does.
pub struct LogSequencer {
    frontier: Frontier,
    signer: NoteSigner,
    labels: LabelKey,
    subjects: Trees,
    directory: Directory,
    note: Option<Arc<str>>,
    // Customers appended to in the current group: the directory takes each one's head once, at
    // the checkpoint, rather than after every entry.
    touched: HashSet<[u8; 32]>,
    undo: Option<Undo>,
    // The claim this sequencer commits under; the store refuses commits once it is superseded.
    token: Option<u64>,
}

impl LogSequencer {
    /// A sequencer continuing the tree whose right edge is `frontier`, with the customers' trees
    /// in `subject_logs`. Fails if those trees do not account for every entry exactly once.
    pub fn new(
        frontier: Frontier,
        signer: NoteSigner,
        labels: LabelKey,
        subject_logs: Vec<SubjectLog>,
    ) -> Result<LogSequencer, StoreError> {
        let (trees, directory) = customers(subject_logs, frontier.size())?;
        let mut subjects = Trees::new(trees::DEFAULT_CAPACITY);
        subjects.fill(trees);
        Ok(LogSequencer {
            frontier,
            signer,
            labels,
            subjects,
            directory,
            note: None,
            touched: HashSet::new(),
            undo: None,
            token: None,
        })
    }

    /// Rebuilds the log's state from `store` and checks it against the latest checkpoint: at
    /// start-up, and after a commit whose outcome is unknown (a lost answer to `COMMIT`).
    pub fn reload(&mut self, store: &dyn LogStore) -> Result<(), StoreError> {
        let latest = store.latest_checkpoint()?;
        let size = latest.as_ref().map_or(0, |c| c.size);
        let frontier = Frontier::load(size, &candor_store::StoreHashes(store))?;
        let (trees, directory) = customers(store.subject_logs()?, size)?;
        if let Some(cp) = &latest {
            let opened = open_checkpoint(&cp.note, &self.signer.verifier(), &directory)?;
            if opened.size != size || !opened.root.ct_eq(&frontier.root()) {
                return Err(StoreError::Corrupt(
                    "stored tree does not match its checkpoint",
                ));
            }
        }
        self.frontier = frontier;
        self.subjects.fill(trees);
        self.directory = directory;
        self.note = latest.map(|cp| cp.note.as_str().into());
        self.touched.clear();
        self.undo = None;
        Ok(())
    }

    /// The head as of the last checkpoint.
    pub fn head(&self) -> LogHead {
        LogHead {
            size: self.frontier.size(),
            note: self.note.clone(),
            directory: self.directory.clone(),
        }
    }

    /// Marks the start of a group, so a failed commit can be undone.
    pub fn begin(&mut self) {
        self.touched.clear();
        self.undo = Some(Undo {
            frontier: self.frontier.clone(),
            directory: self.directory.clone(),
            note: self.note.clone(),
            subjects: Vec::new(),
        });
    }

    /// Puts everything back as it was at [`LogSequencer::begin`]: memory never runs ahead of disk.
    pub fn rollback(&mut self) {
        let Some(undo) = self.undo.take() else { return };
        self.frontier = undo.frontier;
        self.directory = undo.directory;
        self.note = undo.note;
        for (label, before) in undo.subjects.into_iter().rev() {
            self.subjects.put(label, before);
        }
        self.touched.clear();
    }

    /// Reads the trees of the customers `requests` append to that the cache lacks. Call after
    /// [`LogSequencer::begin`], before the commit.
    pub fn prepare(
        &mut self,
        requests: &[WriteRequest],
        store: &dyn LogStore,
    ) -> Result<(), StoreError> {
        let labels: Vec<[u8; 32]> = requests
            .iter()
            .flat_map(|r| &r.entries)
            .map(|e| self.labels.label(&e.subject))
            .collect();
        self.subjects.prepare(&labels, store)
    }

    /// Keeps at most `capacity` customers' trees in memory.
    #[cfg(test)]
    pub(crate) fn with_tree_capacity(mut self, capacity: usize) -> LogSequencer {
        self.subjects.set_capacity(capacity);
        self
    }
}

impl Sequencer for LogSequencer {
    fn append(&mut self, subject: &str, commitment: &[u8; 32]) -> Appended {
        let (index, hashes) = self.frontier.append(commitment);
        let label = self.labels.label(subject);
        if self.touched.insert(label)
            && let Some(undo) = &mut self.undo
        {
            undo.subjects
                .push((label, self.subjects.get(&label).cloned()));
        }
        let tree = self.subjects.grow(label);
        tree.append(commitment);
        Appended {
            index,
            hashes,
            subject_log: SubjectLog {
                label,
                size: tree.size(),
                peaks: tree.peaks().to_vec(),
            },
        }
    }

    fn fencing_token(&self) -> Option<u64> {
        self.token
    }

    fn checkpoint(&mut self) -> StoredCheckpoint {
        for label in self.touched.drain() {
            let tree = self
                .subjects
                .get(&label)
                .expect("a tree grown in this group is cached until the next");
            let head = Head {
                size: tree.size(),
                root: tree.root(),
            };
            self.directory = self.directory.with(label, head);
        }
        let body = Checkpoint {
            origin: self.signer.name().to_owned(),
            size: self.frontier.size(),
            root: self.frontier.root(),
        };
        let text = format!(
            "{}{}\n",
            body.to_text(),
            directory::extension_line(&self.directory.root_ref())
        );
        let note = self
            .signer
            .sign(&text)
            .expect("checkpoint text ends with a newline");
        self.note = Some(note.as_str().into());
        StoredCheckpoint {
            size: body.size,
            note,
        }
    }
}

/// Opens a checkpoint signed by the log's key, which must name `directory` (whose sizes must
/// add up to the checkpoint's).
pub(crate) fn open_checkpoint(
    note: &str,
    verifier: &candor_log::NoteVerifier,
    directory: &Directory,
) -> Result<Checkpoint, StoreError> {
    let opened = Checkpoint::open(note, verifier)
        .map_err(|_| StoreError::Corrupt("latest checkpoint does not verify"))?;
    let text = candor_log::note::signature_lines(note)
        .map_err(|_| StoreError::Corrupt("latest checkpoint does not parse"))?
        .text;
    let committed = directory::from_checkpoint_text(text).map_err(|_| {
        StoreError::Corrupt("the latest checkpoint has no directory: this log predates schema 3")
    })?;
    if committed != directory.root_ref() || committed.sum != opened.size {
        return Err(StoreError::Corrupt(
            "the customers' trees do not match the checkpoint's directory",
        ));
    }
    Ok(opened)
}

/// A customer's tree from its stored row, with the head the directory holds for it.
pub(crate) fn subject_tree(log: SubjectLog) -> Result<(Frontier, Head), StoreError> {
    let tree = Frontier::from_parts(log.size, log.peaks)
        .ok_or(StoreError::Corrupt("a customer's tree has the wrong peaks"))?;
    let head = Head {
        size: tree.size(),
        root: tree.root(),
    };
    Ok((tree, head))
}

/// A customer's tree with their directory label.
type LabelledTree = ([u8; 32], Frontier);

/// Every customer's tree and the directory of their heads, from their stored rows; they must
/// account for each of the log's `size` entries exactly once.
fn customers(
    subject_logs: Vec<SubjectLog>,
    size: u64,
) -> Result<(Vec<LabelledTree>, Directory), StoreError> {
    let mut subjects = Vec::with_capacity(subject_logs.len());
    let mut directory = Directory::default();
    for log in subject_logs {
        let label = log.label;
        let (tree, head) = subject_tree(log)?;
        directory = directory.with(label, head);
        subjects.push((label, tree));
    }
    if directory.root_ref().sum != size {
        return Err(StoreError::Corrupt(
            "the customers' trees do not add up to the log's size",
        ));
    }
    Ok((subjects, directory))
}

/// Who this process is when it claims the right to sequence the log, and for how long a claim
/// lasts without renewal (where the store is shared over a network).
#[derive(Debug, Clone)]
pub struct SequencerClaim {
    /// This process's name in the claim, unique among the nodes.
    pub holder: String,
    /// How long a claim lasts unrenewed; the writer renews it at a third of that when idle.
    pub ttl: std::time::Duration,
}

fn claim_within(store: &dyn LogStore, claim: &SequencerClaim) -> Result<u64, StoreError> {
    let deadline = std::time::Instant::now() + claim.ttl + std::time::Duration::from_secs(1);
    loop {
        match store.claim_sequencer(&claim.holder, claim.ttl)? {
            Claim::Granted { token } => return Ok(token),
            Claim::HeldBy { holder } if std::time::Instant::now() < deadline => {
                tracing::info!(%holder, "waiting for the sequencer claim to lapse");
                // Waiting out a claim's lifetime is the protocol, not a stand-in for a signal.
                std::thread::sleep((claim.ttl / 4).clamp(
                    std::time::Duration::from_millis(50),
                    std::time::Duration::from_millis(500),
                ));
            }
            Claim::HeldBy { holder } => return Err(StoreError::SequencerBusy { holder }),
        }
    }
}

/// A handle for submitting writes; cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    queue: mpsc::Sender<Job>,
    token: u64,
    // Set when the writer thread has ended: it lost its claim, or the vault is shutting down.
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

impl LogWriter {
    /// Loads the tree and the customers' trees from `store`, checks them against the stored
    /// checkpoint, and starts the writer.
    ///
    /// It first claims the right to sequence the log, waiting up to the claim's lifetime and a
    /// second more for a holder that stopped renewing (a crashed node) to lapse, and refuses to
    /// start if another holder still renews it.
    pub fn start(
        store: Arc<dyn LogStore>,
        signer: NoteSigner,
        labels: LabelKey,
        claim: &SequencerClaim,
        heads: Arc<watch::Sender<LogHead>>,
    ) -> Result<LogWriter, StoreError> {
        let token = claim_within(&*store, claim)?;
        LogWriter::start_claimed(store, signer, labels, claim, token, heads)
    }

    /// Starts the writer under a claim already granted with `token`, publishing each new head
    /// on `heads` (a node keeps one channel whichever role it has).
    pub fn start_claimed(
        store: Arc<dyn LogStore>,
        signer: NoteSigner,
        labels: LabelKey,
        claim: &SequencerClaim,
        token: u64,
        heads: Arc<watch::Sender<LogHead>>,
    ) -> Result<LogWriter, StoreError> {
        let mut sequencer = LogSequencer::new(Frontier::default(), signer, labels, Vec::new())?;
        sequencer.reload(&*store)?;
        sequencer.token = Some(token);
        heads.send_replace(sequencer.head());
        let (queue, jobs) = mpsc::channel::<Job>();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = LogWriter {
            queue,
            token,
            stopped: stopped.clone(),
        };
        let claim = claim.clone();
        std::thread::Builder::new()
            .name("candor-log-writer".into())
            .spawn(move || {
                run(store, sequencer, jobs, &heads, claim);
                stopped.store(true, std::sync::atomic::Ordering::SeqCst);
            })
            .expect("spawn log writer");
        Ok(writer)
    }

    /// Whether the writer has ended (it lost its claim to sequence the log): every later write
    /// fails with [`WriterError::Stopped`].
    pub fn stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The fencing token this writer commits under.
    pub fn token(&self) -> u64 {
        self.token
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

/// The writer's loop; returns when every handle is gone or the claim is lost (the writes still
/// queued are dropped uncommitted, and their callers told so).
fn run(
    store: Arc<dyn LogStore>,
    mut sequencer: LogSequencer,
    jobs: mpsc::Receiver<Job>,
    heads: &watch::Sender<LogHead>,
    claim: SequencerClaim,
) {
    loop {
        // Every commit renews the claim; an idle writer renews it at a third of its lifetime.
        let first = match jobs.recv_timeout(claim.ttl / 3) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let Some(token) = sequencer.token else {
                    continue;
                };
                match store.renew_sequencer(token) {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("the claim to sequence the log was released or taken over");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "renewing the sequencer claim failed"),
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) =
            group.into_iter().map(|j| (j.request, j.reply)).unzip();
        match commit_group(&*store, &requests, &mut sequencer) {
            Ok(outcomes) => {
                // Publish the new head before answering: whoever is told their write is durable
                // finds it in the head (a history read right after its own access shows it).
                heads.send_if_modified(|head| {
                    let grew = head.size != sequencer.frontier.size();
                    if grew {
                        *head = sequencer.head();
                    }
                    grew
                });
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    cause = ?std::error::Error::source(&e),
                    group = requests.len(),
                    "log commit failed"
                );
                sequencer.rollback();
                // The group may have landed all the same (the answer to COMMIT was lost): if the
                // store moved, follow it, or every later group would reuse its leaf indexes.
                let moved = store
                    .latest_checkpoint()
                    .map(|cp| cp.map_or(0, |c| c.size) != sequencer.frontier.size());
                if matches!(moved, Ok(true)) {
                    match sequencer.reload(&*store) {
                        Ok(()) => tracing::warn!(
                            size = sequencer.frontier.size(),
                            "the failed group had committed; reloaded the log from the store"
                        ),
                        Err(e) => tracing::error!(error = %e, "reloading the log failed"),
                    }
                }
                if matches!(e, StoreError::Fenced) {
                    // Deposed: nothing of this group committed, and no later group can.
                    for reply in replies {
                        let _ = reply.send(Err(WriterError::Store(StoreError::Fenced)));
                    }
                    return;
                }
                for reply in replies {
                    let _ = reply.send(Err(WriterError::CommitFailed));
                }
            }
        }
    }
}

/// Commits one group, running it again while the database aborts it under contention; the
/// sequencer is put back before each new attempt, so the group gets the same leaves.
fn commit_group(
    store: &dyn LogStore,
    requests: &[WriteRequest],
    sequencer: &mut LogSequencer,
) -> Result<Vec<RequestOutcome>, StoreError> {
    let mut attempt = 1;
    loop {
        sequencer.begin();
        sequencer.prepare(requests, store)?;
        match store.commit(requests, sequencer) {
            Err(StoreError::Contention { operation }) if attempt < COMMIT_ATTEMPTS => {
                tracing::warn!(
                    operation,
                    attempt,
                    "group aborted under contention; retrying"
                );
                sequencer.rollback();
                attempt += 1;
            }
            done => return done,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use candor_store::{EventRow, LogEntry, LogUpdate, SqliteStore, SubjectState};

    use super::*;

    /// Delegates to SQLite, but can report a commit as failed after it landed, as a database
    /// whose answer to `COMMIT` was lost does, or abort commits under contention, as a
    /// distributed SQL engine does.
    struct Faulty {
        inner: SqliteStore,
        lose_next: AtomicBool,
        abort_next: AtomicUsize,
    }

    impl Faulty {
        fn new(dir: &std::path::Path) -> Arc<Faulty> {
            Arc::new(Faulty {
                inner: SqliteStore::open(&dir.join("c.db"), &crate::schema()).unwrap(),
                lose_next: AtomicBool::new(false),
                abort_next: AtomicUsize::new(0),
            })
        }
    }

    impl LogStore for Faulty {
        fn subject(&self, s: &str) -> Result<SubjectState, StoreError> {
            self.inner.subject(s)
        }
        fn subject_events(
            &self,
            s: &str,
            leaves: std::ops::Range<u64>,
            limit: usize,
        ) -> Result<Vec<EventRow>, StoreError> {
            self.inner.subject_events(s, leaves, limit)
        }
        fn subject_event_count(&self, s: &str, below: u64) -> Result<u64, StoreError> {
            self.inner.subject_event_count(s, below)
        }
        fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
            self.inner.latest_checkpoint()
        }
        fn latest_witnessed(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
            self.inner.latest_witnessed()
        }
        fn record_witnessed(&self, c: &StoredCheckpoint) -> Result<bool, StoreError> {
            self.inner.record_witnessed(c)
        }
        fn subject_logs(&self) -> Result<Vec<SubjectLog>, StoreError> {
            self.inner.subject_logs()
        }
        fn subject_logs_of(&self, labels: &[[u8; 32]]) -> Result<Vec<SubjectLog>, StoreError> {
            self.inner.subject_logs_of(labels)
        }
        fn log_since(&self, from: u64) -> Result<Option<LogUpdate>, StoreError> {
            self.inner.log_since(from)
        }
        fn entries(&self, leaves: std::ops::Range<u64>) -> Result<Vec<[u8; 32]>, StoreError> {
            self.inner.entries(leaves)
        }
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<candor_log::Hash>, StoreError> {
            self.inner.read_hashes(indexes)
        }
        fn claim_sequencer(
            &self,
            holder: &str,
            ttl: std::time::Duration,
        ) -> Result<Claim, StoreError> {
            self.inner.claim_sequencer(holder, ttl)
        }
        fn renew_sequencer(&self, token: u64) -> Result<bool, StoreError> {
            self.inner.renew_sequencer(token)
        }
        fn release_sequencer(&self, token: u64) -> Result<(), StoreError> {
            self.inner.release_sequencer(token)
        }
        fn commit(
            &self,
            requests: &[WriteRequest],
            sequencer: &mut dyn Sequencer,
        ) -> Result<Vec<RequestOutcome>, StoreError> {
            if self
                .abort_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                // As the database does: the sequencer may have appended before the abort.
                sequencer.append("a", &[0xab; 32]);
                return Err(StoreError::Contention {
                    operation: "injected",
                });
            }
            let outcome = self.inner.commit(requests, sequencer)?;
            if self.lose_next.swap(false, Ordering::SeqCst) {
                return Err(StoreError::Corrupt(
                    "injected: committed, but the answer was lost",
                ));
            }
            Ok(outcome)
        }
    }

    /// An event about `subject`, who must exist.
    pub(crate) fn event(subject: &str, byte: u8) -> WriteRequest {
        WriteRequest {
            requires_active: Some(subject.into()),
            decided_on: None,
            once: None,
            changes: vec![],
            entries: vec![LogEntry {
                subject: subject.into(),
                commitment: [byte; 32],
                sealed_body: Some(vec![byte]),
            }],
        }
    }

    /// Creates `subject`.
    pub(crate) fn create(subject: &str) -> WriteRequest {
        WriteRequest {
            changes: vec![Arc::new(crate::subjects::CreateSubject {
                subject: subject.into(),
                wrapped_key: vec![1],
                key_epoch: Some(1),
                at: 1,
            })],
            ..Default::default()
        }
    }

    /// A writer over a faulty store, with a runtime to submit on.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<Faulty>,
        writer: LogWriter,
        verifier: candor_log::NoteVerifier,
        runtime: tokio::runtime::Runtime,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = Faulty::new(dir.path());
            let signer = NoteSigner::generate("test.example/log").unwrap();
            let verifier = signer.verifier();
            let labels = candor_crypto::RootKey::generate().directory_label_key();
            let claim = SequencerClaim {
                holder: "test".into(),
                ttl: std::time::Duration::from_secs(10),
            };
            let heads = Arc::new(watch::channel(LogHead::empty()).0);
            let writer = LogWriter::start(store.clone(), signer, labels, &claim, heads).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            Fixture {
                _dir: dir,
                store,
                writer,
                verifier,
                runtime,
            }
        }

        fn submit(&self, request: WriteRequest) -> Result<RequestOutcome, WriterError> {
            self.runtime.block_on(self.writer.submit(request))
        }

        fn fsck(&self) {
            crate::kernel::fsck::fsck(&*self.store, &self.verifier, None).unwrap();
        }
    }

    #[test]
    fn a_group_aborted_under_contention_is_run_again_with_the_same_leaves() {
        let f = Fixture::new();
        f.submit(create("a")).unwrap().unwrap();
        f.store.abort_next.store(2, Ordering::SeqCst);
        assert_eq!(f.submit(event("a", 1)).unwrap(), Ok(vec![0]));
        assert_eq!(
            f.store.abort_next.load(Ordering::SeqCst),
            0,
            "aborted twice"
        );
        assert_eq!(f.submit(event("a", 2)).unwrap(), Ok(vec![1]));
        f.fsck();

        f.store.abort_next.store(COMMIT_ATTEMPTS, Ordering::SeqCst);
        assert!(
            matches!(f.submit(event("a", 3)), Err(WriterError::CommitFailed)),
            "contention that does not pass fails the group"
        );
        assert_eq!(f.submit(event("a", 4)).unwrap(), Ok(vec![2]));
        f.fsck();
    }

    #[test]
    fn a_group_that_landed_despite_an_error_is_followed_not_overwritten() {
        let f = Fixture::new();
        let (store, submit) = (&f.store, |r| f.submit(r));
        submit(create("a")).unwrap().unwrap();
        assert_eq!(submit(event("a", 1)).unwrap(), Ok(vec![0]));
        store.lose_next.store(true, Ordering::SeqCst);
        assert!(matches!(
            submit(event("a", 2)),
            Err(WriterError::CommitFailed)
        ));
        // The lost group is in the store; the next one goes after it instead of colliding.
        assert_eq!(submit(event("a", 3)).unwrap(), Ok(vec![2]));
        assert_eq!(store.latest_checkpoint().unwrap().unwrap().size, 3);
        f.fsck();
    }

    /// A writer that keeps two customers' trees in memory writes exactly the log, trees and
    /// checkpoints of one that keeps them all, failed and retried groups included.
    #[test]
    fn a_bounded_cache_of_trees_writes_the_same_log_as_an_unbounded_one() {
        let signer = NoteSigner::generate("test.example/log").unwrap();
        let labels = candor_crypto::RootKey::generate().directory_label_key();
        let (dir_small, dir_all) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (small, all) = (Faulty::new(dir_small.path()), Faulty::new(dir_all.path()));
        let sequencer = || {
            LogSequencer::new(Frontier::default(), signer.clone(), labels.clone(), vec![]).unwrap()
        };
        let mut bounded = sequencer().with_tree_capacity(2);
        let mut unbounded = sequencer();
        let customers = ["a", "b", "c", "d", "e"];
        let creates: Vec<_> = customers.iter().map(|c| create(c)).collect();
        commit_group(&*small, &creates, &mut bounded).unwrap();
        commit_group(&*all, &creates, &mut unbounded).unwrap();
        for round in 0..40u8 {
            // Groups of one to three customers, in an order that keeps evicting.
            let group: Vec<_> = (0..=(round % 3))
                .map(|k| event(customers[(round as usize * 3 + k as usize * 2) % 5], round))
                .collect();
            if round % 7 == 3 {
                small.abort_next.store(COMMIT_ATTEMPTS, Ordering::SeqCst);
                assert!(commit_group(&*small, &group, &mut bounded).is_err());
                bounded.rollback();
            }
            commit_group(&*small, &group, &mut bounded).unwrap();
            commit_group(&*all, &group, &mut unbounded).unwrap();
            assert!(bounded.subjects.len() <= 3, "{}", bounded.subjects.len());
            assert_eq!(bounded.head().note, unbounded.head().note, "round {round}");
        }
        let rows = |store: &Faulty| {
            let mut logs = store.subject_logs().unwrap();
            logs.sort_by_key(|l| l.label);
            logs
        };
        assert_eq!(rows(&small), rows(&all));
        crate::kernel::fsck::fsck(&*small, &signer.verifier(), None).unwrap();
    }
}
