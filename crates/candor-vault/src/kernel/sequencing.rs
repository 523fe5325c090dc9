//! Which node sequences the log, and how every other node's writes reach it.
//!
//! One node alone (embedded SQLite, or PostgreSQL without peers) claims the log at start-up and
//! writes through its own [`LogWriter`]. In a cluster, several nodes share one database: the
//! node that wins the claim sequences, and the others (followers) hand their writes to it through
//! a [`Forwarder`], read everything else from the database, and follow the log's head there. A
//! follower tries to claim the log every third of the claim's lifetime, so when the sequencer
//! dies its claim lapses and a follower takes over within about one lifetime.
//!
//! A write is handed to the new sequencer only when it certainly did not commit
//! ([`WriterError::never_committed`]), so a takeover never duplicates an acknowledged event.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use candor_crypto::LabelKey;
use candor_log::NoteSigner;
use candor_log::directory::Directory;
use candor_store::{Claim, LogStore, LogUpdate, RequestOutcome, StoreError, WriteRequest};
use tokio::sync::watch;

use crate::Completeness;
use crate::kernel::writer::{
    LogHead, LogWriter, SequencerClaim, WriterError, open_checkpoint, subject_tree,
};

/// How many times a write is handed on when the sequencer changes under it.
const HANDOFFS: usize = 3;

/// Hands a write to the node that sequences the log (implemented over HTTP by `candor-http`).
pub trait Forwarder: Send + Sync {
    /// Sends `request` to `holder` (the sequencer's address, as it named itself in its claim) and
    /// returns the outcome of its commit.
    fn forward<'a>(
        &'a self,
        holder: &'a str,
        request: &'a WriteRequest,
    ) -> Pin<Box<dyn Future<Output = Result<RequestOutcome, WriterError>> + Send + 'a>>;

    /// Asks `holder` for the completeness proof of the customer labelled `label` against the
    /// witnessed checkpoint of `size` (see `Vault::witnessed_completeness`); `None` if it has
    /// none or cannot be asked.
    fn completeness<'a>(
        &'a self,
        holder: &'a str,
        label: [u8; 32],
        size: u64,
    ) -> Pin<Box<dyn Future<Output = Option<Completeness>> + Send + 'a>>;
}

enum Role {
    Sequencer(LogWriter),
    Follower { holder: String },
}

/// What a node needs to sequence the log should it win the claim.
struct Candidate {
    signer: NoteSigner,
    labels: LabelKey,
    claim: SequencerClaim,
    forwarder: Arc<dyn Forwarder>,
}

/// This node's part in sequencing the log.
pub struct Sequencing {
    store: Arc<dyn LogStore>,
    role: Mutex<Role>,
    // Bumped on every change of role or of sequencer, so a write waiting on one can resume.
    changes: watch::Sender<u64>,
    // The log's head as this node knows it: published by its writer, or followed in the store.
    heads: Arc<watch::Sender<LogHead>>,
    // In a cluster: how to sequence, or forward; `None` for a node alone.
    candidate: Option<Candidate>,
    // A follower's view of the log, refreshed from the store.
    followed: Mutex<Followed>,
    // Set on shutdown: the node no longer campaigns for the claim it gave up.
    retired: AtomicBool,
}

impl Sequencing {
    /// A node alone: it claims the log (waiting out a crashed holder's claim) and sequences it,
    /// or fails with [`StoreError::SequencerBusy`].
    pub fn alone(
        store: Arc<dyn LogStore>,
        signer: NoteSigner,
        labels: LabelKey,
        claim: &SequencerClaim,
    ) -> Result<Sequencing, StoreError> {
        let heads = Arc::new(watch::channel(LogHead::empty()).0);
        let writer = LogWriter::start(store.clone(), signer, labels, claim, heads.clone())?;
        Ok(Sequencing {
            store,
            role: Mutex::new(Role::Sequencer(writer)),
            changes: watch::channel(0).0,
            heads,
            candidate: None,
            followed: Mutex::new(Followed::default()),
            retired: AtomicBool::new(false),
        })
    }

    /// A node of a cluster: it sequences if it wins the claim, and otherwise follows the node
    /// that holds it, handing its writes there with `forwarder`. A background thread keeps
    /// trying to claim the log, so this node takes over when the sequencer's claim lapses.
    pub fn in_cluster(
        store: Arc<dyn LogStore>,
        signer: NoteSigner,
        labels: LabelKey,
        claim: &SequencerClaim,
        forwarder: Arc<dyn Forwarder>,
    ) -> Result<Arc<Sequencing>, StoreError> {
        let sequencing = Arc::new(Sequencing {
            store,
            role: Mutex::new(Role::Follower {
                holder: String::new(),
            }),
            changes: watch::channel(0).0,
            heads: Arc::new(watch::channel(LogHead::empty()).0),
            candidate: Some(Candidate {
                signer,
                labels,
                claim: claim.clone(),
                forwarder,
            }),
            followed: Mutex::new(Followed::default()),
            retired: AtomicBool::new(false),
        });
        sequencing.campaign()?;
        if !sequencing.is_sequencer() {
            sequencing.follow()?;
        }
        let (weak, ttl) = (Arc::downgrade(&sequencing), claim.ttl);
        std::thread::Builder::new()
            .name("candor-sequencer-claim".into())
            .spawn(move || keep_campaigning(weak, ttl))
            .expect("spawn the claim thread");
        Ok(sequencing)
    }

    /// Whether this node sequences the log now.
    pub fn is_sequencer(&self) -> bool {
        matches!(&*self.role.lock().expect("role poisoned"), Role::Sequencer(w) if !w.stopped())
    }

    /// Follows the log's head as this node knows it.
    pub fn heads(&self) -> watch::Receiver<LogHead> {
        self.heads.subscribe()
    }

    /// The log's latest head: the writer's own on the sequencer; read from the store on a
    /// follower, so it shows what other nodes committed.
    pub fn head(&self) -> Result<LogHead, StoreError> {
        if self.candidate.is_some() && !self.is_sequencer() {
            self.follow()?;
        }
        Ok(self.heads.borrow().clone())
    }

    /// On a follower, the sequencer's completeness proof for `label` at the witnessed `size`.
    /// Blocks; call it from a blocking thread inside the server's runtime (history does).
    pub fn completeness_from_sequencer(&self, label: [u8; 32], size: u64) -> Option<Completeness> {
        let candidate = self.candidate.as_ref()?;
        let holder = match &*self.role.lock().expect("role poisoned") {
            Role::Follower { holder } if !holder.is_empty() => holder.clone(),
            _ => return None,
        };
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let forwarder = candidate.forwarder.clone();
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = answer.send(forwarder.completeness(&holder, label, size).await);
        });
        answered.recv().ok().flatten()
    }

    /// Gives up the claim, if this node holds it, and stops campaigning (on shutdown).
    pub fn release(&self) -> Result<(), StoreError> {
        self.retired.store(true, Ordering::SeqCst);
        match &*self.role.lock().expect("role poisoned") {
            Role::Sequencer(writer) => self.store.release_sequencer(writer.token()),
            Role::Follower { .. } => Ok(()),
        }
    }

    /// Commits `request` through the log's sequencer, wherever it is, and waits until it is
    /// durable. A write that certainly did not commit is handed to the next sequencer when the
    /// sequencer changes under it.
    pub async fn submit(&self, request: WriteRequest) -> Result<RequestOutcome, WriterError> {
        let Some(candidate) = &self.candidate else {
            return self.local()?.submit(request).await;
        };
        let mut handoffs = 0;
        loop {
            let mut changed = self.changes.subscribe();
            let route = match &*self.role.lock().expect("role poisoned") {
                Role::Sequencer(writer) if !writer.stopped() => Ok(writer.clone()),
                Role::Sequencer(_) => Err(None),
                Role::Follower { holder } if holder.is_empty() => Err(None),
                Role::Follower { holder } => Err(Some(holder.clone())),
            };
            let outcome = match route {
                Ok(writer) => writer.submit(request.clone()).await,
                Err(Some(holder)) => candidate.forwarder.forward(&holder, &request).await,
                Err(None) => Err(WriterError::SequencerUnreachable),
            };
            match outcome {
                Err(e) if e.never_committed() && handoffs < HANDOFFS => {
                    handoffs += 1;
                    tracing::warn!(error = %e, "the sequencer is changing; handing the write on");
                    // A change of sequencer takes at most a claim's lifetime and a renewal.
                    let wait = candidate.claim.ttl * 2;
                    let _ = tokio::time::timeout(wait, changed.changed()).await;
                }
                done => return done,
            }
        }
    }

    /// Commits `request` here, only if this node sequences the log: what a follower's
    /// forwarded write runs on the sequencer. Never forwards again.
    pub async fn submit_here(&self, request: WriteRequest) -> Result<RequestOutcome, WriterError> {
        self.local()?.submit(request).await
    }

    fn local(&self) -> Result<LogWriter, WriterError> {
        match &*self.role.lock().expect("role poisoned") {
            Role::Sequencer(writer) if !writer.stopped() => Ok(writer.clone()),
            _ => Err(WriterError::NotSequencer),
        }
    }

    #[cfg(test)]
    fn role_is_follower(&self) -> bool {
        matches!(
            &*self.role.lock().expect("role poisoned"),
            Role::Follower { .. }
        )
    }

    /// The token this node sequences under, if it does.
    pub fn token(&self) -> Option<u64> {
        match &*self.role.lock().expect("role poisoned") {
            Role::Sequencer(writer) => Some(writer.token()),
            Role::Follower { .. } => None,
        }
    }

    /// One round of the claim protocol: a follower tries to claim the log; a sequencer whose
    /// writer stopped (it lost the claim) becomes a follower and tries again at once.
    fn campaign(&self) -> Result<(), StoreError> {
        let candidate = self
            .candidate
            .as_ref()
            .expect("only a cluster node campaigns");
        if self.retired.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut role = self.role.lock().expect("role poisoned");
        if let Role::Sequencer(writer) = &*role {
            if !writer.stopped() {
                return Ok(());
            }
            tracing::warn!("this node no longer sequences the log");
            *role = Role::Follower {
                holder: String::new(),
            };
            self.changes.send_modify(|n| *n += 1);
        }
        let claim = &candidate.claim;
        match self.store.claim_sequencer(&claim.holder, claim.ttl)? {
            Claim::Granted { token } => {
                let writer = LogWriter::start_claimed(
                    self.store.clone(),
                    candidate.signer.clone(),
                    candidate.labels.clone(),
                    claim,
                    token,
                    self.heads.clone(),
                );
                match writer {
                    Ok(writer) => {
                        tracing::info!(token, "this node now sequences the log");
                        *role = Role::Sequencer(writer);
                    }
                    Err(e) => {
                        // Let another node try: a claim this node cannot use must not linger.
                        let _ = self.store.release_sequencer(token);
                        return Err(e);
                    }
                }
            }
            Claim::HeldBy { holder } => {
                if matches!(&*role, Role::Follower { holder: known } if *known == holder) {
                    return Ok(());
                }
                tracing::info!(%holder, "following the node that sequences the log");
                *role = Role::Follower { holder };
            }
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Brings this follower's head up to the store's latest checkpoint.
    fn follow(&self) -> Result<(), StoreError> {
        let candidate = self
            .candidate
            .as_ref()
            .expect("only a cluster node follows");
        let mut followed = self.followed.lock().expect("follower state poisoned");
        let Some(update) = self.store.log_since(followed.size)? else {
            return Ok(());
        };
        if update.checkpoint.size == followed.size && followed.note.is_some() {
            return Ok(());
        }
        let verifier = candidate.signer.verifier();
        if let Err(e) = followed.apply(update, &verifier) {
            // A gap in what was followed (a log rebuilt under this node): start again from all
            // of the customers' trees.
            tracing::warn!(error = %e, "following the log failed; reading it whole");
            let whole = self
                .store
                .log_since(0)?
                .ok_or(StoreError::Corrupt("the log emptied under a follower"))?;
            *followed = Followed::default();
            followed.apply(whole, &verifier)?;
        }
        let head = followed.head();
        self.heads.send_if_modified(|known| {
            let newer = known.size < head.size || known.note.is_none();
            if newer {
                *known = head;
            }
            newer
        });
        Ok(())
    }
}

/// Keeps campaigning while the node lives: every third of the claim's lifetime, as the
/// sequencer renews it, so a lapsed claim is taken over within about one lifetime.
fn keep_campaigning(node: Weak<Sequencing>, ttl: Duration) {
    loop {
        // The claim protocol runs on the lease's clock; this pause is its period, not a wait
        // for some other event.
        std::thread::sleep(ttl / 3);
        let Some(node) = node.upgrade() else { return };
        if let Err(e) = node.campaign() {
            tracing::warn!(error = %e, "claiming the log failed");
        }
    }
}

/// A follower's view of the log: the latest checkpoint it read and the directory of the
/// customers' trees that checkpoint commits to.
#[derive(Default)]
struct Followed {
    size: u64,
    note: Option<Arc<str>>,
    directory: Directory,
}

impl Followed {
    /// Takes in the trees that grew and the checkpoint they belong to; the checkpoint must be
    /// signed by the log and commit to exactly the directory they make.
    fn apply(
        &mut self,
        update: LogUpdate,
        verifier: &candor_log::NoteVerifier,
    ) -> Result<(), StoreError> {
        let mut directory = self.directory.clone();
        for log in update.subject_logs {
            let label = log.label;
            directory = directory.with(label, subject_tree(log)?.1);
        }
        let note = update.checkpoint.note;
        let opened = open_checkpoint(&note, verifier, &directory)?;
        self.size = opened.size;
        self.note = Some(note.into());
        self.directory = directory;
        Ok(())
    }

    fn head(&self) -> LogHead {
        LogHead {
            size: self.size,
            note: self.note.clone(),
            directory: self.directory.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use candor_store::SqliteStore;

    use super::*;
    use crate::kernel::writer::tests::{create, event};

    /// Hands writes to whichever node of `nodes` sequences, in process.
    #[derive(Default)]
    struct InProcess {
        nodes: Mutex<Vec<Weak<Sequencing>>>,
    }

    impl Forwarder for InProcess {
        fn forward<'a>(
            &'a self,
            _holder: &'a str,
            request: &'a WriteRequest,
        ) -> Pin<Box<dyn Future<Output = Result<RequestOutcome, WriterError>> + Send + 'a>>
        {
            let target = self
                .nodes
                .lock()
                .unwrap()
                .iter()
                .filter_map(Weak::upgrade)
                .find(|n| n.is_sequencer());
            Box::pin(async move {
                match target {
                    Some(node) => node.submit_here(request.clone()).await,
                    None => Err(WriterError::SequencerUnreachable),
                }
            })
        }

        fn completeness<'a>(
            &'a self,
            _holder: &'a str,
            _label: [u8; 32],
            _size: u64,
        ) -> Pin<Box<dyn Future<Output = Option<Completeness>> + Send + 'a>> {
            Box::pin(async { None })
        }
    }

    /// Two nodes on one database (two SQLite connections to one file, whose claim is a file
    /// lock): one sequences, the other hands it writes and follows; when the first gives the
    /// claim up, the second takes over, and the first, deposed, hands its writes over in turn.
    #[test]
    fn a_follower_forwards_follows_and_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let signer = NoteSigner::generate("test.example/log").unwrap();
        let labels = candor_crypto::RootKey::generate().directory_label_key();
        let forwarder = Arc::new(InProcess::default());
        let node = |name: &str| {
            let claim = SequencerClaim {
                holder: name.into(),
                // Long enough that the background campaign never runs during the test.
                ttl: Duration::from_secs(600),
            };
            let store: Arc<dyn LogStore> =
                Arc::new(SqliteStore::open(&path, &crate::schema()).unwrap());
            let node = Sequencing::in_cluster(
                store,
                signer.clone(),
                labels.clone(),
                &claim,
                forwarder.clone(),
            )
            .unwrap();
            forwarder.nodes.lock().unwrap().push(Arc::downgrade(&node));
            node
        };
        let (a, b) = (node("a"), node("b"));
        assert!(a.is_sequencer() && !b.is_sequencer());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(b.submit(create("s"))).unwrap().unwrap();
        assert_eq!(
            runtime.block_on(b.submit(event("s", 1))).unwrap(),
            Ok(vec![0])
        );
        assert_eq!(
            runtime.block_on(a.submit(event("s", 2))).unwrap(),
            Ok(vec![1])
        );
        assert_eq!(
            b.head().unwrap().size,
            2,
            "the follower sees what the sequencer wrote"
        );
        assert_eq!(
            b.head().unwrap().directory.root_ref(),
            a.head().unwrap().directory.root_ref()
        );
        assert!(matches!(
            runtime.block_on(b.submit_here(event("s", 3))),
            Err(WriterError::NotSequencer)
        ));

        // `a` gives the claim up; `b` takes it over at its next campaign.
        a.store.release_sequencer(a.token().unwrap()).unwrap();
        b.campaign().unwrap();
        assert!(b.is_sequencer());
        // `a`'s writer finds itself fenced at its next commit; that write never committed, so
        // it is handed to `b` once `a` knows it follows.
        let handed_on = std::thread::scope(|s| {
            let waiting = s.spawn(|| runtime.block_on(a.submit(event("s", 4))));
            // The claim protocol's round, run by hand instead of by the background thread.
            while !a.role_is_follower() {
                a.campaign().unwrap();
                std::thread::yield_now();
            }
            waiting.join().unwrap()
        });
        assert_eq!(handed_on.unwrap(), Ok(vec![2]));
        assert!(!a.is_sequencer());
        assert_eq!(
            runtime.block_on(b.submit(event("s", 5))).unwrap(),
            Ok(vec![3])
        );
        assert_eq!(a.head().unwrap().size, 4, "the deposed node follows");
        crate::kernel::fsck::fsck(&*b.store, &signer.verifier(), None).unwrap();
    }
}
