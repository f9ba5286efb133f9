-- Single-use, expiring tokens a new machine exchanges for its node key (`slicelab node join`).
CREATE TABLE join_tokens (
    id BIGSERIAL PRIMARY KEY,
    node_id BIGINT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX join_tokens_node ON join_tokens(node_id);
