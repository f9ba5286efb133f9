-- Flow ingest at >= 150k records/s: two indexes on flows instead of three (one B-tree insert
-- fewer per row, a quarter of a COPY's server time). The upsert key and the public lookup's index
-- become one, flows_key (node_id, dst, t_start, ct_id). A flow is still (node, conntrack id,
-- start): its remote address is part of its conntrack tuple, so the longer key names the same
-- flows (unique before, unique now), and its first three columns are what the lookup (by node,
-- remote and time) reads. SQLite's 0014 does the same.
CREATE UNIQUE INDEX flows_key_lookup ON flows(node_id, dst, t_start, ct_id);
DROP INDEX flows_key;
DROP INDEX flows_remote;
ALTER INDEX flows_key_lookup RENAME TO flows_key;
