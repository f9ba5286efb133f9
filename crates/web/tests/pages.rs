//! The web interface over HTTP against an in-process central: public pages, permissions
//! (another site's private pages are 403), forms that reject bad input with a visible message
//! and store nothing, and CSRF protection.

mod common;

use common::{fixture, TestCentral, Web, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_pages_work_without_login() {
    let tc = TestCentral::start().await;
    let mut fx = fixture(&tc).await;
    fx.nodes[0].reconcile().await;
    let web = Web::new(&tc.base);

    let a = web.get("/").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("Platform overview"));
    assert!(a.body.contains(r#"class="map""#), "world map");
    assert!(a.body.contains("node1.princeton.test"));
    assert!(a.body.contains(r#"href="/sites/princeton""#));
    assert!(a.body.contains("Aggregate CPU load") && a.body.contains("Aggregate bandwidth"));

    let a = web.get("/nodes/node1.princeton.test").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("What is this machine?"));
    assert!(a.body.contains("/lookup?node=node1.princeton.test"));
    assert!(
        !a.body.contains(r#"name="boot_state""#),
        "no boot form for anonymous"
    );

    let a = web.get("/sites/princeton").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("Princeton University"));
    assert!(
        a.body.contains("0.0 of 20480 MiB") && a.body.contains("site images / quota"),
        "the image quota: {}",
        a.body
    );

    let a = web.get("/assets/style.css").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("--brand"));

    let a = web
        .get("/lookup?node=node1.princeton.test&addr=192.0.2.7&from=2024-05-01T10:00&to=2024-05-01T12:00")
        .await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("No records"), "{}", a.body);
    let a = web
        .get("/lookup?node=node1.princeton.test&addr=not-an-ip&from=2024-05-01T10:00&to=2024-05-01T12:00")
        .await;
    assert_eq!(a.status, 422);
    assert!(a.body.contains("is not an IPv4 or IPv6 address"));

    // Private pages send anonymous people to the login form.
    for p in [
        "/my",
        "/admin",
        "/sites/princeton/manage",
        "/slices/princeton_x",
    ] {
        let a = web.get(p).await;
        assert_eq!(a.status, 303, "{p}");
        assert!(
            a.location
                .as_deref()
                .unwrap_or("")
                .starts_with("/login?next="),
            "{p}"
        );
    }
    let a = web.get("/nodes/nosuch.example").await;
    assert_eq!(a.status, 404);
    tc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sites_private_pages_are_forbidden() {
    let tc = TestCentral::start().await;
    let _fx = fixture(&tc).await;
    let pi_p = tc.api_login("pi@princeton.test", PASSWORD).await;
    tc.api(
        Method::POST,
        "/slices",
        &pi_p,
        Some(json!({"name": "princeton_secret", "description": "private"})),
    )
    .await;

    let mit = Web::new(&tc.base);
    mit.login("pi@mit.test", PASSWORD).await;
    for p in [
        "/slices/princeton_secret",
        "/slices/princeton_secret/usage",
        "/sites/princeton/manage",
        "/admin",
        "/admin/events",
    ] {
        let a = mit.get(p).await;
        assert_eq!(a.status, 403, "{p}: {}", a.body);
        assert!(a.body.contains("Not allowed"), "{p}");
    }
    // Own site: fine.
    assert_eq!(mit.get("/sites/mit/manage").await.status, 200);

    // Writes to another site's objects are refused too, even with a valid form token.
    let csrf = mit.csrf().await;
    let a = mit
        .post(
            "/nodes/node1.princeton.test/boot_state",
            &[("csrf", &csrf), ("boot_state", "safeboot")],
        )
        .await;
    assert_eq!(a.status, 403);
    let a = mit
        .post(
            "/slices/princeton_secret/renew",
            &[("csrf", &csrf), ("days", "10")],
        )
        .await;
    assert_eq!(a.status, 403);
    let a = mit
        .post(
            "/slices/princeton_secret/enabled",
            &[("csrf", &csrf), ("enabled", "false")],
        )
        .await;
    assert_eq!(a.status, 403);
    let node = tc
        .api(Method::GET, "/nodes/node1.princeton.test", &pi_p, None)
        .await;
    assert_eq!(node["boot_state"], "boot");
    let sl = tc
        .api(Method::GET, "/slices/princeton_secret", &pi_p, None)
        .await;
    assert_eq!(sl["enabled"], true);

    // A plain user of princeton is no member of the slice: 403; a tech sees the site page.
    let user = Web::new(&tc.base);
    user.login("user@princeton.test", PASSWORD).await;
    assert_eq!(user.get("/slices/princeton_secret").await.status, 403);
    assert_eq!(user.get("/sites/princeton/manage").await.status, 403);
    let tech = Web::new(&tc.base);
    tech.login("tech@princeton.test", PASSWORD).await;
    let a = tech.get("/sites/princeton/manage").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains(r#"name="boot_state""#));

    // The node's bandwidth cap: its site's tech sets and clears it on the node's page; another
    // site's PI may not; a bad rate is shown, not stored.
    let node = "/nodes/node1.princeton.test";
    let a = tech.get(node).await;
    assert!(a.body.contains(r#"name="bwlimit""#));
    let csrf = tech.csrf().await;
    let a = tech
        .post(
            &format!("{node}/bwlimit"),
            &[("csrf", &csrf), ("bwlimit", "30mbit")],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let n = tc.api(Method::GET, node, &pi_p, None).await;
    assert_eq!(n["bwlimit"], 30_000_000);
    let a = web_anon_get(&tc, node).await;
    assert!(a.contains("30mbit") && !a.contains(r#"name="bwlimit""#));
    let a = tech
        .post(
            &format!("{node}/bwlimit"),
            &[("csrf", &csrf), ("bwlimit", "fast")],
        )
        .await;
    assert_eq!(a.status, 422);
    assert!(a.body.contains("unknown unit"), "{}", a.body);
    let csrf_m = mit.csrf().await;
    let a = mit
        .post(
            &format!("{node}/bwlimit"),
            &[("csrf", &csrf_m), ("bwlimit", "")],
        )
        .await;
    assert_eq!(a.status, 403);
    let a = tech
        .post(
            &format!("{node}/bwlimit"),
            &[("csrf", &csrf), ("bwlimit", "")],
        )
        .await;
    assert_eq!(a.status, 303);
    let n = tc.api(Method::GET, node, &pi_p, None).await;
    assert!(n.get("bwlimit").is_none(), "{n}");
    tc.stop().await;
}

async fn web_anon_get(tc: &TestCentral, path: &str) -> String {
    Web::new(&tc.base).get(path).await.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_reject_bad_input_with_a_visible_message() {
    let tc = TestCentral::start().await;
    let _fx = fixture(&tc).await;
    let web = Web::new(&tc.base);

    // Wrong password: the form again, with the reason.
    let page = web.get("/login").await;
    let token = common::hidden(&page.body, "login_token").expect("login token");
    let a = web
        .post(
            "/login",
            &[
                ("login_token", &token),
                ("email", "pi@princeton.test"),
                ("password", "nope-nope"),
            ],
        )
        .await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("wrong email or password"));

    web.login("pi@princeton.test", PASSWORD).await;
    let csrf = web.csrf().await;
    for (name, expect) in [
        ("Bad Name!", "must be"),
        ("nosuchsite_x", "there is no site"),
        ("mit_x", "only admins and the site"),
    ] {
        let a = web
            .post("/slices", &[("csrf", &csrf), ("name", name)])
            .await;
        assert!(a.status == 422 || a.status == 403, "{name}: {}", a.status);
        assert!(a.body.contains(expect), "{name}: {}", a.body);
        if a.status == 422 {
            assert!(a.body.contains(r#"class="notice error""#), "{name}");
            assert!(
                a.body.contains(&format!(r#"value="{}""#, name)),
                "value kept"
            );
        }
    }
    let pi = tc.api_login("pi@princeton.test", PASSWORD).await;
    let list = tc.api(Method::GET, "/slices", &pi, None).await;
    assert_eq!(list["total"], 0, "nothing stored");

    let a = web
        .post(
            "/slices",
            &[
                ("csrf", &csrf),
                ("name", "princeton_exp"),
                ("description", "d"),
            ],
        )
        .await;
    assert_eq!(a.status, 303);
    assert_eq!(
        a.location.as_deref(),
        Some("/slices/princeton_exp?ok=created")
    );

    let bad = [
        (
            "/slices/princeton_exp/renew",
            vec![("days", "999")],
            "at most",
        ),
        (
            "/slices/princeton_exp/renew",
            vec![("days", "soon")],
            "not a whole number",
        ),
        (
            "/slices/princeton_exp/nodes",
            vec![],
            "choose at least one node",
        ),
        (
            "/slices/princeton_exp/nodes",
            vec![("node", "ghost.example")],
            "unknown node",
        ),
        (
            "/slices/princeton_exp/tags",
            vec![("tag", "cpu_pct"), ("value", "lots")],
            "cpu_pct",
        ),
        (
            "/slices/princeton_exp/tags",
            vec![("tag", "no_such_tag"), ("value", "1")],
            "no_such_tag",
        ),
        (
            "/slices/princeton_exp/persons",
            vec![("email", "ghost@nowhere.test")],
            "there is no person",
        ),
    ];
    for (path, fields, expect) in bad {
        let mut f = vec![("csrf", csrf.as_str())];
        f.extend(fields.iter().copied());
        let a = web.post(path, &f).await;
        assert_eq!(a.status, 422, "{path} {fields:?}: {}", a.body);
        assert!(a.body.contains(r#"class="notice error""#), "{path}");
        assert!(
            a.body.contains(expect),
            "{path} {fields:?}: want {expect:?}"
        );
    }
    let sl = tc
        .api(Method::GET, "/slices/princeton_exp", &pi, None)
        .await;
    assert_eq!(sl["nodes"], json!([]));
    let tags = tc
        .api(Method::GET, "/slices/princeton_exp/tags", &pi, None)
        .await;
    assert_eq!(tags, json!([]));

    // Good input works and says so.
    let a = web
        .post(
            "/slices/princeton_exp/nodes",
            &[
                ("csrf", &csrf),
                ("node", "node1.princeton.test"),
                ("node", "node1.mit.test"),
            ],
        )
        .await;
    assert_eq!(a.status, 303);
    let a = web.get(a.location.as_deref().unwrap_or("/")).await;
    assert!(a.body.contains("Nodes added."));
    assert!(a.body.contains(r#"data-node="node1.mit.test""#));
    let a = web
        .post(
            "/slices/princeton_exp/tags",
            &[("csrf", &csrf), ("tag", "cpu_pct"), ("value", "50")],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let a = web
        .post(
            "/slices/princeton_exp/renew",
            &[("csrf", &csrf), ("days", "30")],
        )
        .await;
    assert_eq!(a.status, 303);
    tc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_need_the_sessions_csrf_token_and_the_api_ignores_cookies() {
    let tc = TestCentral::start().await;
    let _fx = fixture(&tc).await;
    let a = Web::new(&tc.base);
    a.login("pi@princeton.test", PASSWORD).await;
    let b = Web::new(&tc.base);
    b.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let b_csrf = b.csrf().await;

    for fields in [
        vec![("name", "princeton_x")],
        vec![("name", "princeton_x"), ("csrf", "")],
        vec![("name", "princeton_x"), ("csrf", b_csrf.as_str())],
    ] {
        let r = a.post("/slices", &fields).await;
        assert_eq!(r.status, 403, "{fields:?}");
        assert!(r.body.contains("did not come from this site"));
    }
    // A login form token must match its cookie.
    let anon = Web::new(&tc.base);
    let r = anon
        .post(
            "/login",
            &[
                ("login_token", "forged"),
                ("email", "pi@princeton.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    let pi = tc.api_login("pi@princeton.test", PASSWORD).await;
    assert_eq!(tc.api(Method::GET, "/slices", &pi, None).await["total"], 0);

    // The JSON API does not take the session cookie.
    let r = a
        .http
        .get(format!("{}/api/v1/auth/whoami", tc.base))
        .send()
        .await
        .expect("whoami");
    assert_eq!(r.status().as_u16(), 401);

    // Logging out revokes the session.
    let csrf = a.csrf().await;
    let r = a.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert_eq!(a.get("/my").await.status, 303);
    tc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_disables_a_slice_everywhere_and_sees_node_health() {
    let tc = TestCentral::start().await;
    let mut fx = fixture(&tc).await;
    let pi = tc.api_login("pi@princeton.test", PASSWORD).await;
    tc.api(
        Method::POST,
        "/slices",
        &pi,
        Some(json!({"name": "princeton_bad"})),
    )
    .await;
    tc.api(
        Method::POST,
        "/slices/princeton_bad/nodes",
        &pi,
        Some(json!({"names": ["node1.princeton.test", "node2.princeton.test"]})),
    )
    .await;
    for n in fx.nodes.iter_mut().take(2) {
        assert_eq!(
            n.reconcile().await,
            vec![("princeton_bad".to_string(), true)]
        );
    }
    let admin = Web::new(&tc.base);
    admin.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mc = admin.get("/admin").await;
    assert_eq!(mc.status, 200);
    assert!(mc.body.contains("Node health"));
    assert!(mc.body.contains("1 running / 1"));
    // node1.mit.test never reported: flagged.
    assert!(
        mc.body
            .contains(r#"class="stale" data-node="node1.mit.test""#),
        "{}",
        mc.body
    );

    let csrf = admin.csrf().await;
    let r = admin
        .post(
            "/slices/princeton_bad/enabled",
            &[("csrf", &csrf), ("enabled", "false")],
        )
        .await;
    assert_eq!(r.status, 303);
    for n in fx.nodes.iter_mut().take(2) {
        assert_eq!(
            n.reconcile().await,
            vec![("princeton_bad".to_string(), false)]
        );
    }
    let slivers = tc
        .api(Method::GET, "/slices/princeton_bad/slivers", &pi, None)
        .await;
    assert!(slivers
        .as_array()
        .is_some_and(|a| a.len() == 2 && a.iter().all(|s| s["state"] == "stopped")));
    // The slice's persons are told through the event log.
    let ev = admin.get("/admin/events?object=princeton_bad").await;
    assert!(ev.body.contains("slice.update") && ev.body.contains("enabled"));
    let page = Web::new(&tc.base);
    page.login("pi@princeton.test", PASSWORD).await;
    let a = page.get("/slices/princeton_bad").await;
    assert!(a.body.contains("An admin disabled this slice"));
    tc.stop().await;
}

/// The public lookup names the slice that sent traffic to an address, and its PIs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_names_the_slice_behind_a_flow() {
    let tc = TestCentral::start().await;
    let fx = fixture(&tc).await;
    let admin = tc.api_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    tc.api(
        Method::POST,
        "/slices",
        &admin,
        Some(json!({"name": "princeton_crawl", "description": "a polite web crawler"})),
    )
    .await;
    let now = slicelab_central::now();
    let node = &fx.nodes[0];
    let flow = json!({"seq": 1, "flows": [{
        "slice": "princeton_crawl", "proto": 6, "src": "10.77.0.2", "sport": 40000,
        "dst": "192.0.2.77", "dport": 80, "nat_src": null, "nat_sport": null, "ct_id": 7,
        "start": now - 600, "end": now - 500, "done": true,
        "tx_bytes": 5000, "tx_pkts": 5, "rx_bytes": 100, "rx_pkts": 2}]});
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/node/flows", tc.base))
        .bearer_auth(&node.key)
        .json(&flow)
        .send()
        .await
        .expect("flows");
    assert!(r.status().is_success(), "{}", r.status());
    let web = Web::new(&tc.base);
    let window = |t: i64| {
        // The form's UTC datetime-local format.
        let d = t.div_euclid(86_400);
        let s = t.rem_euclid(86_400);
        let (y, m, dd) = slicelab_model::time::civil_from_days(d);
        format!("{y:04}-{m:02}-{dd:02}T{:02}:{:02}", s / 3600, s % 3600 / 60)
    };
    let q = format!(
        "/lookup?node={}&addr=192.0.2.77&from={}&to={}",
        node.hostname,
        window(now - 3600),
        window(now + 60)
    );
    let a = web.get(&q).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("princeton_crawl"), "{}", a.body);
    assert!(a.body.contains("a polite web crawler"));
    assert!(a.body.contains("mailto:"), "the PI is named");
    // Another address that saw nothing learns nothing.
    let a = web.get(&q.replace("192.0.2.77", "192.0.2.78")).await;
    assert!(a.body.contains("No records") && !a.body.contains("princeton_crawl"));
    tc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_listed_shown_and_deleted_by_who_may() {
    use sha2::{Digest, Sha256};
    let tc = TestCentral::start().await;
    let _fx = fixture(&tc).await;
    let pi_p = tc.api_login("pi@princeton.test", PASSWORD).await;
    // A real (tiny) layer: publishing reads it as a node would.
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(2);
        h.set_cksum();
        b.append_data(&mut h, "etc/x", &b"hi"[..]).expect("tar");
        b.into_inner().expect("tar")
    };
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&layer)));
    let r = reqwest::Client::new()
        .put(format!("{}/api/v1/blobs/{digest}", tc.base))
        .bearer_auth(&pi_p)
        .body(layer.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201);
    let img = tc
        .api(
            Method::POST,
            "/images",
            &pi_p,
            Some(
                json!({"name": "pl-tools", "visibility": "site", "manifest": {
                "config": {"cmd": ["/bin/sh", "-l"], "env": ["LANG=C.UTF-8"]},
                "layers": [{"digest": digest, "size": layer.len(),
                            "media_type": "application/vnd.oci.image.layer.v1.tar"}]}}),
            ),
        )
        .await;
    let image_digest = img["digest"].as_str().expect("digest").to_string();
    // The site's page counts it against the quota an admin set.
    tc.api(
        Method::PATCH,
        "/sites/princeton",
        &tc.admin_token,
        Some(json!({"image_quota_mb": 512})),
    )
    .await;
    let a = Web::new(&tc.base).get("/sites/princeton").await;
    assert!(
        a.body.contains("0.0 of 512 MiB")
            && a.body
                .contains(&format!(r#"title="{} bytes of 512 MiB""#, layer.len())),
        "{}",
        a.body
    );
    tc.api(
        Method::POST,
        "/slices",
        &pi_p,
        Some(json!({"name": "princeton_web", "description": "uses an image"})),
    )
    .await;
    tc.api(
        Method::PUT,
        "/slices/princeton_web/tags/image",
        &pi_p,
        Some(json!({"value": "pl-tools"})),
    )
    .await;

    // Anonymous people are sent to log in.
    let anon = Web::new(&tc.base);
    assert_eq!(anon.get("/images").await.status, 303);

    // A user of the site sees the image and its page, with no delete button.
    let user = Web::new(&tc.base);
    user.login("user@princeton.test", PASSWORD).await;
    let a = user.get("/images").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains(r#"href="/images""#), "nav link");
    assert!(a.body.contains(r#"href="/images/pl-tools""#), "{}", a.body);
    assert!(a.body.contains("pi@princeton.test") && a.body.contains(r#"href="/sites/princeton""#));
    let a = user.get("/images/pl-tools").await;
    assert_eq!(a.status, 200);
    for want in [
        image_digest.as_str(),
        digest.as_str(),
        "/bin/sh -l",
        "LANG=C.UTF-8",
        "application/vnd.oci.image.layer.v1.tar",
        r#"href="/slices/princeton_web""#,
    ] {
        assert!(a.body.contains(want), "{want}: {}", a.body);
    }
    assert!(
        !a.body.contains("delete-image"),
        "no delete button for a user"
    );

    // Another site's person neither lists nor opens it.
    let mit = Web::new(&tc.base);
    mit.login("pi@mit.test", PASSWORD).await;
    assert!(!mit.get("/images").await.body.contains("pl-tools"));
    assert_eq!(mit.get("/images/pl-tools").await.status, 404);

    // The site's PI may delete it: refused while a slice names it, with the slice named.
    let pi = Web::new(&tc.base);
    pi.login("pi@princeton.test", PASSWORD).await;
    let page = pi.get("/images/pl-tools").await;
    assert!(page.body.contains("delete-image"));
    let a = pi
        .post("/images/pl-tools/delete", &[("csrf", "forged")])
        .await;
    assert_eq!(a.status, 403);
    let csrf = pi.csrf().await;
    let a = pi.post("/images/pl-tools/delete", &[("csrf", &csrf)]).await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(
        a.body.contains("Not done") && a.body.contains("princeton_web"),
        "{}",
        a.body
    );
    tc.api(
        Method::DELETE,
        "/slices/princeton_web/tags/image",
        &pi_p,
        None,
    )
    .await;
    let a = pi.post("/images/pl-tools/delete", &[("csrf", &csrf)]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some("/images?ok=image_deleted"));
    let a = pi.get("/images?ok=image_deleted").await;
    assert!(a.body.contains("Image deleted.") && !a.body.contains("pl-tools"));
    tc.stop().await;
}
