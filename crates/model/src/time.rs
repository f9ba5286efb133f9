//! Time in the registry is Unix seconds (`i64`), UTC. Callers pass `now`; nothing here reads a clock.

pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;
pub const WEEK: i64 = 7 * DAY;

/// A new slice lives this long unless renewed (PlanetLab: 4 weeks).
pub const SLICE_DEFAULT_LIFETIME: i64 = 4 * WEEK;
/// A slice can be renewed at most this far into the future (PlanetLab: 8 weeks).
pub const SLICE_MAX_AHEAD: i64 = 8 * WEEK;

/// A node whose manager has not talked to central for this long is considered down.
pub const NODE_LIVE_WINDOW: i64 = 2 * MINUTE;
