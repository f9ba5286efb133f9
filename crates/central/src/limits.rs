//! Rate limits of the public flow lookup (the API's `/lookup` and the web's form): a token
//! bucket per client address. On PostgreSQL the buckets are rows shared by every central replica
//! (`Store::take_token`), so a client gets one allowance whichever replica it reaches; on SQLite
//! (one process) they stay in memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use slicelab_store::{Allowance, Backend, Store, Take};

/// Lookups a client may burst, and how fast its allowance refills.
const BURST: f64 = 20.0;
const PER_SECOND: f64 = 1.0 / 3.0;
/// A bucket idle this long has refilled (`BURST / PER_SECOND` = 60 s): forgetting it is free.
pub(crate) const IDLE_FORGET_S: f64 = 120.0;

/// Where the lookup allowances live.
pub(crate) enum LookupLimiter {
    Local(TokenBuckets),
    Shared,
}

impl LookupLimiter {
    pub(crate) fn for_backend(b: Backend) -> LookupLimiter {
        match b {
            Backend::Sqlite => LookupLimiter::Local(TokenBuckets::default()),
            Backend::Postgres => LookupLimiter::Shared,
        }
    }

    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, LookupLimiter::Shared)
    }

    /// Takes one lookup from `ip`'s allowance; `Err(seconds to wait)` when spent.
    pub(crate) async fn take(&self, store: &Store, ip: IpAddr) -> Result<(), u64> {
        match self {
            LookupLimiter::Local(b) => b.take(ip),
            LookupLimiter::Shared => {
                let a = Allowance {
                    burst: BURST,
                    per_second: PER_SECOND,
                };
                match store
                    .take_token(&format!("lookup:{ip}"), unix_now(), a)
                    .await
                {
                    Ok(Take::Granted) => Ok(()),
                    Ok(Take::Refused { wait_s }) => Err(wait_s.ceil().max(1.0) as u64),
                    // The lookup itself needs the database; refusing here would add nothing.
                    Err(e) => {
                        tracing::warn!(error = %e, "lookup allowance unavailable; letting it through");
                        Ok(())
                    }
                }
            }
        }
    }
}

/// Fractional Unix seconds (the buckets refill continuously).
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Per-client token buckets in this process.
#[derive(Default)]
pub(crate) struct TokenBuckets {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl TokenBuckets {
    /// Takes one token for `ip`; `Err(seconds to wait)` when it has none.
    pub(crate) fn take(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut map) = self.buckets.lock() else {
            return Ok(());
        };
        if map.len() > 100_000 {
            // Forget idle clients rather than grow without bound.
            map.retain(|_, (t, at)| *t < BURST || now.duration_since(*at).as_secs() < 60);
        }
        let (tokens, at) = map.entry(ip).or_insert((BURST, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * PER_SECOND).min(BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / PER_SECOND).ceil() as u64)
        }
    }
}
