-- Allowances of rate-limited public endpoints (token buckets by client). A SQLite central is one
-- process and keeps them in memory; the table exists so both databases have one schema.
CREATE TABLE rate_buckets (
    key      TEXT PRIMARY KEY,
    tokens   REAL NOT NULL,
    at       REAL NOT NULL,
    granted  INTEGER NOT NULL
);
