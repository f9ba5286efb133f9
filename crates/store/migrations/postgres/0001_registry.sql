-- The registry. Booleans are BIGINT 0/1 and times are Unix seconds (BIGINT) in both backends,
-- so one query text and one row decoder serve SQLite and PostgreSQL.
CREATE TABLE sites (
    id          BIGSERIAL PRIMARY KEY,
    login_base  TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    url         TEXT NOT NULL DEFAULT '',
    max_slices  BIGINT NOT NULL,
    latitude    DOUBLE PRECISION,
    longitude   DOUBLE PRECISION,
    enabled     BIGINT NOT NULL DEFAULT 1,
    created     BIGINT NOT NULL
);

CREATE TABLE persons (
    id             BIGSERIAL PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    password_hash  TEXT,
    roles          TEXT NOT NULL,
    enabled        BIGINT NOT NULL DEFAULT 1,
    created        BIGINT NOT NULL
);

CREATE TABLE person_sites (
    person_id  BIGINT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    site_id    BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    PRIMARY KEY (person_id, site_id)
);
CREATE INDEX person_sites_site ON person_sites(site_id);

CREATE TABLE keys (
    id         BIGSERIAL PRIMARY KEY,
    person_id  BIGINT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    created    BIGINT NOT NULL
);
CREATE INDEX keys_person ON keys(person_id);

CREATE TABLE nodes (
    id            BIGSERIAL PRIMARY KEY,
    hostname      TEXT NOT NULL UNIQUE,
    site_id       BIGINT NOT NULL REFERENCES sites(id) ON DELETE RESTRICT,
    boot_state    TEXT NOT NULL,
    cpu_cores     BIGINT NOT NULL,
    mem_mb        BIGINT NOT NULL,
    disk_gb       BIGINT NOT NULL,
    region        TEXT NOT NULL DEFAULT '',
    key_hash      TEXT NOT NULL UNIQUE,
    last_contact  BIGINT,
    health        TEXT,
    report_seq    BIGINT NOT NULL DEFAULT 0,
    created       BIGINT NOT NULL
);
CREATE INDEX nodes_site ON nodes(site_id);

CREATE TABLE slices (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    site_id      BIGINT NOT NULL REFERENCES sites(id) ON DELETE RESTRICT,
    description  TEXT NOT NULL DEFAULT '',
    url          TEXT NOT NULL DEFAULT '',
    expires      BIGINT NOT NULL,
    enabled      BIGINT NOT NULL DEFAULT 1,
    created      BIGINT NOT NULL
);
CREATE INDEX slices_site ON slices(site_id);

CREATE TABLE slice_persons (
    slice_id   BIGINT NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    person_id  BIGINT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    PRIMARY KEY (slice_id, person_id)
);
CREATE INDEX slice_persons_person ON slice_persons(person_id);

CREATE TABLE slice_nodes (
    slice_id  BIGINT NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    node_id   BIGINT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    PRIMARY KEY (slice_id, node_id)
);
CREATE INDEX slice_nodes_node ON slice_nodes(node_id);

CREATE TABLE slice_tags (
    id        BIGSERIAL PRIMARY KEY,
    slice_id  BIGINT NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    node_id   BIGINT REFERENCES nodes(id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    value     TEXT NOT NULL
);
CREATE UNIQUE INDEX slice_tags_unique ON slice_tags(slice_id, name, COALESCE(node_id, 0));

CREATE TABLE tokens (
    id          BIGSERIAL PRIMARY KEY,
    person_id   BIGINT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    created     BIGINT NOT NULL,
    expires     BIGINT NOT NULL
);
CREATE INDEX tokens_person ON tokens(person_id);

CREATE TABLE events (
    id           BIGSERIAL PRIMARY KEY,
    time         BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    object_type  TEXT NOT NULL,
    object_id    BIGINT NOT NULL,
    object_name  TEXT NOT NULL,
    site_id      BIGINT,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_time ON events(time);
CREATE INDEX events_object ON events(object_type, object_id);

-- Sliver states as last reported by their node.
CREATE TABLE slivers (
    slice_id  BIGINT NOT NULL REFERENCES slices(id) ON DELETE CASCADE,
    node_id   BIGINT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    state     TEXT NOT NULL,
    message   TEXT NOT NULL DEFAULT '',
    address   TEXT,
    updated   BIGINT NOT NULL,
    PRIMARY KEY (slice_id, node_id)
);
