//! A real read replica: a primary and a hot standby streaming from it (both started with the
//! project's own launcher, the standby from a `pg_basebackup`), and the real `subdesk serve`
//! writing to the primary and reading from the standby. A read with the `min_position` of an
//! acknowledged command must never be answered from a standby that has not replayed it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk::db::{self, Target};
use subdesk::pg::{hand_over, ClusterOptions, LocalCluster};

use crate::helpers::{connect, expect_json, issue_token, As, ServerProcess};

const ADA: As = As::org_admin("ada@acme.test", "acme");
const BEN: As = As::org_admin("ben@acme.test", "acme");

/// How long the server lets a `min_position` read wait for the read model.
const READ_WAIT: Duration = Duration::from_secs(2);

/// Settings of both clusters: a hot standby may not have fewer connections (and the like)
/// than its primary, so they share them.
fn cluster_options() -> ClusterOptions {
    ClusterOptions {
        settings: [
            ("fsync", "off"),
            ("wal_level", "replica"),
            ("max_wal_senders", "4"),
            ("hot_standby", "on"),
            ("max_connections", "100"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        remove_on_stop: true,
    }
}

/// A directory of its own for one cluster, given to the `postgres` user when run as root
/// (the cluster's wrapper removes it when the cluster stops).
fn cluster_dir(role: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "subdesk-replica-{}-{role}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("cluster directory");
    hand_over(&dir).expect("hand the cluster directory to the postgres user");
    dir
}

fn subscription(seats: i64) -> Value {
    json!({
        "org_id": "acme",
        "product": "jira-software",
        "plan": "standard",
        "seats": seats,
        "term_end": (Utc::now() + chrono::Duration::days(300)).to_rfc3339(),
        "channel": {"kind": "direct"},
    })
}

fn position_of(receipt: &Value) -> i64 {
    receipt["position"]
        .as_i64()
        .expect("position in the receipt")
}

fn id_of(receipt: &Value) -> String {
    receipt["id"]
        .as_str()
        .expect("id in the receipt")
        .to_string()
}

struct Api {
    http: reqwest::Client,
    address: String,
}

impl Api {
    async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.address))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }
}

async fn in_recovery(client: &tokio_postgres::Client) -> bool {
    client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("pg_is_in_recovery")
        .get(0)
}

fn assert_removed(dir: &Path) {
    assert!(
        !dir.exists(),
        "{} is removed once its cluster has stopped",
        dir.display()
    );
}

#[tokio::test]
async fn a_read_with_min_position_is_never_answered_from_a_standby_that_has_not_replayed_it() {
    let started = Instant::now();
    let options = cluster_options();

    // The primary, migrated before the base backup: the standby starts with the schema.
    let primary_dir = cluster_dir("primary");
    let primary = LocalCluster::start(&primary_dir, &options)
        .await
        .expect("start the primary");
    primary
        .ensure_database(db::DATABASE)
        .await
        .expect("create the database on the primary");
    let primary_target = Target::local(&primary, db::DATABASE);
    db::migrate(&primary_target)
        .await
        .expect("migrate the primary");

    let standby_dir = cluster_dir("standby");
    let standby = LocalCluster::start_standby(&primary, &standby_dir, &options)
        .await
        .expect("start a hot standby of the primary");
    assert_ne!(
        standby.socket_dir(),
        primary.socket_dir(),
        "the standby listens in a socket directory of its own"
    );
    let standby_url = standby.url(db::DATABASE);
    let standby_db = connect(&Target::from_url(&standby_url).expect("standby URL")).await;
    let primary_db = connect(&primary_target).await;
    assert!(in_recovery(&standby_db).await, "the read URL is a standby");
    assert!(
        !in_recovery(&primary_db).await,
        "DATABASE_URL is the primary"
    );
    // The standby may accept connections (its copy is consistent) a moment before its WAL
    // receiver has connected.
    let deadline = Instant::now() + Duration::from_secs(10);
    while primary_db
        .query_one(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
            &[],
        )
        .await
        .expect("pg_stat_replication")
        .get::<_, i64>(0)
        != 1
    {
        assert!(
            Instant::now() < deadline,
            "the standby streams from the primary"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ada = issue_token(&primary_target, ADA).await;

    let read_wait = format!("{}s", READ_WAIT.as_secs());
    let server = ServerProcess::start(
        &primary_target,
        &[
            "--read-database-url",
            &standby_url,
            "--read-wait",
            &read_wait,
            "--projection-poll",
            "100ms",
        ],
    )
    .await;
    let api = Api {
        http: reqwest::Client::new(),
        address: server.address.clone(),
    };

    // Streaming: a write is readable through the standby with its position.
    let first = expect_json(
        api.post("/v1/subscriptions", &ada, &subscription(5)).await,
        StatusCode::CREATED,
    )
    .await;
    let detail = expect_json(
        api.get(
            &format!(
                "/v1/subscriptions/{}?min_position={}",
                id_of(&first),
                position_of(&first)
            ),
            &ada,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(detail["seats"], 5);

    // The standby stops applying WAL; it still receives it.
    standby_db
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .expect("pause WAL replay on the standby");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state: String = standby_db
            .query_one("SELECT pg_get_wal_replay_pause_state()", &[])
            .await
            .expect("replay pause state")
            .get(0);
        if state == "paused" {
            break;
        }
        assert!(Instant::now() < deadline, "replay pauses: {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Commands go to the primary, and so do tokens: this one exists nowhere else yet.
    let ben = issue_token(&primary_target, BEN).await;
    let receipt = expect_json(
        api.post("/v1/subscriptions", &ben, &subscription(5)).await,
        StatusCode::CREATED,
    )
    .await;
    let (id, position) = (id_of(&receipt), position_of(&receipt));

    // The primary's read model has it (a read answered from there would be fresh)...
    let deadline = Instant::now() + Duration::from_secs(20);
    while subdesk_projections::runner::has_applied(&primary_db, "subscriptions", position)
        .await
        .expect("checkpoint on the primary")
        != Some(true)
    {
        assert!(
            Instant::now() < deadline,
            "the primary's subscriptions projection reaches {position}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let on_primary = primary_db
        .query_opt(
            "SELECT 1 FROM subscription_view WHERE id::text = $1",
            &[&id],
        )
        .await
        .expect("subscription_view on the primary");
    assert!(on_primary.is_some(), "the primary's read model has {id}");
    // ...and the paused standby has not even the event.
    let on_standby: i64 = standby_db
        .query_one(
            "SELECT count(*) FROM events WHERE position = $1",
            &[&position],
        )
        .await
        .expect("events on the standby")
        .get(0);
    assert_eq!(
        on_standby, 0,
        "the paused standby has not replayed {position}"
    );

    // A read without min_position is served by the standby, stale as it is.
    let stale = api.get(&format!("/v1/subscriptions/{id}"), &ben).await;
    assert_eq!(
        stale.status(),
        StatusCode::NOT_FOUND,
        "a read without min_position is answered by the paused standby: {:?}",
        stale.text().await
    );

    // With the position it waits for the standby, and gives up without stale data.
    let asked = Instant::now();
    let behind = api
        .get(
            &format!("/v1/subscriptions/{id}?min_position={position}"),
            &ben,
        )
        .await;
    let waited = asked.elapsed();
    let status = behind.status();
    let text = behind.text().await.expect("body");
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a read with min_position={position} must wait for the paused standby, never answer \
         from it: {text}"
    );
    let problem: Value = serde_json::from_str(&text).expect("a problem document");
    assert_eq!(problem["code"], "read_model_behind", "{problem}");
    assert!(
        waited >= READ_WAIT,
        "the read waited the read wait ({READ_WAIT:?}) first, not {waited:?}"
    );

    // Another command on the same subscription: the primary loads it, the standby is not asked.
    let changed = expect_json(
        api.post(
            &format!("/v1/subscriptions/{id}/seats"),
            &ben,
            &json!({"seats": 8}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let latest = position_of(&changed);
    assert!(latest > position);
    assert!(
        in_recovery(&standby_db).await,
        "the standby is still a standby"
    );

    // Replay resumes: the same kind of read now waits until the standby has the write.
    standby_db
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .expect("resume WAL replay on the standby");
    let fresh = expect_json(
        api.get(
            &format!("/v1/subscriptions/{id}?min_position={latest}"),
            &ben,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(fresh["id"], id.as_str());
    assert_eq!(fresh["seats"], 8, "the read shows the acknowledged write");
    let first_write = expect_json(
        api.get(
            &format!("/v1/subscriptions/{id}?min_position={position}"),
            &ben,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first_write["status"], "active");

    server.stop().await;
    drop((standby_db, primary_db));
    standby.stop().await;
    primary.stop().await;
    assert_removed(&standby_dir);
    assert_removed(&primary_dir);
    eprintln!("replica test took {:?}", started.elapsed());
}
