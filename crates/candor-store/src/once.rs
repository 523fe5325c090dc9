//! One-time claims: a request that carries a [`OnceClaim`] applies only if no earlier request
//! made the same claim, so a sign-in nonce or link redeemed twice, even by two nodes at once,
//! yields one session. The kernel keeps the claims because a slice's own changes cannot refuse a
//! request (they apply unconditionally once its precondition holds).

use rusqlite::params;

use crate::{Tx, TxError};

/// A claim that may be made once: the digest of a one-time secret, kept until it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnceClaim {
    /// A digest of the one-time secret (never the secret).
    pub digest: [u8; 32],
    /// Unix seconds after which the secret is refused anyway, so the claim can be forgotten.
    pub expires_at: i64,
    /// Unix seconds when it is made: claims that expired before are dropped.
    pub now: i64,
}

/// Makes the claim inside the group's transaction; `false` if it was made before.
pub(crate) fn claim(tx: &mut Tx<'_>, once: &OnceClaim) -> Result<bool, TxError> {
    let digest = &once.digest[..];
    Ok(match tx {
        Tx::Sqlite(c) => {
            c.prepare_cached("DELETE FROM once_claims WHERE expires_at < ?1")?
                .execute([once.now])?;
            c.prepare_cached(
                "INSERT INTO once_claims (digest, expires_at) VALUES (?1, ?2)
                 ON CONFLICT (digest) DO NOTHING",
            )?
            .execute(params![digest, once.expires_at])?
                == 1
        }
        Tx::Postgres(c) => {
            c.execute(
                "DELETE FROM once_claims WHERE expires_at < $1",
                &[&once.now],
            )?;
            c.execute(
                "INSERT INTO once_claims (digest, expires_at) VALUES ($1, $2)
                 ON CONFLICT (digest) DO NOTHING",
                &[&digest, &once.expires_at],
            )? == 1
        }
    })
}
