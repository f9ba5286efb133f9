//! End to end in headless Chromium (Debian's `chromium` + `chromium-driver`, driven over
//! WebDriver): a PI creates a slice, adds two nodes, sees both slivers running and a drawn usage
//! chart; an admin puts a node in safeboot and sees its sliver stop; the public node page and
//! the "who sent this?" form work without login. Nodes are simulated over the real node protocol.
//! Screenshots go to `target/web-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{fixture, TestCentral, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};
use fantoccini::{Client, Locator};
use serde_json::json;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The folder screenshots are written to.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("web-screenshots")
}

/// Whether the browser is installed; under CI its absence is a failure, not a skip.
fn browser_available() -> bool {
    let ok = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver (scripts/deps.sh)"
        );
        eprintln!("SKIPPED: browser test needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)");
    }
    ok
}

struct Driver {
    child: tokio::process::Child,
    url: String,
    _profile: tempfile::TempDir,
}

async fn start_driver() -> Res<(Driver, Client)> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{url}/status")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err("chromedriver did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir()?;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,1400",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = Client::with_capabilities_and_connector(&url, &caps, connector).await?;
    Ok((
        Driver {
            child,
            url,
            _profile: profile,
        },
        client,
    ))
}

async fn shot(c: &Client, name: &str) -> Res<()> {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir)?;
    let png = c.screenshot().await?;
    std::fs::write(dir.join(format!("{name}.png")), png)?;
    Ok(())
}

/// Waits until the text of the element at `css` satisfies `ok`, reloading `reload` meanwhile.
async fn wait_text(
    c: &Client,
    css: &str,
    reload: Option<&str>,
    ok: impl Fn(&str) -> bool,
) -> Res<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            last = e.text().await.unwrap_or_default();
            if ok(&last) {
                return Ok(last);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{css}: last text {last:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(u) = reload {
            c.goto(u).await?;
        }
    }
}

async fn fill(c: &Client, css: &str, text: &str) -> Res<()> {
    let e = c.find(Locator::Css(css)).await?;
    e.clear().await?;
    e.send_keys(text).await?;
    Ok(())
}

async fn login(c: &Client, base: &str, email: &str, password: &str) -> Res<()> {
    c.goto(&format!("{base}/login")).await?;
    fill(c, "#login input[name=email]", email).await?;
    fill(c, "#login input[name=password]", password).await?;
    c.find(Locator::Css("#login button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_text(c, "header .who span", None, |t| t == email).await?;
    Ok(())
}

async fn logout(c: &Client) -> Res<()> {
    c.find(Locator::Css("header .who form button"))
        .await?
        .click()
        .await?;
    wait_text(c, "header .who a", None, |t| t == "Log in").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_end_to_end() {
    if !browser_available() {
        return;
    }
    let tc = TestCentral::start().await;
    let (driver, client) = start_driver()
        .await
        .expect("chromedriver and chromium start");
    let r = run(&tc, &client).await;
    if r.is_err() {
        let _ = shot(&client, "failure").await;
    }
    let _ = client.close().await;
    let mut child = driver.child;
    let _ = child.kill().await;
    let _ = driver.url;
    tc.stop().await;
    if let Err(e) = r {
        panic!(
            "browser test failed: {e} (screenshots in {})",
            screenshot_dir().display()
        );
    }
}

async fn run(tc: &TestCentral, c: &Client) -> Res<()> {
    let base = tc.base.as_str();
    let mut fx = fixture(tc).await;
    let slice = "princeton_demo";

    // A PI logs in and creates a slice.
    login(c, base, "pi@princeton.test", PASSWORD).await?;
    shot(c, "01-my-slices").await?;
    fill(c, "#create-slice input[name=name]", slice).await?;
    fill(
        c,
        "#create-slice textarea[name=description]",
        "A demo experiment",
    )
    .await?;
    c.find(Locator::Css("#create-slice button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_text(c, "main h1", None, |t| t.contains(slice)).await?;

    // ... adds two nodes ...
    for h in ["node1.princeton.test", "node2.princeton.test"] {
        c.find(Locator::Css(&format!(r#"#add-nodes input[value="{h}"]"#)))
            .await?
            .click()
            .await?;
    }
    c.find(Locator::Css("#add-nodes button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_text(c, ".notice.ok", None, |t| t.contains("Nodes added")).await?;

    // ... the (simulated) node managers start the slivers and report ...
    for n in fx.nodes.iter_mut().take(2) {
        let d = n.reconcile().await;
        assert_eq!(d, vec![(slice.to_string(), true)], "{}", n.hostname);
        n.report_usage(&[slice.to_string()], 30).await;
    }
    // ... and the PI sees both slivers running.
    let page = format!("{base}/slices/{slice}");
    for h in ["node1.princeton.test", "node2.princeton.test"] {
        wait_text(
            c,
            &format!(r#"tr[data-node="{h}"] td.state"#),
            Some(&page),
            |t| t == "running",
        )
        .await?;
    }
    shot(c, "02-slice-running").await?;

    // The usage plot has a drawn chart.
    c.find(Locator::Id("usage-link")).await?.click().await?;
    wait_text(c, "main h1", None, |t| t.contains("Usage of")).await?;
    let line = c
        .find(Locator::Css(".chart-cpu svg.chart path.line"))
        .await?;
    let points: usize = line
        .attr("data-points")
        .await?
        .unwrap_or_default()
        .parse()?;
    assert!(points >= 2, "the CPU chart has {points} points");
    let d = line.attr("d").await?.unwrap_or_default();
    assert!(d.starts_with('M') && d.contains('L'), "path {d}");
    c.find(Locator::Css(".chart-bw svg.chart path.line"))
        .await?;
    shot(c, "03-slice-usage").await?;
    logout(c).await?;

    // An admin puts node1 in safeboot from mission control ...
    login(c, base, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    c.goto(&format!("{base}/admin")).await?;
    let row = r#"tr[data-node="node1.princeton.test"]"#;
    wait_text(c, &format!("{row} td.slivers"), None, |t| {
        t == "1 running / 1"
    })
    .await?;
    shot(c, "04-mission-control").await?;
    c.find(Locator::Css(&format!("{row} select[name=boot_state]")))
        .await?
        .select_by_value("safeboot")
        .await?;
    c.find(Locator::Css(&format!("{row} form.boot button")))
        .await?
        .click()
        .await?;
    wait_text(c, ".notice.ok", None, |t| t.contains("Boot state changed")).await?;

    // ... the node is told run=false and stops its sliver ...
    let n1 = &mut fx.nodes[0];
    assert_eq!(n1.desired().await, vec![(slice.to_string(), false)]);
    n1.reconcile().await;
    let n2 = &mut fx.nodes[1];
    assert_eq!(n2.reconcile().await, vec![(slice.to_string(), true)]);

    // ... and the admin sees it stopped (the other node's sliver still runs).
    let admin = format!("{base}/admin");
    wait_text(c, &format!("{row} td.slivers"), Some(&admin), |t| {
        t == "0 running / 1"
    })
    .await?;
    shot(c, "05-mission-control-safeboot").await?;
    wait_text(
        c,
        r#"tr[data-node="node1.princeton.test"] td.state"#,
        Some(&page),
        |t| t == "stopped",
    )
    .await?;
    wait_text(
        c,
        r#"tr[data-node="node2.princeton.test"] td.state"#,
        None,
        |t| t == "running",
    )
    .await?;
    shot(c, "06-slice-after-safeboot").await?;
    logout(c).await?;

    // Without login: the public node page and the lookup form.
    c.goto(&format!("{base}/nodes/node1.princeton.test"))
        .await?;
    wait_text(c, "#what h2", None, |t| t == "What is this machine?").await?;
    shot(c, "07-public-node").await?;
    c.find(Locator::Css(r#"#what a[href^="/lookup"]"#))
        .await?
        .click()
        .await?;
    wait_text(c, "main h1", None, |t| t == "Who sent this?").await?;
    fill(c, "#lookup input[name=addr]", "192.0.2.7").await?;
    c.find(Locator::Css("#lookup button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_text(c, "#lookup-result", None, |t| t.contains("No records")).await?;
    shot(c, "08-lookup").await?;
    c.goto(base).await?;
    wait_text(c, "main h1", None, |t| t == "Platform overview").await?;
    shot(c, "09-overview").await?;
    Ok(())
}
