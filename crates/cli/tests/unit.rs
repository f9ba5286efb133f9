//! Config file, formatting and exit codes: no central needed.

use std::os::unix::fs::PermissionsExt;

use slicelab::commands::{default_db_url, parse_key_file, sqlite_path};
use slicelab::config::Config;
use slicelab::table::{fields, truncate, Table};
use slicelab::timefmt::*;
use slicelab::{exit, exit_code, message, CliError};
use slicelab_client::ClientError;

#[test]
fn config_round_trip_with_mode_0600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub").join("config.toml");
    assert_eq!(
        Config::load(&path).expect("missing is empty"),
        Config::default()
    );
    let cfg = Config {
        central: Some("http://127.0.0.1:8080".into()),
        token: Some("secret-token".into()),
        email: Some("admin@localhost".into()),
        ca_fingerprint: Some(format!("sha256:{}", "ab".repeat(32))),
        ..Config::default()
    };
    cfg.save(&path).expect("save");
    assert_eq!(Config::load(&path).expect("load"), cfg);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dmode = std::fs::metadata(path.parent().unwrap())
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o700);
    // Saving again replaces the file and keeps the mode.
    let cfg2 = Config {
        token: None,
        ..cfg.clone()
    };
    cfg2.save(&path).expect("save");
    assert_eq!(Config::load(&path).expect("load"), cfg2);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!std::fs::read_to_string(&path).unwrap().contains("token"));
}

#[test]
fn config_env_overrides() {
    let file = Config {
        central: Some("http://a".into()),
        token: Some("t1".into()),
        email: Some("e@x".into()),
        ..Config::default()
    };
    let c = file.clone().with_overrides(Some("http://b".into()), None);
    assert_eq!(c.central.as_deref(), Some("http://b"));
    assert_eq!(c.token.as_deref(), Some("t1"));
    let c = file
        .clone()
        .with_overrides(Some(String::new()), Some("t2".into()));
    assert_eq!(c.central.as_deref(), Some("http://a"));
    assert_eq!(c.token.as_deref(), Some("t2"));
}

#[test]
fn bad_config_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "central = [").unwrap();
    let e = Config::load(&path).unwrap_err();
    assert!(format!("{e:#}").contains("config.toml"));
}

#[test]
fn table_aligns_columns() {
    let mut t = Table::new(&["id", "name", "note"]);
    t.row(["1", "princeton", "x"]);
    t.row(["22", "mit", ""]);
    t.row(["3", "tab\there", "last"]);
    assert_eq!(
        t.render(),
        "ID  NAME       NOTE\n\
         1   princeton  x\n\
         22  mit\n\
         3   tab here   last\n"
    );
    assert_eq!(
        fields(&[("id", "1".into()), ("login_base", "x".into())]),
        "id:          1\nlogin_base:  x\n"
    );
    assert_eq!(truncate("abcdef", 4), "abc…");
    assert_eq!(truncate("abc", 4), "abc");
}

#[test]
fn times_format_and_parse() {
    assert_eq!(fmt_time(0), "1970-01-01 00:00Z");
    assert_eq!(fmt_time(1_795_666_380), "2026-11-26 04:13Z");
    assert_eq!(parse_time("2026-11-26T04:13:00Z"), Ok(1_795_666_380));
    assert_eq!(parse_time("2026-11-26T05:13:00+01:00"), Ok(1_795_666_380));
    assert_eq!(parse_time("2026-11-26T04:13:00.123Z"), Ok(1_795_666_380));
    assert_eq!(parse_time("2026-11-26"), Ok(1_795_651_200));
    assert_eq!(parse_time("1795666380"), Ok(1_795_666_380));
    assert!(parse_time("yesterday").is_err());
    assert!(parse_time("2026-13-01").is_err());
    assert!(parse_time("2026-11-26T04:13:00").is_err(), "needs a zone");
    for days in [-1000, 0, 1, 59, 365, 11_016, 20_000, 100_000] {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
    let now = 1_000_000;
    assert_eq!(fmt_relative(now + 27 * 86_400 + 5, now), "in 27d");
    assert_eq!(fmt_relative(now - 3 * 3600, now), "3h ago");
    assert_eq!(fmt_relative(now - 90, now), "1m ago");
    assert_eq!(fmt_relative(now, now), "now");
    assert_eq!(parse_duration("15m"), Ok(900));
    assert_eq!(parse_duration("2h"), Ok(7200));
    assert_eq!(parse_duration("1w"), Ok(604_800));
    assert!(parse_duration("2x").is_err());
    assert_eq!(parse_since("2h", now), Ok(now - 7200));
    assert_eq!(parse_since("12345", now), Ok(12345));
    assert_eq!(parse_since("1970-01-02T00:00:00Z", now), Ok(86_400));
}

fn api(status: u16) -> anyhow::Error {
    ClientError::Api {
        status,
        error: "x".into(),
        message: "the message".into(),
    }
    .into()
}

#[test]
fn exit_codes_map_errors() {
    assert_eq!(exit_code(&api(401)), exit::AUTH);
    assert_eq!(exit_code(&api(403)), exit::AUTH);
    assert_eq!(exit_code(&api(404)), exit::NOT_FOUND);
    for s in [400, 409, 422] {
        assert_eq!(exit_code(&api(s)), exit::REFUSED, "{s}");
    }
    assert_eq!(exit_code(&api(500)), exit::GENERIC);
    let busy = ClientError::Busy {
        retry_after: 2,
        message: "busy".into(),
    };
    assert_eq!(exit_code(&busy.into()), exit::TRANSPORT);
    assert_eq!(
        exit_code(&ClientError::Decode("x".into()).into()),
        exit::GENERIC
    );
    assert_eq!(exit_code(&CliError::NotLoggedIn.into()), exit::AUTH);
    assert_eq!(exit_code(&CliError::Usage("u".into()).into()), exit::USAGE);
    assert_eq!(
        exit_code(&CliError::Invalid("i".into()).into()),
        exit::REFUSED
    );
    assert_eq!(exit_code(&anyhow::anyhow!("other")), exit::GENERIC);
    // Context added on top does not hide the typed cause.
    assert_eq!(
        exit_code(&api(404).context("showing slice")),
        exit::NOT_FOUND
    );

    assert_eq!(
        message(&api(401)),
        "not logged in: the message (run `slicelab login`)"
    );
    assert_eq!(message(&api(403)), "not allowed: the message");
    assert_eq!(message(&api(404)), "the message");
    assert_eq!(
        message(&api(404).context("showing slice")),
        "showing slice: the message"
    );
}

#[tokio::test]
async fn transport_errors_exit_6() {
    // Nothing listens on port 1 of loopback.
    let c = slicelab_client::Client::new("http://127.0.0.1:1", None);
    let e: anyhow::Error = c.whoami().await.expect_err("refused").into();
    assert_eq!(exit_code(&e), exit::TRANSPORT);
    assert!(
        message(&e).contains("cannot reach central at http://127.0.0.1:1"),
        "{}",
        message(&e)
    );
}

#[test]
fn key_files_are_checked_locally() {
    let ok = "# my keys\n\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop\n";
    let keys = parse_key_file(ok, "id.pub").expect("valid");
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with("ssh-ed25519 "));
    let e = parse_key_file("not a key\n", "id.pub").unwrap_err();
    assert!(e.to_string().starts_with("id.pub, line 1:"), "{e}");
    assert!(parse_key_file("# nothing\n", "id.pub").is_err());
}

#[test]
fn central_db_defaults() {
    assert_eq!(
        default_db_url(true, None),
        "sqlite:///var/lib/slicelab/central.db"
    );
    assert_eq!(
        default_db_url(false, Some("/home/u/.local/share".into())),
        "sqlite:///home/u/.local/share/slicelab/central.db"
    );
    assert_eq!(
        sqlite_path("sqlite:///tmp/x/c.db?mode=rwc"),
        Some("/tmp/x/c.db".into())
    );
    assert_eq!(sqlite_path("sqlite://./c.db"), Some("./c.db".into()));
    assert_eq!(sqlite_path("sqlite::memory:"), None);
    assert_eq!(sqlite_path("postgres://db/x"), None);
}

#[test]
fn images_render_with_site_names_and_layers() {
    use slicelab_model::image::{Image, ImageConfig, ImageManifest, LayerRef, Visibility};
    let img = Image {
        image_id: 1,
        name: "debian-12".into(),
        digest: format!("sha256:{}", "d".repeat(64)),
        visibility: Visibility::Site,
        site_id: 7,
        owner: "pi@pl.test".into(),
        size: 31_000_000,
        created: 86_400,
        manifest: ImageManifest {
            config: ImageConfig {
                entrypoint: vec!["/bin/sh".into()],
                cmd: vec!["-c".into(), "sleep 1".into()],
                ..Default::default()
            },
            layers: vec![LayerRef {
                digest: format!("sha256:{}", "e".repeat(64)),
                size: 31_000_000,
                media_type: slicelab_model::image::LAYER_TAR_GZIP.into(),
            }],
        },
    };
    let sites = std::collections::HashMap::from([(7, "pl".to_string())]);
    let list = slicelab::render::images(std::slice::from_ref(&img), &sites);
    assert!(
        list.contains("debian-12") && list.contains("site") && list.contains(" pl "),
        "{list}"
    );
    assert!(list.contains("31.0 MB"), "{list}");
    let show = slicelab::render::image(&img, &std::collections::HashMap::new());
    assert!(show.contains("/bin/sh -c sleep 1"), "{show}");
    assert!(show.contains(&"e".repeat(64)), "{show}");
    assert!(show.contains("site:") && show.contains(" 7\n"), "{show}");
}

#[test]
fn a_site_shows_its_image_quota_and_use() {
    let mut site = slicelab_model::Site {
        id: 1,
        login_base: "pl".into(),
        name: "PlanetLab".into(),
        url: String::new(),
        max_slices: 10,
        latitude: None,
        longitude: None,
        enabled: true,
        created: 86_400,
        image_quota_mb: 20480,
        image_used_bytes: 5 << 28,
    };
    let show = slicelab::render::site(&site);
    assert!(
        show.contains("image_quota_mb:") && show.contains(" 20480\n"),
        "{show}"
    );
    assert!(show.contains("1280.0 MiB (6% of the quota)"), "{show}");
    site.image_quota_mb = 0;
    site.image_used_bytes = 0;
    let show = slicelab::render::site(&site);
    assert!(show.contains(" 0.0 MiB\n"), "{show}");
}
