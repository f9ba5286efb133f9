#!/usr/bin/env python3
"""Seeds a fresh central for scripts/fuzz-api.sh, so that fuzzed path parameters hit real objects.

Usage: fuzz-api-seed.py URL ADMIN_EMAIL ADMIN_PASSWORD
Prints shell assignments (FUZZ_TOKEN=..., FUZZ_NODE_KEY=..., ...) for the caller to eval.
Standard library only: it runs before and beside schemathesis, on any python3.
"""

import hashlib
import io
import json
import tarfile
import sys
import time
import urllib.error
import urllib.request



def make_layer():
    """A real (tiny) layer, byte for byte the same on every run: central reads every layer of
    an image it publishes as a node would."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        data = b"fuzz layer\n"
        info = tarfile.TarInfo("etc/fuzz")
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# The one image layer; fuzz-api.toml names its digest and the image manifest's.
LAYER = make_layer()
LAYER_DIGEST = "sha256:eb002cdb333dde966944d7764f335c61292db39c19f2a63fc6821d1bae8cac10"
MANIFEST_DIGEST = "sha256:920ee062eba1f78568f6dcfd53c31e068e9d16289b5fb6a159565660db9b57f2"

# A real ed25519 public key (the model's ssh_key tests use the same one).
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6mwuiCgEj5IOErDJ69hnStVLbIEwiAnpCShyp6iSC/ fuzz@example"


def call(base, method, path, body=None, token=None, raw=None):
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + "/api/v1" + path, data=data, method=method)
    req.add_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
    except urllib.error.HTTPError as e:
        sys.exit(f"seed: {method} {path} answered {e.code}: {e.read().decode()}")
    return json.loads(text) if text else None


def main():
    base, email, password = sys.argv[1:4]
    admin = call(base, "POST", "/auth/login", {"email": email, "password": password})["token"]

    def post(path, body, token=admin, method="POST"):
        return call(base, method, path, body, token)

    post("/sites", {"login_base": "fuzz", "name": "Fuzz University", "max_slices": 100})
    post("/sites", {"login_base": "spare", "name": "Spare Site"})
    post("/persons", {"email": "pi@fuzz.test", "first_name": "Pat", "last_name": "Pi",
                      "password": "fuzz-pi-password", "roles": ["pi"], "sites": ["fuzz"]})
    post("/persons", {"email": "user@fuzz.test", "first_name": "Una", "last_name": "User",
                      "roles": ["user"], "sites": ["fuzz"]})
    # The one person whose account the fuzzer may change or delete (see fuzz-api.toml).
    post("/persons", {"email": "victim@fuzz.test", "first_name": "Vic", "last_name": "Tim",
                      "roles": ["user"], "sites": ["spare"]})
    key = post("/persons/pi@fuzz.test/keys", {"key": KEY})
    n1 = post("/nodes", {"hostname": "n1.fuzz.test", "site": "fuzz", "cpu_cores": 4,
                         "mem_mb": 8192, "region": "europe"})
    post("/nodes", {"hostname": "n2.fuzz.test", "site": "fuzz", "reservable": True})
    post("/nodes", {"hostname": "n3.spare.test", "site": "spare"})
    post("/slices", {"name": "fuzz_exp", "description": "fuzzed"})
    post("/slices", {"name": "fuzz_other"})
    post("/slices/fuzz_exp/nodes", {"names": ["n1.fuzz.test", "n2.fuzz.test"]})
    post("/slices/fuzz_exp/persons", {"names": ["pi@fuzz.test", "user@fuzz.test"]})
    post("/slices/fuzz_exp/tags/cpu_share", {"value": "10"}, method="PUT")
    now = int(time.time())
    lease = post("/leases", {"slice": "fuzz_exp", "node": "n2.fuzz.test",
                             "start": now, "end": now + 3600})
    # The node speaks: a report, usage and flows, so node-side listings have rows.
    node_key = n1["node_key"]
    post("/node/report", {"seq": 1, "slivers": [{"slice_name": "fuzz_exp", "state": "running",
                                                 "address": "10.0.0.2"}]}, token=node_key)
    post("/node/usage", {"seq": 1, "samples": [{"slice": "fuzz_exp", "time": now,
                                                "interval_s": 10, "cpu_s": 1.5,
                                                "mem_bytes": 1, "disk_bytes": 1, "tx_bytes": 1,
                                                "rx_bytes": 1, "tx_pkts": 1, "rx_pkts": 1}]},
         token=node_key)
    post("/node/flows", {"seq": 1, "flows": [{"slice": "fuzz_exp", "proto": 6,
                                              "src": "10.0.0.2", "sport": 40000,
                                              "dst": "192.0.2.7", "dport": 80, "ct_id": 1,
                                              "start": now - 5, "end": now, "done": True,
                                              "tx_bytes": 10, "tx_pkts": 1, "rx_bytes": 10,
                                              "rx_pkts": 1}]}, token=node_key)
    # An image over one uploaded blob, and a spare one for the fuzzer to delete.
    if "sha256:" + hashlib.sha256(LAYER).hexdigest() != LAYER_DIGEST:
        sys.exit("seed: LAYER_DIGEST is not the layer's sha256")
    call(base, "PUT", "/blobs/" + LAYER_DIGEST, token=admin, raw=LAYER)
    manifest = {"config": {}, "layers": [{"digest": LAYER_DIGEST, "size": len(LAYER),
                                          "media_type": "application/vnd.oci.image.layer.v1.tar"}]}
    img = post("/images", {"name": "fuzz-img", "visibility": "platform", "site_id": 1,
                           "manifest": manifest})
    post("/images", {"name": "fuzz-spare", "visibility": "site", "site_id": 1,
                     "manifest": manifest})
    if img["digest"] != MANIFEST_DIGEST:
        sys.exit(f"seed: expected manifest digest {MANIFEST_DIGEST}, got {img['digest']}")
    # fuzz-api.toml names these ids: the first of their kind in a fresh database.
    if (key["id"], lease["id"]) != (1, 1):
        sys.exit(f"seed: expected key and lease ids 1, got {key['id']} and {lease['id']}")
    print(f"FUZZ_TOKEN={admin}")
    print(f"FUZZ_NODE_KEY={node_key}")


if __name__ == "__main__":
    main()
