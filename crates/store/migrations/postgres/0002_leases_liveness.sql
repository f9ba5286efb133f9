-- Leases on reservable nodes, and node liveness (up/down) as central last judged it.
ALTER TABLE nodes ADD COLUMN reservable BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN status TEXT NOT NULL DEFAULT 'new';

CREATE TABLE leases (
    id        BIGSERIAL PRIMARY KEY,
    slice_id  BIGINT NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    node_id   BIGINT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    t_start   BIGINT NOT NULL,
    t_end     BIGINT NOT NULL
);
CREATE INDEX leases_node ON leases(node_id, t_start);
