-- The registry. Booleans are INTEGER 0/1 and times are Unix seconds (INTEGER) in both backends,
-- so one query text and one row decoder serve SQLite and PostgreSQL.
CREATE TABLE sites (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    login_base  TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    url         TEXT NOT NULL DEFAULT '',
    max_slices  INTEGER NOT NULL,
    latitude    REAL,
    longitude   REAL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    created     INTEGER NOT NULL
);

CREATE TABLE persons (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    email          TEXT NOT NULL UNIQUE,
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    password_hash  TEXT,
    roles          TEXT NOT NULL,
    enabled        INTEGER NOT NULL DEFAULT 1,
    created        INTEGER NOT NULL
);

CREATE TABLE person_sites (
    person_id  INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    site_id    INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    PRIMARY KEY (person_id, site_id)
);
CREATE INDEX person_sites_site ON person_sites(site_id);

CREATE TABLE keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id  INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    created    INTEGER NOT NULL
);
CREATE INDEX keys_person ON keys(person_id);

CREATE TABLE nodes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname      TEXT NOT NULL UNIQUE,
    site_id       INTEGER NOT NULL REFERENCES sites(id) ON DELETE RESTRICT,
    boot_state    TEXT NOT NULL,
    cpu_cores     INTEGER NOT NULL,
    mem_mb        INTEGER NOT NULL,
    disk_gb       INTEGER NOT NULL,
    region        TEXT NOT NULL DEFAULT '',
    key_hash      TEXT NOT NULL UNIQUE,
    last_contact  INTEGER,
    health        TEXT,
    report_seq    INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL
);
CREATE INDEX nodes_site ON nodes(site_id);

CREATE TABLE slices (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    site_id      INTEGER NOT NULL REFERENCES sites(id) ON DELETE RESTRICT,
    description  TEXT NOT NULL DEFAULT '',
    url          TEXT NOT NULL DEFAULT '',
    expires      INTEGER NOT NULL,
    enabled      INTEGER NOT NULL DEFAULT 1,
    created      INTEGER NOT NULL
);
CREATE INDEX slices_site ON slices(site_id);

CREATE TABLE slice_persons (
    slice_id   INTEGER NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    person_id  INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    PRIMARY KEY (slice_id, person_id)
);
CREATE INDEX slice_persons_person ON slice_persons(person_id);

CREATE TABLE slice_nodes (
    slice_id  INTEGER NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    node_id   INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    PRIMARY KEY (slice_id, node_id)
);
CREATE INDEX slice_nodes_node ON slice_nodes(node_id);

CREATE TABLE slice_tags (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    slice_id  INTEGER NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    node_id   INTEGER REFERENCES nodes(id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    value     TEXT NOT NULL
);
CREATE UNIQUE INDEX slice_tags_unique ON slice_tags(slice_id, name, COALESCE(node_id, 0));

CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id   INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    created     INTEGER NOT NULL,
    expires     INTEGER NOT NULL
);
CREATE INDEX tokens_person ON tokens(person_id);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    time         INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    object_type  TEXT NOT NULL,
    object_id    INTEGER NOT NULL,
    object_name  TEXT NOT NULL,
    site_id      INTEGER,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_time ON events(time);
CREATE INDEX events_object ON events(object_type, object_id);

-- Sliver states as last reported by their node.
CREATE TABLE slivers (
    slice_id  INTEGER NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    node_id   INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    state     TEXT NOT NULL,
    message   TEXT NOT NULL DEFAULT '',
    address   TEXT,
    updated   INTEGER NOT NULL,
    PRIMARY KEY (slice_id, node_id)
);
