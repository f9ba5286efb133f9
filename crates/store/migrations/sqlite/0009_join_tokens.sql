-- Single-use, expiring tokens a new machine exchanges for its node key (`slicelab node join`).
CREATE TABLE join_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX join_tokens_node ON join_tokens(node_id);
