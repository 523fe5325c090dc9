//! Candor's domain, with no IO: the data map (privacy as code), identifiers, consent, the access
//! decision and the events the log commits to.
//!
//! Architecture Invariant: nothing here touches the network, the disk, the clock or randomness.
//! Time is always an argument, so every decision is reproducible in a test.

pub mod consent;
pub mod datamap;
pub mod event;
pub mod ids;
pub mod policy;
pub mod taxonomy;

pub use consent::{ConsentAction, ConsentRecord, ConsentState, Evidence, consent_in_force};
pub use datamap::{
    Category, DataMap, DataMapError, DataMapErrors, LegalBasis, Purpose, Recipient, RecipientKind,
    SAMPLE_DATA_MAP,
};
pub use event::{Actor, EVENT_FORMAT_VERSION, Event, EventKind, FieldOutcome, ServiceRef};
pub use ids::{CategoryKey, IdError, KeyId, LeafIndex, PurposeId, RecipientId, SubjectId};
pub use policy::{
    Decision, Denial, FieldDecision, Permit, SUBJECT_ACCESS, decide, delegated_access,
    subject_access,
};
