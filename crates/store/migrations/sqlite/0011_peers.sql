-- Federation: peer authorities (model::peer). A peer's sites and nodes, and the slices it runs
-- here, hang off one site row per peer whose login_base is the peer's name (`sites.peer_id`), so
-- a foreign slice is `<peer>_<its name at home>` and no local site can take that prefix.
CREATE TABLE peers (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    ca_fingerprint  TEXT,
    secret          TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'active',
    reason          TEXT NOT NULL DEFAULT '',
    max_slivers     INTEGER NOT NULL,
    -- Guarantees its slices may hold here together: percent of one core, MiB.
    max_cpu_reserve INTEGER NOT NULL DEFAULT 0,
    max_mem_reserve INTEGER NOT NULL DEFAULT 0,
    registry_rev    TEXT NOT NULL DEFAULT '',
    flows_after     INTEGER NOT NULL DEFAULT 0,
    last_contact    INTEGER,
    last_error      TEXT NOT NULL DEFAULT '',
    peer_state      TEXT NOT NULL DEFAULT '',
    created         INTEGER NOT NULL
);
ALTER TABLE sites ADD COLUMN peer_id INTEGER REFERENCES peers(id);

-- Here: the foreign slices a peer runs on our nodes (their copy of its persons' keys, its contact).
CREATE TABLE peer_slices (
    slice_id   INTEGER PRIMARY KEY REFERENCES slices(id) ON DELETE CASCADE,
    peer_id    INTEGER NOT NULL REFERENCES peers(id),
    home_name  TEXT NOT NULL,
    contact    TEXT NOT NULL DEFAULT '',
    keys       TEXT NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX peer_slices_home ON peer_slices(peer_id, home_name);

-- At home: what we last sent a peer for each of our slices using its nodes.
CREATE TABLE peer_pushes (
    peer_id     INTEGER NOT NULL REFERENCES peers(id) ON DELETE CASCADE,
    slice_name  TEXT NOT NULL,
    hash        TEXT NOT NULL,
    pushed      INTEGER NOT NULL,
    PRIMARY KEY (peer_id, slice_name)
);

-- Nonces of signed peer calls seen within their validity window (replays are refused).
CREATE TABLE peer_nonces (
    peer_id  INTEGER NOT NULL REFERENCES peers(id) ON DELETE CASCADE,
    nonce    TEXT NOT NULL,
    expires  INTEGER NOT NULL,
    PRIMARY KEY (peer_id, nonce)
);
