//! `longtail serve` end to end: the real binary on loopback with a tiny classifier and a tiny
//! sequence interest model. Scoring equals `longtail score`; events are durable, idempotent
//! and change the next list; new items are recommendable at once; admin routes; reload
//! (failed and successful); metrics; SIGTERM with a restart on the same store; export; and
//! two replicas sharing one PostgreSQL store.

mod common;
use common::server::{ids, listing, world, Server, ADMIN, KEY};
use common::{longtail, run_ok};

use serde_json::{json, Value};
use std::path::Path;

/// `longtail score` of `input` into `out` with `extra` flags: its rows.
fn cli_scores(classifier: &Path, input: &Path, out: &Path, extra: &[&str]) -> Vec<Value> {
    run_ok(
        longtail()
            .arg("score")
            .arg("--checkpoint")
            .arg(classifier)
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(out)
            .args(extra),
    );
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The reproduction of issue 29: `--api-key "$API_KEY"` with the variable unset started an
/// open server whose admin routes took an empty key. Bad keys are refused before anything loads.
#[test]
fn serve_refuses_empty_short_shared_or_missing_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], why: &str| {
        let out = longtail()
            .args([
                "serve",
                "--classifier",
                "c",
                "--interest",
                "i",
                "--data",
                "d",
            ])
            .arg("--model-root")
            .arg(tmp.path())
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(why),
            "{args:?}: {err}"
        );
    };
    refused(&["--api-key", "", "--admin-key", ""], "is empty");
    refused(&["--api-key", "short"], "at least 16");
    refused(&["--api-key", KEY, "--admin-key", KEY], "the same");
    refused(&["--bind", "0.0.0.0:0"], "other hosts");
    refused(&["--api-key-file", "/nonexistent/key"], "/nonexistent/key");
    refused(
        &["--store", "postgres://u@localhost/db", "--api-key", KEY],
        "one key",
    );
}

#[test]
fn serve_scores_recommends_learns_from_events_reloads_and_survives_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, classifier, interest) = world(tmp.path());
    let store = format!("sqlite:{}", tmp.path().join("store/events.db").display());
    let server = Server::start(&classifier, &interest, &data, &store);

    // Public routes.
    assert_eq!(server.ok("GET", "/health", None, None)["status"], "ok");
    assert_eq!(server.ok("GET", "/ready", None, None)["status"], "ready");
    let info = server.ok("GET", "/info", Some(KEY), None);
    assert_eq!(info["models"]["items"], 150);
    // /info names the checkpoints: behind the key, and with no absolute path
    assert_eq!(server.call("GET", "/info", None, None).0, 401);
    assert_eq!(server.call("GET", "/info", Some(""), None).0, 401);
    for path in [&info["models"]["interest"]["path"], &info["models"]["data"]] {
        assert!(!path.as_str().unwrap().starts_with('/'), "{info}");
    }
    // a key holder cannot reload from outside the model root
    let (status, body) = server.call(
        "POST",
        "/admin/reload",
        Some(ADMIN),
        Some(&json!({"interest": "/etc"})),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(server.call("POST", "/admin/reload", Some(""), None).0, 401);
    assert_eq!(
        info["models"]["interest"]["weights_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let api = server.ok("GET", "/openapi.json", None, None);
    for path in [
        "/v1/tail/score",
        "/v1/recommend",
        "/v1/events",
        "/v1/items",
        "/admin/reload",
    ] {
        assert!(api["paths"].get(path).is_some(), "openapi lacks {path}");
    }

    // Keys: missing or wrong key is 401, admin routes need the admin key.
    let body = json!({"user_id": "u1"});
    assert_eq!(
        server.call("POST", "/v1/recommend", None, Some(&body)).0,
        401
    );
    assert_eq!(
        server
            .call("POST", "/v1/recommend", Some("wrong"), Some(&body))
            .0,
        401
    );
    assert_eq!(server.call("GET", "/v1/users/u1", Some(KEY), None).0, 401);
    // Unknown fields and bad values are 4xx with a reason.
    let (status, err) = server.call(
        "POST",
        "/v1/recommend",
        Some(KEY),
        Some(&json!({"user": "u1"})),
    );
    assert_eq!(status, 422, "{err}");
    let (status, err) = server.call(
        "POST",
        "/v1/recommend",
        Some(KEY),
        Some(&json!({"user_id": "u1", "k": 0})),
    );
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("`k`"), "{err}");

    // Scoring equals `longtail score` on the same rows.
    let listings: Vec<Value> = (0..12)
        .map(|i| {
            listing(
                &format!("S{i}"),
                ["printer desk", "vintage ribbon refill", "spare"][i % 3],
            )
        })
        .collect();
    let scored = server.ok(
        "POST",
        "/v1/tail/score",
        Some(KEY),
        Some(&json!({"listings": listings})),
    );
    let input = tmp.path().join("listings.jsonl");
    let text: String = listings.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let cli = cli_scores(&classifier, &input, &tmp.path().join("scored.jsonl"), &[]);
    let results = scored["results"].as_array().unwrap();
    assert_eq!(results.len(), cli.len());
    for (a, b) in results.iter().zip(&cli) {
        assert_eq!(a["item_id"], b["item_id"]);
        assert_eq!(a["label"], b["label"]);
        let (pa, pb) = (a["p_tail"].as_f64().unwrap(), b["p_tail"].as_f64().unwrap());
        assert!((pa - pb).abs() < 1e-5, "{a} vs {b}");
    }

    // A user of the data: a list, then a click on its top item changes the next list.
    let first = server.recommend(json!({"user_id": "u5", "k": 5}));
    let before = ids(&first);
    assert_eq!(before.len(), 5);
    assert!(first["history_len"].as_u64().unwrap() > 0);
    assert!(first["rec_id"].as_str().unwrap().starts_with("r_"));
    assert!(
        first["user"].as_str().unwrap().starts_with("u_"),
        "pseudonymised"
    );
    let click = json!({"events": [{"event_id": "e1", "user_id": "u5", "item_id": before[0],
                                    "type": "click", "rec_id": first["rec_id"]}]});
    let ack = server.ok("POST", "/v1/events", Some(KEY), Some(&click));
    assert_eq!(
        (ack["committed"].as_u64(), ack["duplicates"].as_u64()),
        (Some(1), Some(0))
    );
    let again = server.ok("POST", "/v1/events", Some(KEY), Some(&click));
    assert_eq!(
        (again["committed"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let second = server.recommend(json!({"user_id": "u5", "k": 5}));
    assert_eq!(
        second["history_len"].as_u64().unwrap(),
        first["history_len"].as_u64().unwrap() + 1
    );
    let after = ids(&second);
    assert!(
        !after.contains(&before[0]),
        "the clicked item is history now: {after:?}"
    );
    // A dismiss removes an item from every later list.
    let dismiss = json!({"events": [{"event_id": "e2", "user_id": "u5", "item_id": after[0], "type": "dismiss"}]});
    server.ok("POST", "/v1/events", Some(KEY), Some(&dismiss));
    let third = ids(&server.recommend(json!({"user_id": "u5", "k": 5})));
    assert!(
        !third.contains(&after[0]),
        "dismissed item came back: {third:?}"
    );

    // A new item: stored with its p_tail, recommendable at once (full-catalogue list).
    let added = server.ok(
        "POST",
        "/v1/items",
        Some(KEY),
        Some(&json!({"items": [listing("NEW1", "vintage ribbon")]})),
    );
    assert_eq!(added["items"][0]["item_id"], "NEW1");
    assert!(added["items"][0]["p_tail"].as_f64().unwrap() > 0.0);
    let (status, _) = server.call(
        "POST",
        "/v1/items",
        Some(KEY),
        Some(&json!({"items": [listing("NEW1", "x")]})),
    );
    assert_eq!(status, 409, "an existing id is a conflict");
    let all = ids(&server.recommend(json!({"user_id": "u7", "k": 160})));
    assert!(
        all.contains(&"NEW1".to_string()),
        "new item not recommendable"
    );
    let explicit = server.recommend(json!({"history": ["NEW1"], "k": 3}));
    assert_eq!(explicit["items"][0]["because_of"], "NEW1");

    // Admin: what is stored about u5 (2 events), then reloads.
    let third = ids(&server.recommend(json!({"user_id": "u5", "k": 5})));
    let user = server.ok("GET", "/v1/users/u5", Some(ADMIN), None);
    assert_eq!(user["events"].as_array().unwrap().len(), 2);
    let bad = json!({"interest": tmp.path().join("nope").display().to_string()});
    let (status, err) = server.call("POST", "/admin/reload", Some(ADMIN), Some(&bad));
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("previous models keep serving"),
        "{err}"
    );
    assert_eq!(
        ids(&server.recommend(json!({"user_id": "u5", "k": 5}))),
        third,
        "old model serves"
    );
    let reloaded = server.ok("POST", "/admin/reload", Some(ADMIN), Some(&json!({})));
    assert_eq!(
        reloaded["info"]["added_items"], 1,
        "the stored new item survives a reload"
    );
    assert_eq!(
        ids(&server.recommend(json!({"user_id": "u5", "k": 5}))),
        third
    );

    let metrics = server.ok("GET", "/metrics", None, None);
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains(
        "longtail_request_duration_seconds_count{route=\"/v1/recommend\",status=\"200\"}"
    ));
    assert!(
        metrics.contains("longtail_events_committed_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("longtail_failures_total{kind=\"auth\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("longtail_reloads_total 1"));

    // SIGTERM: a clean exit; a new server on the same store has the events and the item.
    assert!(server.terminate().success());
    let server = Server::start_with(
        &classifier,
        &interest,
        &data,
        &store,
        &["--max-body-bytes", "2000", "--max-k", "20"],
    );
    // Limits: a body over --max-body-bytes is 413, a k over --max-k is 400.
    let big = json!({"listings": (0..40).map(|i| listing(&format!("B{i}"), "printer desk")).collect::<Vec<_>>()});
    assert_eq!(
        server
            .call("POST", "/v1/tail/score", Some(KEY), Some(&big))
            .0,
        413
    );
    assert_eq!(
        server
            .call(
                "POST",
                "/v1/recommend",
                Some(KEY),
                Some(&json!({"user_id": "u5", "k": 21}))
            )
            .0,
        400
    );
    assert_eq!(
        ids(&server.recommend(json!({"user_id": "u5", "k": 5}))),
        third
    );
    assert_eq!(
        server.ok("GET", "/info", Some(KEY), None)["models"]["added_items"],
        1
    );
    // Erase u5: their clicks no longer shape the list.
    let gone = server.ok("DELETE", "/v1/users/u5", Some(ADMIN), None);
    assert!(gone["deleted_rows"].as_u64().unwrap() >= 2);
    assert_eq!(
        server.ok("GET", "/v1/users/u5", Some(ADMIN), None)["events"],
        json!([])
    );
    // ... and neither does their history from --data (it used to stay).
    assert!(first["history_len"].as_u64().unwrap() > 0);
    let erased = server.recommend(json!({"user_id": "u5", "k": 5}));
    assert_eq!(erased["history_len"], 0, "{erased}");
    // By pseudonym too (as exports and replies show users): the same user, not a new HMAC.
    let u6 = server.recommend(json!({"user_id": "u6", "k": 5}));
    assert!(u6["history_len"].as_u64().unwrap() > 0);
    let pseudonym = u6["user"].as_str().unwrap().to_string();
    let by_pseudonym = server.ok(
        "DELETE",
        &format!("/v1/users/{pseudonym}"),
        Some(ADMIN),
        None,
    );
    assert_eq!(by_pseudonym["user"], pseudonym.as_str());
    assert_eq!(
        server.recommend(json!({"user_id": "u6", "k": 5}))["history_len"],
        0
    );
    assert!(server.terminate().success());
    // The tombstones outlive a restart: the data's histories stay erased.
    let server = Server::start(&classifier, &interest, &data, &store);
    for u in ["u5", "u6"] {
        let list = server.recommend(json!({"user_id": u, "k": 5}));
        assert_eq!(list["history_len"], 0, "{u} after a restart: {list}");
    }
    assert!(server.terminate().success());
}

/// A click on replica A changes replica B's next list: both share one PostgreSQL store.
#[test]
fn two_replicas_share_a_postgres_store() {
    let pg = match longtail_testutil::postgres::TestServer::start() {
        Ok(s) => s,
        Err(e) => return longtail_testutil::skip!("PostgreSQL not available: {e}"),
    };
    let tmp = tempfile::tempdir().unwrap();
    let (data, classifier, interest) = world(tmp.path());
    let a = Server::start(&classifier, &interest, &data, &pg.url);
    let b = Server::start(&classifier, &interest, &data, &pg.url);
    let before = ids(&b.recommend(json!({"user_id": "u9", "k": 5})));
    let click = json!({"events": [{"event_id": "pg1", "user_id": "u9", "item_id": before[0], "type": "purchase"}]});
    a.ok("POST", "/v1/events", Some(KEY), Some(&click));
    let after = ids(&b.recommend(json!({"user_id": "u9", "k": 5})));
    assert!(!after.contains(&before[0]), "{after:?}");
    // Export from the shared store: the purchase under the user's pseudonym.
    let out = tmp.path().join("export");
    run_ok(
        longtail()
            .args(["events", "export", "--store", &pg.url])
            .arg("--out")
            .arg(&out),
    );
    let inter = std::fs::read_to_string(out.join("interactions.csv")).unwrap();
    assert_eq!(inter.lines().count(), 2, "{inter}");
    assert!(
        inter.contains(&format!(",{},", before[0])) && inter.contains("u_"),
        "{inter}"
    );
    assert!(!inter.contains("u9,"), "raw id exported: {inter}");
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// `scripts/refresh_cycle.sh` against `server` on the tiny world in `root` (raw data in
/// `root/raw`), resuming `interest` at a learning rate of ~0 for 2 steps, into `out`.
fn refresh_cycle(
    server: &Server,
    store: &str,
    root: &Path,
    interest: &Path,
    out: &Path,
) -> std::process::Command {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(repo.join("scripts/refresh_cycle.sh"))
        .env("LONGTAIL", env!("CARGO_BIN_EXE_longtail"))
        .env("STORE", store)
        .env("BASE", root.join("raw"))
        .env("INTEREST", interest)
        .env("OUT", out)
        .env("SERVER", format!("http://{}", server.addr))
        .env("ADMIN_KEY", ADMIN)
        .env("PREPARE_ARGS", "--tail-rule min-count:5")
        .env(
            "TRAIN_ARGS",
            "--max-steps 2 --eval-every 0 --learning-rate 1e-12",
        );
    cmd
}

/// The documented re-training cycle on the tiny world: events and a new item go into the
/// store, `scripts/refresh_cycle.sh` exports them on top of the raw data, prepares, resumes
/// training, gates and reloads; the server then serves the candidate, new item included.
#[test]
fn refresh_cycle_exports_retrains_gates_and_reloads() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        return longtail_testutil::skip!("curl not installed (the cycle script reloads with it)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (data, classifier, interest) = world(tmp.path());
    let store = format!("sqlite:{}", tmp.path().join("events.db").display());
    let server = Server::start(&classifier, &interest, &data, &store);
    server.ok(
        "POST",
        "/v1/items",
        Some(KEY),
        Some(&json!({"items": [listing("NEW1", "vintage ribbon")]})),
    );
    let events: Vec<Value> = (0..6)
        .map(|i| json!({"event_id": format!("c{i}"), "user_id": format!("shopper{}", i % 2),
                        "item_id": if i % 3 == 0 { "NEW1".to_string() } else { format!("I{:03}", i * 3) },
                        "type": "purchase", "timestamp": 1_500_000_000 + i}))
        .collect();
    server.ok(
        "POST",
        "/v1/events",
        Some(KEY),
        Some(&json!({"events": events})),
    );

    let out = tmp.path().join("cycle");
    // A learning rate of ~0: the candidate's metrics equal the serving model's, so the gate
    // (no drop on validation) passes deterministically.
    let status = refresh_cycle(&server, &store, tmp.path(), &interest, &out)
        .status()
        .unwrap();
    assert!(status.success(), "refresh cycle failed: {status}");
    let exported = std::fs::read_to_string(out.join("export/interactions.csv")).unwrap();
    let base = std::fs::read_to_string(tmp.path().join("raw/interactions.csv")).unwrap();
    assert_eq!(exported.lines().count(), base.lines().count() + 6);
    assert!(std::fs::read_to_string(out.join("export/items.jsonl"))
        .unwrap()
        .contains("\"NEW1\""));
    let info = server.ok("GET", "/info", Some(KEY), None);
    // paths relative to the model root (the test's directory): no absolute path is shown
    let root = tmp.path().canonicalize().unwrap();
    let relative = |p: &Path| {
        p.canonicalize()
            .unwrap()
            .strip_prefix(&root)
            .unwrap()
            .display()
            .to_string()
    };
    assert_eq!(
        info["models"]["interest"]["path"],
        relative(&out.join("interest"))
    );
    // The new item is in the prepared catalogue now, not an added one, and the exported
    // users' histories (under their pseudonyms) are the data's.
    assert_eq!(info["models"]["added_items"], 0);
    assert_eq!(info["models"]["items"], 151);
    assert_eq!(info["models"]["data"], relative(&out.join("prepared")));
    let list = server.recommend(json!({"user_id": "shopper0", "k": 5}));
    assert_eq!(list["history_len"], 3);
    assert!(server.terminate().success());
}

/// `serve --precision int8`: /info says so, /v1/tail/score gives `score --precision int8`'s
/// probabilities (the same integer path), and a reload keeps the precision.
#[test]
fn serve_in_int8_scores_as_the_int8_cli_and_keeps_it_across_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, classifier, interest) = world(tmp.path());
    let store = format!("sqlite:{}", tmp.path().join("store/events.db").display());
    let server = Server::start_with(
        &classifier,
        &interest,
        &data,
        &store,
        &["--precision", "int8"],
    );
    let info = server.ok("GET", "/info", Some(KEY), None);
    assert_eq!(info["models"]["classifier_precision"], "int8", "{info}");

    let listings: Vec<Value> = (0..8)
        .map(|i| {
            listing(
                &format!("Q{i}"),
                ["printer desk", "vintage ribbon refill"][i % 2],
            )
        })
        .collect();
    let input = tmp.path().join("listings.jsonl");
    let text: String = listings.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let cli = |precision: &str| -> Vec<f64> {
        let out = tmp.path().join(format!("scored-{precision}.jsonl"));
        cli_scores(&classifier, &input, &out, &["--precision", precision])
            .iter()
            .map(|r| r["p_tail"].as_f64().unwrap())
            .collect()
    };
    let served = |server: &Server| -> Vec<f64> {
        let v = server.ok(
            "POST",
            "/v1/tail/score",
            Some(KEY),
            Some(&json!({"listings": listings})),
        );
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["p_tail"].as_f64().unwrap())
            .collect()
    };
    // The tiny random classifier's p_tail barely moves, so "served in int8" means: nearer
    // the int8 CLI than the fp32 one (batching may move the last bits), and close to it.
    let (int8, fp32) = (cli("int8"), cli("fp32"));
    assert_ne!(
        int8, fp32,
        "int8 and fp32 agree exactly: the integer path did not run"
    );
    let dist = |a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    let check = |served: Vec<f64>, when: &str| {
        let (d8, d32) = (dist(&served, &int8), dist(&served, &fp32));
        assert!(
            d8 < 1e-5 && d8 < d32,
            "{when}: |served - int8| {d8}, |served - fp32| {d32}"
        );
    };
    check(served(&server), "at start");
    let reload = json!({"classifier": classifier.to_str().unwrap()});
    let (status, v) = server.call("POST", "/admin/reload", Some(ADMIN), Some(&reload));
    assert_eq!(status, 200, "{v}");
    check(served(&server), "after a reload");
}

/// `serve --plan`: /v1/recommend answers exactly the library's served lists for the plan
/// (the ranking eval-rec's `served` row measures), /info shows the plan, a new listing is
/// recommendable through the text components, and the re-training cycle with PLAN refits
/// the plan, gates on `served` against the plan in service and reloads both.
#[test]
fn serve_with_a_plan_serves_its_lists_and_the_cycle_refits_it() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        return longtail_testutil::skip!("curl not installed (the cycle script reloads with it)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (data, classifier, interest) = world(tmp.path());
    let plan = tmp.path().join("plan");
    run_ok(
        longtail()
            .arg("plan")
            .arg("--data")
            .arg(&data)
            .arg("--checkpoint")
            .arg(&interest)
            .arg("--relevance-budget")
            .arg("0.5")
            .arg("--out")
            .arg(&plan),
    );
    let store = format!("sqlite:{}", tmp.path().join("events.db").display());
    let plan_arg = plan.to_str().unwrap();
    let server = Server::start_with(&classifier, &interest, &data, &store, &["--plan", plan_arg]);
    let info = server.ok("GET", "/info", Some(KEY), None);
    assert!(
        !info["models"]["plan"]["components"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{info}"
    );

    let (rec, _) = longtail_interest::Recommender::load_plan(
        &plan,
        &data,
        &longtail_interest::RecommenderOptions::default(),
    )
    .unwrap();
    let knob = rec.plan_knob();
    let mut compared = 0;
    for seq in rec
        .interactions()
        .seqs
        .iter()
        .filter(|s| s.len() >= 2)
        .take(8)
    {
        let history: Vec<String> = seq.iter().map(|&i| rec.item_id(i).to_string()).collect();
        let answer = server.recommend(json!({"history": history, "k": 5}));
        let served: Vec<(String, String)> = answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["item_id"].as_str().unwrap().to_string(),
                    x["because_of"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let lib: Vec<(String, String)> = rec
            .recommend(seq, 5, knob)
            .unwrap()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    rec.item_id(x.item).to_string(),
                    rec.item_id(x.because_of.unwrap()).to_string(),
                )
            })
            .collect();
        assert_eq!(served, lib, "history {history:?}");
        compared += 1;
    }
    assert_eq!(compared, 8);
    // A new listing joins the catalogue; a history holding it still gets a list.
    server.ok(
        "POST",
        "/v1/items",
        Some(KEY),
        Some(&json!({"items": [listing("NEW2", "vintage ribbon")]})),
    );
    let first = rec.item_id(rec.interactions().seqs[0][0]).to_string();
    let list = server.recommend(json!({"history": [first, "NEW2"], "k": 5}));
    assert_eq!(list["items"].as_array().unwrap().len(), 5);

    // The cycle with PLAN: a purchase, then export, prepare, resume, plan, gate, reload.
    server.ok(
        "POST",
        "/v1/events",
        Some(KEY),
        Some(&json!({"events": [{"event_id": "p1", "user_id": "shopper9",
            "item_id": "I003", "type": "purchase", "timestamp": 1_500_000_000}]})),
    );
    let out = tmp.path().join("cycle");
    let status = refresh_cycle(&server, &store, tmp.path(), &interest, &out)
        .env("PLAN", &plan)
        .env("PLAN_ARGS", "--relevance-budget 0.5")
        .status()
        .unwrap();
    assert!(status.success(), "refresh cycle failed: {status}");
    assert!(out.join("plan/plan.json").is_file());
    let gate: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("gate/report.json")).unwrap())
            .unwrap();
    assert!(gate["validation"]["served"].is_object());
    assert!(gate["validation"]["serving"].is_object());
    let info = server.ok("GET", "/info", Some(KEY), None);
    let root = tmp.path().canonicalize().unwrap();
    let interest = out.join("interest").canonicalize().unwrap();
    assert_eq!(
        info["models"]["interest"]["path"],
        interest.strip_prefix(&root).unwrap().display().to_string()
    );
    assert!(info["models"]["plan"].is_object());
    assert!(server.terminate().success());
}
