-- Usage samples: raw for a day, then rolled up into hourly rows (resolution 3600).
ALTER TABLE nodes ADD COLUMN usage_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE usage (
    node_id     INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    slice_id    INTEGER REFERENCES slices(id) ON DELETE SET NULL,
    -- Node totals have no slice; a deleted slice's rows keep counting in its node's history.
    is_node     INTEGER NOT NULL,
    t           INTEGER NOT NULL,
    resolution  INTEGER NOT NULL,
    cpu_s       REAL NOT NULL,
    mem_bytes   INTEGER NOT NULL,
    disk_bytes  INTEGER NOT NULL,
    tx_bytes    INTEGER NOT NULL,
    rx_bytes    INTEGER NOT NULL,
    tx_pkts     INTEGER NOT NULL,
    rx_pkts     INTEGER NOT NULL
);
CREATE INDEX usage_time ON usage(t);
CREATE INDEX usage_slice_time ON usage(slice_id, t);
CREATE INDEX usage_node_time ON usage(node_id, is_node, t);
