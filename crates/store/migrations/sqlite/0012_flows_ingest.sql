-- Nothing on SQLite: PostgreSQL's 0011 replaces the per-row foreign-key check on flows.node_id
-- and makes the flows' text columns compare byte-wise, as SQLite's always did.
SELECT 1;
