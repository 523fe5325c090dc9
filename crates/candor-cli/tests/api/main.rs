//! Black-box tests: each starts the real `candor` binary on a fresh directory.
//! One test binary, many modules, so the suite links once.

mod cluster;
mod connections;
mod consent_race;
mod erasure;
mod errors;
mod helpers;
mod idp;
mod keys;
mod log;
mod paging;
mod postgres;
mod schema;
mod security;
mod signin_email;
mod story;
