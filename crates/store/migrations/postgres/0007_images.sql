-- Images published at central (model::image): a manifest named by the sha256 of its canonical
-- JSON (stored as exactly those bytes) over layer blobs named by the sha256 of their bytes.
-- Blob bytes live in files (central::blobs); `image_blobs` records which are complete.
CREATE TABLE image_blobs (
    digest   TEXT PRIMARY KEY,
    size     BIGINT NOT NULL,
    created  BIGINT NOT NULL
);

CREATE TABLE images (
    image_id    BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    digest      TEXT NOT NULL,
    visibility  TEXT NOT NULL,
    site_id     BIGINT NOT NULL REFERENCES sites(id) ON DELETE RESTRICT,
    -- The publisher; NULL once that person is deleted (the image stays).
    owner_id    BIGINT REFERENCES persons(id) ON DELETE SET NULL,
    size        BIGINT NOT NULL,
    manifest    TEXT NOT NULL,
    created     BIGINT NOT NULL
);
CREATE INDEX images_site ON images(site_id);
CREATE INDEX images_digest ON images(digest);

-- An image's layers, bottom first; a blob an image uses cannot be removed.
CREATE TABLE image_layers (
    image_id  BIGINT NOT NULL REFERENCES images(image_id) ON DELETE CASCADE,
    position  BIGINT NOT NULL,
    digest    TEXT NOT NULL REFERENCES image_blobs(digest) ON DELETE RESTRICT,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX image_layers_digest ON image_layers(digest);

-- Bytes of `site` images a site may publish, in MiB (20 GiB by default).
ALTER TABLE sites ADD COLUMN image_quota_mb BIGINT NOT NULL DEFAULT 20480;
