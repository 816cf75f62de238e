//! `spawn_app` and friends: a throwaway PostgreSQL cluster per test process (the same
//! launcher `subdesk serve` uses), a migrated template database, and for each test a fresh
//! database cloned from the template and a server on a random loopback port.

// Shared by every test module; not each helper is used by all of them at every point.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::Value;
use subdesk::app::{serve, AppState, Settings};
use subdesk::auth::{self, TokenSpec};
use subdesk::db::{self, Target};
use subdesk::pg::{hand_over, ClusterOptions, LocalCluster};
use subdesk_aggregates::{ActorRole, Clock};
use tokio_util::sync::CancellationToken;

const TEMPLATE: &str = "subdesk_template";

/// The master key of every server and command the tests run (in process and as processes),
/// so that they open each other's sealed events.
pub const TEST_MASTER_KEY: &str =
    "5ab7e4c0d1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c";

/// Installs [`TEST_MASTER_KEY`] in this test process.
pub fn install_test_master_key() {
    let key = subdesk_projections::privacy::MasterKey::from_hex(TEST_MASTER_KEY)
        .expect("the test master key is 64 hex digits");
    subdesk_projections::privacy::install(key).expect("one master key per test process");
}

struct TestCluster {
    cluster: LocalCluster,
}

/// Starts the process's cluster once, in a thread of its own (each test has its own
/// runtime). It stops and removes itself when the test process exits: its wrapper waits on a
/// pipe that closes with the process.
fn cluster() -> &'static TestCluster {
    static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for the test cluster");
            runtime.block_on(async {
                let dir = std::env::temp_dir().join(format!("subdesk-test-{}", std::process::id()));
                std::fs::create_dir_all(&dir).expect("test cluster directory");
                hand_over(&dir).expect("hand the test directory to the postgres user");
                let options = ClusterOptions {
                    settings: [
                        ("fsync", "off"),
                        ("synchronous_commit", "off"),
                        ("full_page_writes", "off"),
                        ("max_connections", "500"),
                    ]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                    remove_on_stop: true,
                };
                let cluster = LocalCluster::start(&dir, &options)
                    .await
                    .expect("start test cluster");
                cluster
                    .ensure_database(TEMPLATE)
                    .await
                    .expect("template database");
                db::migrate(&Target::local(&cluster, TEMPLATE))
                    .await
                    .expect("migrate the template database");
                TestCluster { cluster }
            })
        })
        .join()
        .expect("test cluster thread")
    })
}

/// A fresh, migrated database of its own.
pub async fn fresh_database() -> Target {
    install_test_master_key();
    let cluster = &cluster().cluster;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) = cluster
        .config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to the test cluster");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
        .await
        .expect("clone the template database");
    drop(client);
    let _ = driver.await;
    Target::local(cluster, &name)
}

/// A `postgres://` URL of a test database, for running the binary against it.
pub fn database_url(target: &Target) -> String {
    let config = &target.config;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        None => "localhost".into(),
    };
    format!(
        "postgres://{}@localhost:{}/{}?host={host}",
        config.get_user().unwrap_or("postgres"),
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_dbname().unwrap_or("postgres"),
    )
}

/// Runs the `subdesk` binary against a test database. Asynchronously: the test's runtime
/// also drives the in-process server and its projection runner, which must keep going (a
/// runner frozen mid-transaction would hold the read horizon back for the binary).
pub async fn subdesk_cli(target: &Target, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_subdesk"))
        .env("DATABASE_URL", database_url(target))
        .env("SUBDESK_MASTER_KEY", TEST_MASTER_KEY)
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .await
        .expect("run subdesk")
}

/// A plain connection to a test database, for looking at what the API wrote.
pub async fn connect(target: &Target) -> tokio_postgres::Client {
    let (client, connection) = target
        .config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub target: Target,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Settings::default(), Arc::new(subdesk::clock::SystemClock)).await
}

pub async fn spawn_app_with(settings: Settings, clock: Arc<dyn Clock>) -> TestApp {
    let target = fresh_database().await;
    spawn_app_on(target, settings, clock).await
}

/// A server on an existing database (several may share one, as processes would).
pub async fn spawn_app_on(target: Target, settings: Settings, clock: Arc<dyn Clock>) -> TestApp {
    subdesk::telemetry::init_logging();
    // Polls every 200 ms unless the test chose its own interval.
    let poll_interval = if settings.projection.poll_interval
        == subdesk_projections::RunnerConfig::default().poll_interval
    {
        Duration::from_millis(200)
    } else {
        settings.projection.poll_interval
    };
    let settings = Settings {
        pool_size: 8,
        projection: subdesk_projections::RunnerConfig {
            poll_interval,
            ..settings.projection
        },
        ..settings
    };
    seed_acme_entitlement(&target).await;
    subdesk::privacy::keyring::check_master(&connect(&target).await)
        .await
        .expect("the test database takes the test master key");
    let state = AppState::build(&target, &target, settings, clock).expect("build app state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("local address"));
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(state.clone(), listener, shutdown.clone()));
    TestApp {
        address,
        http: reqwest::Client::new(),
        state,
        target,
        shutdown,
    }
}

/// Gives org `acme` an active support entitlement, [`ACME_ENTITLEMENT`], by writing its row of
/// the entitlement contract (migration V5) as the subscriptions projection would. Opening a
/// case needs one; tests about subscriptions create real ones through the API, and the CLI
/// test opens a case under one. The row is not derived from events, so a drift check sees it:
/// [`forget_acme_entitlement`] removes it first.
pub async fn seed_acme_entitlement(target: &Target) {
    connect(target)
        .await
        .execute(
            "INSERT INTO entitlements (number, subscription_id, app_id, org_id, product, status) \
             VALUES ($1, '0193a8f2-0000-7000-8000-00000000ac3e'::text::uuid, NULL, 'acme', 'jira-software', 'active') \
             ON CONFLICT (number) DO NOTHING",
            &[&ACME_ENTITLEMENT],
        )
        .await
        .expect("seed acme's entitlement");
}

/// Removes the seeded entitlement row (after the cases that needed it are open), so that a
/// drift check compares only what the log says.
pub async fn forget_acme_entitlement(target: &Target) {
    connect(target)
        .await
        .execute(
            "DELETE FROM entitlements WHERE number = $1",
            &[&ACME_ENTITLEMENT],
        )
        .await
        .expect("forget acme's seeded entitlement");
}

/// A principal to issue a token for.
pub struct As {
    pub role: ActorRole,
    pub user: &'static str,
    pub org: Option<&'static str>,
    pub org_admin: bool,
    pub partner: Option<&'static str>,
    pub scopes: &'static [&'static str],
}

impl As {
    pub const fn customer(user: &'static str, org: &'static str) -> Self {
        Self {
            role: ActorRole::Customer,
            user,
            org: Some(org),
            org_admin: false,
            partner: None,
            scopes: &[],
        }
    }
    pub const fn org_admin(user: &'static str, org: &'static str) -> Self {
        Self {
            role: ActorRole::Customer,
            user,
            org: Some(org),
            org_admin: true,
            partner: None,
            scopes: &[],
        }
    }
    pub const fn staff(role: ActorRole, user: &'static str) -> Self {
        Self {
            role,
            user,
            org: None,
            org_admin: false,
            partner: None,
            scopes: &[],
        }
    }
    pub const fn admin() -> Self {
        Self::staff(ActorRole::Admin, "root@support.test")
    }
    pub const fn partner(
        user: &'static str,
        partner: &'static str,
        scopes: &'static [&'static str],
    ) -> Self {
        Self {
            role: ActorRole::Partner,
            user,
            org: None,
            org_admin: false,
            partner: Some(partner),
            scopes,
        }
    }
    pub const fn agent() -> Self {
        Self::staff(ActorRole::Agent, "sam@support.test")
    }
    pub const fn auditor() -> Self {
        Self::staff(ActorRole::Auditor, "audrey@support.test")
    }
}

impl TestApp {
    pub async fn token(&self, who: As) -> String {
        let spec = TokenSpec {
            role: who.role,
            user: who.user.into(),
            org_id: who.org.map(str::to_string),
            org_admin: who.org_admin,
            partner_id: who.partner.map(str::to_string),
            scopes: who.scopes.iter().map(|s| s.to_string()).collect(),
            label: None,
            created_by: "test".into(),
        };
        auth::issue(&self.state.pool, &spec)
            .await
            .expect("issue token")
            .1
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn post_with_key(
        &self,
        path: &str,
        token: &str,
        key: &str,
        body: &Value,
    ) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> Response {
        self.http
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("PUT")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// Opens a case as `token` and returns the receipt.
    pub async fn open_case(&self, token: &str, body: Value) -> Value {
        let response = self.post("/v1/cases", token, &body).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "open case: {:?}",
            response.text().await
        );
        response.json().await.expect("case receipt")
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("DELETE")
    }

    /// Creates a subscription as `token` and returns the receipt.
    pub async fn create_subscription(&self, token: &str, body: Value) -> Value {
        let response = self.post("/v1/subscriptions", token, &body).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "create subscription: {:?}",
            response.text().await
        );
        response.json().await.expect("subscription receipt")
    }

    /// Has a staff admin grant `partner` a relationship with `org` allowing `scopes`, as the
    /// org's admin would; returns the receipt.
    pub async fn grant_partner(&self, org: &str, partner: &str, scopes: &[&str]) -> Value {
        let admin = self.token(As::admin()).await;
        let response = self
            .post(
                &format!("/v1/orgs/{org}/partners"),
                &admin,
                &serde_json::json!({"partner_id": partner, "scopes": scopes}),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("relationship receipt");
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "grant {partner} on {org}: {status} {body}"
        );
        body
    }

    /// Waits until projection `name` has applied the event at `position`.
    /// The position of the newest event in the log (0 when it is empty).
    pub async fn newest_position(&self) -> i64 {
        self.db()
            .await
            .query_one("SELECT coalesce(max(position), 0) FROM events", &[])
            .await
            .expect("newest position")
            .get(0)
    }

    pub async fn wait_for_projection(&self, name: &str, position: i64) {
        let db = self.db().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let applied = subdesk_projections::runner::has_applied(&db, name, position)
                .await
                .expect("projection checkpoint");
            if applied == Some(true) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} did not reach position {position}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        connect(&self.target).await
    }

    /// Number of events in the log, optionally of one stream.
    pub async fn event_count(&self, aggregate_id: Option<&str>) -> i64 {
        let db = self.db().await;
        let row = db
            .query_one(
                "SELECT count(*) FROM events WHERE $1::text IS NULL OR aggregate_id = $1",
                &[&aggregate_id],
            )
            .await
            .expect("count events");
        row.get(0)
    }
}

/// Reads a JSON body and asserts the status, printing the body when it is not the one
/// expected.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    if !status.is_success() {
        assert_eq!(
            content_type, "application/problem+json",
            "errors are problem documents"
        );
    }
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The active support entitlement of org `acme` that every test server starts with.
pub const ACME_ENTITLEMENT: &str = "E-ACME-0000-0001";

/// A case for org `acme` under its entitlement, as its customers open it.
pub fn acme_case() -> Value {
    serde_json::json!({
        "entitlement_number": ACME_ENTITLEMENT,
        "product": "jira-software",
        "summary": "Board does not load",
        "description": "Since this morning the board spins forever.",
        "impact": 2
    })
}

/// A `subdesk serve` process on a test database, killed when dropped.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub address: String,
}

/// The stderr lines of a server process.
pub type ServerLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>;

/// Starts `subdesk serve` (the real binary) with `extra` flags and `env`, and reads its
/// stderr until it says where it listens: the child, the rest of its stderr, its address.
pub async fn spawn_serve(
    target: &Target,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, ServerLines, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_subdesk"))
        .env("DATABASE_URL", database_url(target))
        .env("SUBDESK_MASTER_KEY", TEST_MASTER_KEY)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .args(["serve", "--listen", "127.0.0.1:0", "--pool-size", "6"])
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start subdesk serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
        }
        String::new()
    })
    .await
    .expect("the server starts listening");
    assert!(
        address.starts_with("http://"),
        "server address: {address:?}"
    );
    (child, lines, address)
}

impl ServerProcess {
    /// Opens [`acme_case`] over HTTP as `token`; returns the case's id.
    pub async fn open_case(&self, http: &reqwest::Client, token: &str) -> String {
        let response = http
            .post(format!("{}/v1/cases", self.address))
            .bearer_auth(token)
            .json(&acme_case())
            .send()
            .await
            .expect("open");
        let opened = expect_json(response, reqwest::StatusCode::CREATED).await;
        opened["id"].as_str().expect("id").to_string()
    }

    /// Starts the real binary with `extra` serve flags and waits until it listens.
    pub async fn start(target: &Target, extra: &[&str]) -> Self {
        Self::start_with_env(target, extra, &[]).await
    }

    /// [`ServerProcess::start`] with extra environment variables, e.g. the test-only fault
    /// hook `SUBDESK_FAULT_EXIT_AFTER_COMMIT` (see `src/http/command.rs`).
    pub async fn start_with_env(target: &Target, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let (child, mut lines, address) = spawn_serve(target, extra, env).await;
        // Keep draining stderr so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, address }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server stops on SIGTERM")
            .expect("wait for the server");
        assert!(status.success(), "clean exit: {status}");
    }
}

/// Issues a token straight into a database (for servers run as separate processes).
pub async fn issue_token(target: &Target, who: As) -> String {
    let pool = target.pool(1).expect("pool");
    let spec = TokenSpec {
        role: who.role,
        user: who.user.into(),
        org_id: who.org.map(str::to_string),
        org_admin: who.org_admin,
        partner_id: who.partner.map(str::to_string),
        scopes: who.scopes.iter().map(|s| s.to_string()).collect(),
        label: None,
        created_by: "test".into(),
    };
    auth::issue(&pool, &spec).await.expect("issue token").1
}

/// What a server's scheduler did with the timers it claimed, from its own `/metrics`
/// (`subdesk_timers_fired_total`, per process): accepted (events appended), refused by the
/// aggregate as no longer due (a timer fired twice, or fired when not due), failed (retried).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Firings {
    pub accepted: u64,
    pub refused: u64,
    pub failed: u64,
}

impl std::ops::Add for Firings {
    type Output = Firings;

    fn add(self, other: Firings) -> Firings {
        Firings {
            accepted: self.accepted + other.accepted,
            refused: self.refused + other.refused,
            failed: self.failed + other.failed,
        }
    }
}

/// The timer firings of the server at `address` (a `subdesk serve` process), summed over
/// the kinds of timer.
pub async fn timer_firings(address: &str) -> Firings {
    let text = reqwest::get(format!("{address}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    let mut firings = Firings::default();
    for line in text
        .lines()
        .filter(|l| l.starts_with("subdesk_timers_fired_total{"))
    {
        let count: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse::<f64>().ok())
            .map(|n| n as u64)
            .expect("a counter value");
        if line.contains("outcome=\"accepted\"") {
            firings.accepted += count;
        } else if line.contains("outcome=\"refused\"") {
            firings.refused += count;
        } else if line.contains("outcome=\"failed\"") {
            firings.failed += count;
        }
    }
    firings
}
