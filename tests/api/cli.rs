//! The binary on its local default: `subdesk serve` runs its own PostgreSQL in the data
//! directory, other commands attach to it, and it stops with the server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::acme_case;

fn subdesk(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_subdesk"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("SUBDESK_READ_DATABASE_URL")
        .env_remove("SUBDESK_MASTER_KEY")
        .env("RUST_LOG", "warn")
        .arg("--data-dir")
        .arg(data_dir);
    command
}

fn issue_token(data_dir: &Path, args: &[&str]) -> String {
    let output = subdesk(data_dir)
        .args(["token", "issue"])
        .args(args)
        .output()
        .expect("run subdesk token issue");
    assert!(
        output.status.success(),
        "token issue failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the token alone on stdout: {stdout:?}");
    lines[0].to_string()
}

/// A data directory the `postgres` user can reach when the tests run as root.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("subdesk-cli-")
        .tempdir()
        .expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

#[tokio::test]
async fn serve_runs_on_a_private_postgres_that_other_commands_share_and_stops_with_it() {
    let dir = data_dir();
    let data = dir.path().join("data");
    let admin = issue_token(&data, &["--role", "admin"]);
    assert!(admin.starts_with("sdk_"));
    assert!(
        !data.join("pg/postmaster.pid").exists(),
        "a one-off command stops the cluster it started"
    );

    let mut server = subdesk(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start subdesk serve");
    let stderr = server.stderr.take().expect("stderr");
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let address = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = address_tx.send(address);
            }
        }
    });
    let address = address_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("server address");
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("{address}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);

    // A command pointed at the same data directory attaches to the running cluster.
    let ann = issue_token(
        &data,
        &[
            "--role",
            "customer",
            "--org",
            "acme",
            "--user",
            "ann@acme.test",
        ],
    );
    assert!(
        data.join("pg/postmaster.pid").exists(),
        "the server's cluster is still up"
    );
    // A subscription gives acme a support entitlement; a case is opened under it right away
    // (the case path waits for the subscription read model to catch up when it must).
    let now = chrono::Utc::now();
    let subscription: serde_json::Value = http
        .post(format!("{address}/v1/subscriptions"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({
            "org_id": "acme", "product": "jira-software", "plan": "standard", "seats": 10,
            "term_start": (now - chrono::Duration::days(1)).to_rfc3339(),
            "term_end": (now + chrono::Duration::days(365)).to_rfc3339(),
            "auto_renew": true, "channel": {"kind": "direct"}
        }))
        .send()
        .await
        .expect("create subscription")
        .json()
        .await
        .expect("subscription receipt");
    let mut case = acme_case();
    case["entitlement_number"] = subscription["entitlement_number"].clone();
    let created = http
        .post(format!("{address}/v1/cases"))
        .bearer_auth(&ann)
        .json(&case)
        .send()
        .await
        .expect("open case");
    assert_eq!(
        created.status(),
        StatusCode::CREATED,
        "{:?}",
        created.text().await
    );
    let unauthorized = http
        .post(format!("{address}/v1/cases"))
        .json(&acme_case())
        .send()
        .await
        .expect("POST");
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the server stops on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit: {status}");
    assert!(
        !data.join("pg/postmaster.pid").exists(),
        "the private cluster stopped with the server"
    );
}

#[test]
fn token_issue_refuses_a_customer_without_an_org() {
    let dir = data_dir();
    let output = subdesk(&dir.path().join("data"))
        .args(["token", "issue", "--role", "customer"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs an org"));
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn a_command_prints_its_result_alone_and_nothing_else_unless_asked() {
    let target = crate::helpers::fresh_database().await;
    let run = |verbose: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_subdesk"));
        command
            .env_remove("RUST_LOG")
            .env("SUBDESK_MASTER_KEY", crate::helpers::TEST_MASTER_KEY)
            .env("DATABASE_URL", crate::helpers::database_url(&target));
        if verbose {
            command.arg("-v");
        }
        command
            .args([
                "token",
                "issue",
                "--role",
                "admin",
                "--user",
                "quiet@support.test",
            ])
            .output()
            .expect("run subdesk token issue")
    };
    let quiet = run(false);
    assert!(quiet.status.success());
    let stdout = String::from_utf8_lossy(&quiet.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("sdk_"));
    assert_eq!(
        String::from_utf8_lossy(&quiet.stderr),
        "",
        "no logs, no PostgreSQL notices"
    );
    // Asked for more, it says what it does (on stderr; stdout stays the token alone).
    let verbose = run(true);
    assert!(verbose.status.success());
    assert_eq!(String::from_utf8_lossy(&verbose.stdout).lines().count(), 1);
}
