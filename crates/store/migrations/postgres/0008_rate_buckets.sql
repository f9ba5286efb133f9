-- Allowances of rate-limited public endpoints (token buckets by client), shared by every central
-- replica on this database. UNLOGGED: no WAL per request; a crash of the server empties it, which
-- only gives every client a full allowance again.
CREATE UNLOGGED TABLE rate_buckets (
    key      TEXT PRIMARY KEY,
    tokens   DOUBLE PRECISION NOT NULL,
    at       DOUBLE PRECISION NOT NULL,
    granted  INTEGER NOT NULL
);
