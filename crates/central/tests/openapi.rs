//! The OpenAPI document against the router it describes: every route is documented with exactly
//! the methods it answers, and every operation carries the answers the shared machinery gives.
//! (`scripts/fuzz-api.sh` checks the answers themselves against the running server.)

mod common;

use std::collections::{BTreeSet, HashSet};

use common::{Backend, TestCentral};
use serde_json::Value;

const METHODS: [&str; 6] = ["get", "head", "put", "post", "delete", "patch"];

/// The paths `api::router` routes, read from its source.
fn routed_paths() -> BTreeSet<String> {
    include_str!("../src/api/mod.rs")
        .split(".route(")
        .skip(1)
        .filter_map(|chunk| chunk.split('"').nth(1))
        .filter(|p| *p != "/openapi.json")
        .map(|p| format!("/api/v1{p}"))
        .collect()
}

async fn document(tc: &TestCentral) -> Value {
    tc.anon().get("/openapi.json").await.expect("document")
}

#[tokio::test]
async fn every_route_is_documented_with_the_methods_it_answers() {
    let tc = TestCentral::start(Backend::Sqlite).await;
    let doc = document(&tc).await;
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    let routed = routed_paths();
    assert!(
        routed.len() > 30,
        "router source not understood: {routed:?}"
    );
    assert_eq!(routed, documented, "routed and documented paths differ");
    let http = reqwest::Client::new();
    for (path, item) in paths {
        // A method no route takes is answered 405 with `Allow`: the methods the router has.
        let url = format!("{}{}", tc.base, path.replace(['{', '}'], "x"));
        let r = http
            .request(reqwest::Method::TRACE, &url)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 405, "TRACE {path}");
        let allow = r.headers()["allow"].to_str().expect("ascii").to_lowercase();
        let mut allowed: BTreeSet<&str> = allow.split(',').map(str::trim).collect();
        // A GET route answers HEAD too; only a route of its own is documented.
        if item.get("head").is_none() {
            allowed.remove("head");
        }
        let doc_methods: BTreeSet<&str> = METHODS
            .into_iter()
            .filter(|m| item.get(*m).is_some())
            .collect();
        assert_eq!(allowed, doc_methods, "methods of {path}");
    }
    tc.stop().await;
}

#[tokio::test]
async fn every_operation_lists_its_common_answers() {
    let tc = TestCentral::start(Backend::Sqlite).await;
    let doc = document(&tc).await;
    let mut ids = HashSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let what = format!("{m} {path}");
            let id = op["operationId"].as_str().expect("operationId");
            assert!(
                ids.insert(id.to_string()),
                "{what}: operationId {id} is not unique"
            );
            let answers = op["responses"].as_object().expect("responses");
            let has = |code: &str| answers.contains_key(code);
            assert!(has("500"), "{what} lacks 500");
            if let Some(body) = op.get("requestBody") {
                for code in ["400", "413"] {
                    assert!(has(code), "{what} takes a body but lacks {code}");
                }
                if body["content"].get("application/json").is_some() {
                    assert!(has("422"), "{what} takes JSON but lacks 422");
                }
            }
            let query = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            if query {
                assert!(has("400"), "{what} takes a query but lacks 400");
            }
            let security = op.get("security").unwrap_or(&doc["security"]);
            let public_only = security.as_array().is_some_and(|s| {
                s.iter()
                    .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            if !public_only {
                assert!(has("401"), "{what} accepts credentials but lacks 401");
            }
            for (code, answer) in answers {
                assert!(
                    !answer["description"].as_str().unwrap_or("").is_empty(),
                    "{what} {code}"
                );
                if code.starts_with('4') || code.starts_with('5') {
                    assert_eq!(
                        answer["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{what} {code} has no error body"
                    );
                }
            }
        }
    }
    tc.stop().await;
}

#[tokio::test]
async fn operations_not_marked_public_refuse_anonymous_requests_first() {
    let tc = TestCentral::start(Backend::Sqlite).await;
    // Deleting a node that does not exist: 401 before any lookup (not 404).
    let r = reqwest::Client::new()
        .delete(format!("{}/api/v1/nodes/no.such.node", tc.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("error body");
    assert_eq!(body["error"], "unauthorized");
    // Public operations still answer anonymously.
    let r = reqwest::get(format!("{}/api/v1/nodes/no.such.node", tc.base))
        .await
        .expect("request");
    assert_eq!(r.status(), 404);
    tc.stop().await;
}
