//! Unit tests of the router helpers (the HTTP behaviour is tested through the real binary in
//! tests/serve_cli.rs).

use super::*;

#[test]
fn a_full_queue_answers_429_and_a_finished_request_frees_its_place() {
    let a = Admission::new(2);
    let first = a.enter().unwrap();
    let _second = a.enter().unwrap();
    let full = a.enter().unwrap_err();
    assert_eq!(full.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(first);
    assert!(a.enter().is_ok());
}

#[test]
fn reload_paths_must_lie_under_the_model_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("models");
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::create_dir_all(tmp.path().join("secret")).unwrap();
    let root = root.canonicalize().unwrap();
    let inside = root.join("a");
    assert_eq!(confine(&root, inside.to_str().unwrap()).unwrap(), inside);
    let escape = root.join("a/../../secret");
    let err = confine(&root, escape.to_str().unwrap()).unwrap_err();
    assert_eq!(err.status(), StatusCode::FORBIDDEN, "{err}");
    let err = confine(&root, "/etc").unwrap_err();
    assert_eq!(err.status(), StatusCode::FORBIDDEN, "{err}");
    let err = confine(&root, root.join("missing").to_str().unwrap()).unwrap_err();
    assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(crate::engine::shown_path(&root, &inside), "a");
    assert_eq!(
        crate::engine::shown_path(&root, &tmp.path().join("secret")),
        "(outside the model root)/secret"
    );
}

#[test]
fn keys_match_from_either_header_and_only_exactly() {
    let bind = "127.0.0.1:1".parse().unwrap();
    let key = ServiceKeys::new(Some("secret"), None, bind).unwrap_err();
    assert!(key.to_string().contains("at least 16"), "{key}");
    let key = ServiceKeys::new(Some("secret-of-16-bytes"), None, bind)
        .unwrap()
        .api
        .unwrap();
    let mut h = HeaderMap::new();
    assert!(!key_matches(&key, &h));
    h.insert("x-api-key", "secret-of-16-bytes".parse().unwrap());
    assert!(key_matches(&key, &h));
    h.insert("x-api-key", "secret-of-16-bytes2".parse().unwrap());
    assert!(!key_matches(&key, &h));
    let mut b = HeaderMap::new();
    b.insert(
        "authorization",
        "Bearer secret-of-16-bytes".parse().unwrap(),
    );
    assert!(key_matches(&key, &b));
    b.insert("authorization", "Basic secret-of-16-bytes".parse().unwrap());
    assert!(!key_matches(&key, &b));
}
