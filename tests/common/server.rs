//! A running `longtail serve` on loopback for the serve tests, with the tiny world it serves.
#![allow(dead_code)] // each test binary uses a different part

use super::longtail;
use super::tiny::{prepared, tiny_classifier, tiny_model, train_sequence};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

pub const KEY: &str = "test-api-key-0123456789";
pub const ADMIN: &str = "test-admin-key-0123456789";
pub const USER_KEY: &str = "0123456789abcdef0123";

/// A running server, killed on drop if the test did not stop it.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(classifier: &Path, interest: &Path, data: &Path, store: &str) -> Self {
        Self::start_with(classifier, interest, data, store, &[])
    }

    pub fn start_with(
        classifier: &Path,
        interest: &Path,
        data: &Path,
        store: &str,
        extra: &[&str],
    ) -> Self {
        Self::start_env(classifier, interest, data, store, extra, &[])
    }

    /// As [`Server::start_with`], with environment variables (test crash points).
    pub fn start_env(
        classifier: &Path,
        interest: &Path,
        data: &Path,
        store: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let key_file = data.parent().unwrap().join("api.key");
        std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
        let child = longtail()
            .arg("serve")
            .arg("--classifier")
            .arg(classifier)
            .arg("--interest")
            .arg(interest)
            .arg("--data")
            .arg(data)
            .args(["--store", store, "--bind", "127.0.0.1:0"])
            // the test's temporary directory: the refresh cycle reloads from there
            .arg("--model-root")
            .arg(data.parent().unwrap())
            // keys off the command line (which `ps` shows): a file and the environment
            .arg("--api-key-file")
            .arg(&key_file)
            .env("LONGTAIL_SERVE_ADMIN_KEY", ADMIN)
            .args(["--user-id-key", USER_KEY])
            .args(extra)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start longtail serve");
        Self::attach(child)
    }

    /// A spawned `longtail serve` (stderr piped): waits until it listens.
    pub fn attach(mut child: Child) -> Self {
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("serve exited before listening:\n{seen}");
            };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(a) = line.split("listening on http://").nth(1) {
                break a.trim().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, addr }
    }

    /// One request; the status and the body (JSON when it parses, else a string).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        call(&self.addr, method, path, key, body).expect("a reply")
    }

    pub fn ok(&self, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, key, body);
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    pub fn recommend(&self, body: Value) -> Value {
        self.ok("POST", "/v1/recommend", Some(KEY), Some(&body))
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

/// One request to `addr` on a fresh connection: the status and the body (JSON when it parses,
/// else a string); None when the connection fails or closes without a reply (a server killed
/// mid-request).
pub fn call(
    addr: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if let Some(k) = key {
        req.push_str(&format!("x-api-key: {k}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("content-type: application/json\r\n");
    }
    req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let value = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
    Some((status, value))
}

pub fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_string())
        .collect()
}

/// A tiny world in its own temporary directory with a SQLite store there: what most serve
/// tests start from.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub classifier: PathBuf,
    pub interest: PathBuf,
    /// `sqlite:<tmp>/store/events.db`
    pub store: String,
}

impl World {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (data, classifier, interest) = world(tmp.path());
        let store = format!("sqlite:{}", tmp.path().join("store/events.db").display());
        Self {
            tmp,
            data,
            classifier,
            interest,
            store,
        }
    }

    /// `longtail serve` on this world with `extra` flags and `env` variables.
    pub fn serve(&self, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_env(
            &self.classifier,
            &self.interest,
            &self.data,
            &self.store,
            extra,
            env,
        )
    }
}

/// The tiny world: prepared data, a classifier, a sequence interest model.
pub fn world(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let model = tiny_model(root);
    let data = prepared(root);
    let classifier = tiny_classifier(root);
    let interest = root.join("interest");
    let model = model.to_str().unwrap();
    train_sequence(
        &data,
        &interest,
        &["--model", model, "--max-steps", "4", "--eval-every", "0"],
    );
    (data, classifier, interest)
}

pub fn listing(id: &str, title: &str) -> Value {
    json!({"item_id": id, "title": title, "brand": "office", "categories": "office",
           "description": "black pack"})
}
