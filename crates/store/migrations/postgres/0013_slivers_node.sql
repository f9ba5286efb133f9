-- A node's report reads and replaces that node's slivers: without this index each report scanned
-- every sliver of the platform (the primary key leads with slice_id), so 10,000 nodes reporting a
-- slice added to all of them cost 10,000 scans of 10,000 rows.
CREATE INDEX slivers_node ON slivers(node_id);
