-- A site's cap on the total egress of a node's slivers, bits/s (model::Node::bwlimit); NULL: none.
ALTER TABLE nodes ADD COLUMN bwlimit INTEGER;
