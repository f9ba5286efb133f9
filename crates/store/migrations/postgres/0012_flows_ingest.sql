-- Flow ingest at >= 150k records/s (store_flows, one UNNEST insert per batch).
--
-- The per-row foreign-key check on flows.node_id (an RI trigger firing a lookup for every row:
-- a third of the insert's cost) is replaced by the ingest transaction itself, which locks the
-- node's row (SELECT ... FOR UPDATE) before inserting its flows, and by a trigger that deletes a
-- node's flows with the node (what ON DELETE CASCADE did). Flows are written nowhere else.
ALTER TABLE flows DROP CONSTRAINT flows_node_id_fkey;
CREATE FUNCTION flows_node_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM flows WHERE node_id = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER flows_node_deleted BEFORE DELETE ON nodes
    FOR EACH ROW EXECUTE FUNCTION flows_node_deleted();
-- Byte-wise comparison for the indexed text columns (as SQLite compares): index inserts compare
-- with memcmp rather than the locale's strcoll. Both are only ever matched for equality.
ALTER TABLE flows ALTER COLUMN dst TYPE TEXT COLLATE "C",
    ALTER COLUMN slice_name TYPE TEXT COLLATE "C";
