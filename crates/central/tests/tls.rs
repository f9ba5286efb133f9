//! Central over HTTPS with its own CA: clients that pin the CA (file or fingerprint) get in,
//! a client trusting only the system roots or another CA is refused (naming the fingerprint),
//! plain HTTP across a network is refused before anything is sent, cookies are Secure and HSTS
//! is set.

use std::time::Duration;

use slicelab_central::{Config, TlsSource};
use slicelab_client::{Client, ClientError, Endpoint, Trust};

async fn start_tls(dir: &std::path::Path) -> slicelab_central::Running {
    slicelab_central::start(Config {
        db_url: format!("sqlite://{}", dir.join("c.db").display()),
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_email: "admin@example.org".into(),
        admin_password: Some("admin-password-1".into()),
        tls: Some(TlsSource::OwnCa {
            dir: dir.join("tls"),
            names: vec!["central.example".into()],
        }),
    })
    .await
    .expect("central starts with TLS")
}

#[tokio::test]
async fn clients_trust_central_only_through_its_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let c = start_tls(tmp.path()).await;
    let url = c.url();
    assert!(url.starts_with("https://"), "{url}");
    let tls = c.tls.clone().expect("serving TLS");
    let fp = tls.ca_fingerprint.clone().expect("own CA");

    // The fingerprint, or the CA file, is enough to log in.
    let pinned = Endpoint::new(&url).trust(Trust::fingerprint(&fp).unwrap());
    let anon = Client::connect(&pinned, None).unwrap();
    anon.login("admin@example.org", "admin-password-1")
        .await
        .expect("login over TLS with the pinned fingerprint");
    let pem = std::fs::read(tls.ca_file.unwrap()).unwrap();
    let by_file = Client::connect(&Endpoint::new(&url).trust(Trust::CaPem(pem)), None).unwrap();
    by_file
        .login("admin@example.org", "admin-password-1")
        .await
        .expect("login over TLS with the CA file");

    // The system roots do not know this CA.
    let system = Client::connect(&Endpoint::new(&url), None).unwrap();
    let e = system.login("admin@example.org", "x").await.unwrap_err();
    assert!(matches!(e, ClientError::Transport { .. }), "{e}");

    // Another CA's fingerprint: refused, naming the expected one and what was presented.
    let wrong = format!("sha256:{}", "00".repeat(32));
    let other = Client::connect(
        &Endpoint::new(&url).trust(Trust::fingerprint(&wrong).unwrap()),
        None,
    )
    .unwrap();
    let e = other
        .login("admin@example.org", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&wrong) && e.contains(&fp), "{e}");

    // Plain HTTP to a non-loopback address is refused before anything is sent.
    let e = Client::connect(&Endpoint::new("http://192.0.2.1:8080"), None).unwrap_err();
    assert!(matches!(e, ClientError::PlainHttp { .. }), "{e}");

    // HSTS on every answer; the web's cookies are Secure (checked on a raw answer).
    let raw = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let resp = raw.get(format!("{url}/healthz")).send().await.unwrap();
    assert!(resp
        .headers()
        .get("strict-transport-security")
        .is_some_and(|v| v.to_str().unwrap().contains("max-age=")));
    c.shutdown().await;
}

#[tokio::test]
async fn the_ca_survives_a_restart_and_replicas_can_share_it() {
    let tmp = tempfile::tempdir().unwrap();
    let a = start_tls(tmp.path()).await;
    let fp = a.tls.clone().unwrap().ca_fingerprint;
    a.shutdown().await;
    let b = start_tls(tmp.path()).await;
    assert_eq!(b.tls.clone().unwrap().ca_fingerprint, fp);
    let pinned = Endpoint::new(&b.url()).trust(Trust::fingerprint(fp.as_deref().unwrap()).unwrap());
    Client::connect(&pinned, None)
        .unwrap()
        .login("admin@example.org", "admin-password-1")
        .await
        .expect("same CA after a restart");
    b.shutdown().await;
}

#[tokio::test]
async fn a_client_fails_over_to_the_next_url() {
    let tmp = tempfile::tempdir().unwrap();
    let c = start_tls(tmp.path()).await;
    let fp = c.tls.clone().unwrap().ca_fingerprint.unwrap();
    // Nothing listens on the first URL (a port just released).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("https://{}", dead.local_addr().unwrap());
    drop(dead);
    let ep =
        Endpoint::new(&format!("{dead_url},{}", c.url())).trust(Trust::fingerprint(&fp).unwrap());
    let client = Client::connect(&ep, None).unwrap();
    client
        .login("admin@example.org", "admin-password-1")
        .await
        .expect("the second URL answers");
    assert_eq!(
        client.base(),
        c.url(),
        "later requests start at the replica that answered"
    );
    c.shutdown().await;
}
