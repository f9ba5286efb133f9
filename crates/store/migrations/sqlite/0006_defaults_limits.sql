-- The default allocation: platform-wide values (node_id 0) and per-node overrides of resource
-- tags, for slivers whose slice has no tag of that name. Seeded with the built-in defaults
-- (model::defaults::BUILTIN; README, "Default allocation").
CREATE TABLE default_tags (
    node_id     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (node_id, name)
);
INSERT INTO default_tags (node_id, name, value) VALUES
    (0, 'cpu_share', '1'),
    (0, 'mem_max', '1G'),
    (0, 'pids_max', '1024'),
    (0, 'disk_max', '10G'),
    (0, 'net_max_kbyte', '10546875');
-- How often each sliver hit its memory, pids and disk limits, as its node last reported
-- (JSON of model::LimitCounts); an increase is a sliver.limit_hit event.
ALTER TABLE slivers ADD COLUMN limits TEXT;
-- Packets a sliver sent with a forged source address, dropped on its node.
ALTER TABLE usage ADD COLUMN spoofed_pkts INTEGER NOT NULL DEFAULT 0;
