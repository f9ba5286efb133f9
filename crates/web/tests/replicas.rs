//! Two centrals with the web interface on one PostgreSQL database (replicas behind one name): a
//! browser session made on one works on the other — its cookie holds a session token stored in
//! the database, and its CSRF token is derived from that token, not from anything in a process.
//!
//! PostgreSQL only: skipped, saying so, without `SLICELAB_TEST_PG`.

mod common;

use common::{fixture, TestCentral, Web, PASSWORD};
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_session_made_on_one_replica_works_on_the_other() {
    let admin_url = match std::env::var("SLICELAB_TEST_PG") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must set SLICELAB_TEST_PG so the replica tests run"
            );
            eprintln!("SKIPPED: needs PostgreSQL; set SLICELAB_TEST_PG=postgres://USER:PW@127.0.0.1/postgres to run it");
            return;
        }
    };
    let name = format!("slicelab_web_replicas_{}", std::process::id());
    let mut c = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL");
    for q in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(&q)
            .execute(&mut c)
            .await
            .expect("test database");
    }
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    let db_url = format!("{base}/{name}");
    let a = TestCentral::start_on(tempfile::tempdir().expect("tempdir"), &db_url).await;
    let b = TestCentral::start_on(tempfile::tempdir().expect("tempdir"), &db_url).await;
    let _fx = fixture(&a).await;

    // Logged in through A's form; the same browser (cookies are per host, not port) on B.
    let on_a = Web::new(&a.base);
    on_a.login("pi@princeton.test", PASSWORD).await;
    let on_b = Web {
        base: b.base.clone(),
        http: on_a.http.clone(),
    };
    let my = on_b.get("/my").await;
    assert_eq!(my.status, 200, "{}", my.body);
    assert!(my.body.contains("pi@princeton.test"), "B knows the session");
    // A form from A's page, posted to B, passes B's CSRF check.
    let csrf = on_a.csrf().await;
    let r = on_b
        .post("/slices", &[("name", "princeton_web"), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(on_a.get("/slices/princeton_web").await.status, 200);
    // Logging out on B ends the session on A too.
    let r = on_b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let my = Web {
        base: a.base.clone(),
        http: on_a.http.clone(),
    }
    .get("/my")
    .await;
    assert_ne!(my.status, 200, "logged out everywhere");

    b.stop().await;
    a.stop().await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await;
}
