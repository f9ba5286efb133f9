-- Usage samples: raw for a day, then rolled up into hourly rows (resolution 3600).
ALTER TABLE nodes ADD COLUMN usage_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE usage (
    node_id     BIGINT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    slice_id    BIGINT REFERENCES slices(id) ON DELETE SET NULL,
    -- Node totals have no slice; a deleted slice's rows keep counting in its node's history.
    is_node     BIGINT NOT NULL,
    t           BIGINT NOT NULL,
    resolution  BIGINT NOT NULL,
    cpu_s       DOUBLE PRECISION NOT NULL,
    mem_bytes   BIGINT NOT NULL,
    disk_bytes  BIGINT NOT NULL,
    tx_bytes    BIGINT NOT NULL,
    rx_bytes    BIGINT NOT NULL,
    tx_pkts     BIGINT NOT NULL,
    rx_pkts     BIGINT NOT NULL
);
CREATE INDEX usage_time ON usage(t);
CREATE INDEX usage_slice_time ON usage(slice_id, t);
CREATE INDEX usage_node_time ON usage(node_id, is_node, t);
