//! A throwaway PostgreSQL server for tests of the PostgreSQL store (Debian's `postgresql`
//! package; `LONGTAIL_TEST_PG_BIN` names another bin directory). Callers skip visibly with
//! [`crate::skip!`] when [`TestServer::start`] says why it cannot run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A throwaway PostgreSQL server in a temporary directory on a free local port, stopped
/// on drop.
pub struct TestServer {
    pub url: String,
    bin: PathBuf,
    data: PathBuf,
    as_root: bool,
    _dir: tempfile::TempDir,
}

fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("LONGTAIL_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|d| d.join("initdb").is_file())
}

fn run(bin: &Path, as_root: bool, tool: &str, args: &[&str]) -> Result<(), String> {
    // initdb and postgres refuse to run as root: as root, run them as `postgres`.
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl TestServer {
    /// Starts a server, or says why it cannot (no server binaries, no `postgres` user).
    pub fn start() -> Result<Self, String> {
        let bin = bin_dir().ok_or("no PostgreSQL server binaries (apt-get install postgresql)")?;
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("pg");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        if as_root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .map_err(|e| e.to_string())?;
            if !ok.success() {
                return Err("cannot hand the data directory to the postgres user".into());
            }
        }
        let d = data.to_str().ok_or("non-UTF-8 temp path")?;
        run(
            &bin,
            as_root,
            "initdb",
            &["-D", d, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let opts = format!("-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=on");
        let log = format!("{d}/log");
        run(
            &bin,
            as_root,
            "pg_ctl",
            &["-D", d, "-o", &opts, "-l", &log, "-w", "-t", "60", "start"],
        )?;
        Ok(Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            data,
            as_root,
            _dir: dir,
        })
    }
}

impl TestServer {
    /// Stops the server (dropping every connection) and starts it again on the same port.
    pub fn restart(&self) -> Result<(), String> {
        let d = self.data.to_str().ok_or("non-UTF-8 temp path")?;
        // With its log file: a server writing to pg_ctl's stdout would keep the pipe open.
        let log = format!("{d}/log");
        run(
            &self.bin,
            self.as_root,
            "pg_ctl",
            &["-D", d, "-l", &log, "-m", "fast", "-w", "restart"],
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(d) = self.data.to_str() {
            let _ = run(
                &self.bin,
                self.as_root,
                "pg_ctl",
                &["-D", d, "-m", "immediate", "stop"],
            );
        }
    }
}
