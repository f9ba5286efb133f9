-- Leases on reservable nodes, and node liveness (up/down) as central last judged it.
ALTER TABLE nodes ADD COLUMN reservable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN status TEXT NOT NULL DEFAULT 'new';

CREATE TABLE leases (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    slice_id  INTEGER NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    node_id   INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    t_start   INTEGER NOT NULL,
    t_end     INTEGER NOT NULL
);
CREATE INDEX leases_node ON leases(node_id, t_start);
