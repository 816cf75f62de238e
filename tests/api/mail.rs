//! E-mail delivery against a real SMTP server: Debian's aiosmtpd, started here on a free
//! loopback port with its Maildir handler, so every mail it accepts is a file to read back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::json;
use subdesk::app::Settings;
use subdesk::mail::render::Language;
use subdesk::mail::{MailConfig, Mailer, Round};

use crate::case_fixtures::ok;
use crate::helpers::{
    acme_case, fresh_database, spawn_app, spawn_app_with, subdesk_cli, As, ServerProcess, TestApp,
};

const ANN: As = As::customer("ann@acme.test", "acme");

/// A real SMTP server (aiosmtpd) on a loopback port, storing what it accepts in a Maildir; it
/// stops when dropped, and by itself after ten minutes whatever happens.
struct SmtpServer {
    child: tokio::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port).await
    }

    async fn start_on(port: u16) -> Self {
        let dir = tempfile::tempdir().expect("maildir");
        let child = tokio::process::Command::new("timeout")
            .args(["600", "/usr/bin/python3", "-m", "aiosmtpd", "-n"])
            .arg("-l")
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("mail"))
            // Its own process group: dropping the server kills `timeout` and python together.
            .process_group(0)
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("aiosmtpd (Debian's python3-aiosmtpd) starts");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self { child, port, dir };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("aiosmtpd did not listen on {port}");
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail received so far.
    fn received(&self) -> Vec<Received> {
        let new = self.dir.path().join("mail").join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
            .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().map(|path| Received::read(path)).collect()
    }

    async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..300 {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{count} mails expected, {} arrived", self.received().len());
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The headers of one received mail (decoded) and its raw text.
#[derive(Debug)]
struct Received {
    to: String,
    subject: String,
    message_id: String,
    kind: String,
    language: String,
    raw: String,
}

/// `=?utf-8?b?...?=` words decoded (how lettre writes a non-ASCII subject).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    for word in value.split_whitespace() {
        let lower = word.to_ascii_lowercase();
        if lower.starts_with("=?utf-8?b?") && word.ends_with("?=") {
            let encoded = &word[10..word.len() - 2];
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .expect("base64 word");
            out.push_str(&String::from_utf8(bytes).expect("utf-8 word"));
        } else {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

impl Received {
    fn read(path: &Path) -> Self {
        let raw = std::fs::read_to_string(path).expect("mail file");
        let head = raw
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .replace("\r", "");
        // Unfold continued header lines.
        let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
        let header = |name: &str| {
            unfolded
                .lines()
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.eq_ignore_ascii_case(name)
                        .then(|| value.trim().to_string())
                })
                .unwrap_or_default()
        };
        Self {
            to: header("To"),
            subject: decode_words(&header("Subject")),
            message_id: header("Message-ID"),
            kind: header("X-Subdesk-Kind"),
            language: header("Content-Language"),
            raw,
        }
    }
}

async fn rows(app: &TestApp) -> Vec<(i64, i64, String, String, String)> {
    app.db()
        .await
        .query(
            "SELECT id, source_position, kind, recipient, status FROM notifications ORDER BY id",
            &[],
        )
        .await
        .expect("outbox")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

async fn settled(app: &TestApp) {
    let newest = app.newest_position().await;
    for projection in ["cases", "subscriptions"] {
        app.wait_for_projection(projection, newest).await;
    }
}

#[tokio::test]
async fn each_mail_reaches_the_smtp_server_once_with_its_recipients_and_language() {
    let smtp = SmtpServer::start().await;
    let mut config = MailConfig::new(smtp.url(), "Acme Support <support@subdesk.test>");
    config
        .org_languages
        .insert("acme".into(), Language::Japanese);
    config.poll = Duration::from_millis(100);
    let settings = Settings {
        mail: Some(config),
        ..Settings::default()
    };
    let app = spawn_app_with(settings, std::sync::Arc::new(subdesk::clock::SystemClock)).await;
    let ann = app.token(ANN).await;
    let sam = app.token(As::agent()).await;
    let mut case = acme_case();
    case["participants"] = json!(["carl@acme.test"]);
    let opened = app.open_case(&ann, case).await;
    let id = opened["id"].as_str().expect("id").to_string();
    let comments = format!("/v1/cases/{id}/comments");
    ok(
        &app,
        &sam,
        &comments,
        json!({"body": "Please clear the cache."}),
    )
    .await;
    ok(
        &app,
        &sam,
        &comments,
        json!({"body": "Internal: customer is on an old build", "visibility": "internal"}),
    )
    .await;
    let participants = format!("/v1/cases/{id}/participants");
    ok(
        &app,
        &ann,
        &participants,
        json!({"email": "dora@acme.test"}),
    )
    .await;
    // Ada, acme's admin, buys a subscription and names Bob a contact.
    let ada = app.token(As::org_admin("ada@acme.test", "acme")).await;
    let now = chrono::Utc::now();
    let bought = app
        .create_subscription(
            &ada,
            json!({"org_id": "acme", "product": "jira-software", "plan": "standard", "seats": 10,
                   "term_start": (now - chrono::Duration::days(1)).to_rfc3339(),
                   "term_end": (now + chrono::Duration::days(364)).to_rfc3339(),
                   "auto_renew": true, "channel": {"kind": "direct"}, "billing_account": "BA-1"}),
        )
        .await;
    let contacts = format!(
        "/v1/subscriptions/{}/contacts",
        bought["id"].as_str().expect("id")
    );
    ok(&app, &ada, &contacts, json!({"email": "bob@acme.test"})).await;
    // acme grants p-good a relationship, and p-good sells acme a subscription: acme's
    // contacts (Bob) are welcomed by their new partner twice (seed 001).
    app.grant_partner("acme", "p-good", &["view_customers", "access_cases"])
        .await;
    let pat = app
        .token(As::partner(
            "pat@good.test",
            "p-good",
            &["view_customers", "access_cases"],
        ))
        .await;
    app.create_subscription(
        &pat,
        json!({"org_id": "acme", "product": "confluence", "plan": "standard", "seats": 5,
               "term_start": (now - chrono::Duration::days(1)).to_rfc3339(),
               "term_end": (now + chrono::Duration::days(364)).to_rfc3339(),
               "channel": {"kind": "partner", "partner_id": "p-good"}}),
    )
    .await;
    settled(&app).await;

    // Everything the projections queued is sent, each row once: the confirmation to Ann and
    // Carl, support's public reply to both, the news to Dora that Ann shared the case with her,
    // Ada's purchase and the welcomes of Ada and Bob; the internal note to nobody.
    let queued = rows(&app).await;
    let received = smtp.wait_for(queued.len()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received_again = smtp.received();
    assert_eq!(received_again.len(), queued.len(), "no row is sent twice");
    let kinds: BTreeSet<(String, String)> = received
        .iter()
        .map(|m| (m.kind.clone(), m.to.clone()))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("case_opened", "ann@acme.test"),
        ("case_opened", "carl@acme.test"),
        ("support_reply", "ann@acme.test"),
        ("support_reply", "carl@acme.test"),
        ("participant_added", "dora@acme.test"),
        ("purchase_confirmation", "ada@acme.test"),
        ("subscription_welcome", "ada@acme.test"),
        ("subscription_welcome", "bob@acme.test"),
        ("partner_welcome", "bob@acme.test"),
    ]
    .iter()
    .map(|(k, t)| (k.to_string(), t.to_string()))
    .collect();
    let customer_side: BTreeSet<(String, String)> = kinds
        .iter()
        .filter(|(_, to)| to.ends_with("@acme.test"))
        .cloned()
        .collect();
    assert_eq!(customer_side, expected, "{received:#?}");
    assert!(
        received.iter().all(|m| !m.raw.contains("old build")),
        "an internal comment never reaches a mail"
    );

    // acme is mailed in Japanese; the reply keeps support's own words.
    let reply = received
        .iter()
        .find(|m| m.kind == "support_reply")
        .expect("reply");
    assert_eq!(reply.language, "ja");
    assert!(
        reply.subject.contains("サポートからの返信"),
        "{}",
        reply.subject
    );
    let confirmation = received
        .iter()
        .find(|m| m.kind == "case_opened")
        .expect("confirmation");
    assert!(
        confirmation
            .subject
            .contains("お問い合わせを受け付けました"),
        "{}",
        confirmation.subject
    );
    let welcomes: Vec<&Received> = received
        .iter()
        .filter(|m| m.kind == "partner_welcome")
        .collect();
    assert_eq!(welcomes.len(), 2, "the grant and the sale: {welcomes:#?}");
    assert!(
        welcomes.iter().all(|m| m.to == "bob@acme.test"
            && m.subject
                .replace(" ", "")
                .contains("p-goodがお客様のパートナー")),
        "{welcomes:#?}"
    );
    // Subscription mails are rendered in the subscription's org's language too.
    let purchase = received
        .iter()
        .find(|m| m.kind == "purchase_confirmation" && m.to == "ada@acme.test")
        .expect("Ada's purchase");
    assert_eq!(purchase.subject, "ご購入の確認: jira-software");
    // The Message-ID is the row's own.
    for (row, position, kind, recipient, status) in rows(&app).await {
        assert_eq!(status, "sent", "{kind} to {recipient}");
        let id = subdesk::mail::message_id(row, position, "subdesk.test");
        assert!(
            received
                .iter()
                .any(|m| m.message_id == id && m.to == recipient && m.kind == kind),
            "{id} to {recipient}"
        );
    }
}

/// A mailer of `app`'s outbox (the app itself runs none) to `url`.
fn mailer(app: &TestApp, url: String) -> Mailer {
    let config = MailConfig::new(url, "support@subdesk.test");
    Mailer::new(app.state.pool.clone(), config).expect("mailer")
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_retried_then_the_mail_is_set_aside_until_retried() {
    let app = spawn_app().await;
    let ann = app.token(ANN).await;
    app.open_case(&ann, acme_case()).await;
    settled(&app).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let down = mailer(&app, format!("smtp://127.0.0.1:{port}"));
    down.enable().await.expect("enabled");

    // Nothing listens: the row stays pending, with its next attempt 30 s away.
    let round = down.round().await.expect("round");
    assert_eq!(
        round,
        Round {
            retried: 1,
            ..Round::default()
        }
    );
    assert_eq!(
        down.round().await.expect("round"),
        Round::default(),
        "not due again yet"
    );
    let db = app.db().await;
    let (attempts, wait): (i32, f64) = {
        let r = db
            .query_one(
                "SELECT attempts, extract(epoch FROM next_attempt_at - now())::float8 \
                   FROM notifications",
                &[],
            )
            .await
            .expect("row");
        (r.get(0), r.get(1))
    };
    assert_eq!(attempts, 1);
    assert!((25.0..=31.0).contains(&wait), "{wait}");

    // A day after it was queued, the next failure sets it aside.
    db.execute(
        "UPDATE notifications SET created_at = created_at - interval '25 hours', \
                next_attempt_at = now()",
        &[],
    )
    .await
    .expect("a day later");
    let round = down.round().await.expect("round");
    assert_eq!(
        round,
        Round {
            set_aside: 1,
            ..Round::default()
        }
    );
    // `subdesk outbox status` shows it, with why.
    let status = subdesk_cli(&app.target, &["outbox", "status"]).await;
    assert!(status.status.success(), "{status:?}");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(
        (&status["pending"], &status["failed"]),
        (&json!(0), &json!(1))
    );
    assert!(status["set_aside"][0]["last_error"].is_string(), "{status}");

    // The server comes up; `subdesk outbox retry` puts the mail back and it is sent.
    let smtp = SmtpServer::start_on(port).await;
    let retried = subdesk_cli(&app.target, &["outbox", "retry"]).await;
    assert!(retried.status.success(), "{retried:?}");
    let put_back: i64 = db
        .query_one(
            "SELECT count(*) FROM notifications WHERE status = 'pending'",
            &[],
        )
        .await
        .expect("pending")
        .get(0);
    assert_eq!(put_back, 1);
    let round = down.round().await.expect("round");
    assert_eq!(
        round,
        Round {
            sent: 1,
            ..Round::default()
        }
    );
    assert_eq!(smtp.wait_for(1).await[0].to, "ann@acme.test");
}

#[tokio::test]
async fn turning_delivery_on_skips_what_is_older_than_the_cut_off_and_only_the_first_time() {
    let app = spawn_app().await;
    let ann = app.token(ANN).await;
    app.open_case(&ann, acme_case()).await;
    app.open_case(&ann, acme_case()).await;
    settled(&app).await;
    let db = app.db().await;
    // One confirmation is two days old, the other fresh.
    db.execute(
        "UPDATE notifications SET created_at = now() - interval '2 days' \
          WHERE id = (SELECT min(id) FROM notifications)",
        &[],
    )
    .await
    .expect("backdated");
    let smtp = SmtpServer::start().await;
    let on = mailer(&app, smtp.url());
    assert_eq!(on.enable().await.expect("enabled"), 1);
    assert_eq!(
        on.enable().await.expect("again"),
        0,
        "only when first turned on"
    );
    let round = on.round().await.expect("round");
    assert_eq!(
        round,
        Round {
            sent: 1,
            ..Round::default()
        }
    );
    let statuses: Vec<String> = rows(&app).await.into_iter().map(|r| r.4).collect();
    assert_eq!(statuses, ["skipped", "sent"]);
    assert_eq!(smtp.wait_for(1).await.len(), 1);
}

#[tokio::test]
async fn a_server_killed_while_delivering_loses_no_mail_and_repeats_at_most_what_was_in_flight() {
    const MAILS: i64 = 300;
    let target = fresh_database().await;
    // The first server migrates the database; without --smtp-url it sends nothing.
    ServerProcess::start(&target, &[]).await.stop().await;
    let pool = target.pool(1).expect("pool");
    let db = pool.get().await.expect("connection");
    db.execute(
        "INSERT INTO notifications (source_position, kind, recipient, subject, body, \
                                    aggregate_type, aggregate_id) \
         SELECT g, 'case_opened', 'ann@acme.test', 'Case ' || g, 'We received it.', \
                'SupportCase', 'case-' || g \
           FROM generate_series(1, $1::bigint) g",
        &[&MAILS],
    )
    .await
    .expect("queued mail");

    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let flags = [
        "--smtp-url",
        url.as_str(),
        "--mail-from",
        "support@subdesk.test",
    ];
    let mut server = ServerProcess::start(&target, &flags).await;
    // Killed with SIGKILL mid-delivery.
    for _ in 0..600 {
        if smtp.received().len() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().await.expect("kill -9 the server");
    let before = smtp.received().len();
    assert!(before < MAILS as usize, "killed before the end: {before}");

    // A new process takes over once the dead one's leases run out.
    db.execute(
        "UPDATE notifications SET leased_until = now() WHERE leased_until > now()",
        &[],
    )
    .await
    .expect("leases of the dead process end");
    let restarted = ServerProcess::start(&target, &flags).await;
    let received = smtp.wait_for(MAILS as usize).await;
    for _ in 0..300 {
        let pending: i64 = db
            .query_one(
                "SELECT count(*) FROM notifications WHERE status <> 'sent'",
                &[],
            )
            .await
            .expect("pending")
            .get(0);
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    restarted.stop().await;

    let received_ids: BTreeSet<String> = smtp
        .received()
        .iter()
        .map(|m| m.message_id.clone())
        .collect();
    let rows = db
        .query("SELECT id, source_position, status FROM notifications", &[])
        .await
        .expect("rows");
    for row in &rows {
        let (id, position, status): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(status, "sent", "row {id}");
        let message_id = subdesk::mail::message_id(id, position, "subdesk.test");
        assert!(received_ids.contains(&message_id), "{message_id} arrived");
    }
    // At most the batch in flight at the kill arrives twice.
    let repeated = smtp.received().len() - rows.len();
    assert!(
        repeated <= 50,
        "{repeated} repeats of {} mails ({} before the kill)",
        received.len(),
        before
    );
}

/// A server mailing through `smtp`, looking for mail every 100 ms, with no language configured.
async fn mailing_app(smtp: &SmtpServer) -> TestApp {
    let mut config = MailConfig::new(smtp.url(), "Acme Support <support@subdesk.test>");
    config.poll = Duration::from_millis(100);
    let settings = Settings {
        mail: Some(config),
        ..Settings::default()
    };
    spawn_app_with(settings, std::sync::Arc::new(subdesk::clock::SystemClock)).await
}

#[tokio::test]
async fn a_persons_language_wins_over_their_orgs_which_wins_over_the_servers() {
    let smtp = SmtpServer::start().await;
    let app = mailing_app(&smtp).await;
    let ann = app.token(ANN).await;
    let ada = app.token(As::org_admin("ada@acme.test", "acme")).await;
    let bob = app.token(As::customer("Bob@acme.test", "acme")).await;
    // acme's admin chooses Japanese for the org; Bob keeps English for himself.
    let put = |token: String, path: &'static str, body: serde_json::Value| {
        let app = &app;
        async move {
            let response = app
                .http
                .put(app.url(path))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("PUT");
            (
                response.status(),
                response
                    .json::<serde_json::Value>()
                    .await
                    .unwrap_or_default(),
            )
        }
    };
    let (status, org) = put(
        ada.clone(),
        "/v1/orgs/acme/settings",
        json!({"language": "ja"}),
    )
    .await;
    assert_eq!((status.as_u16(), &org["language"]), (200, &json!("ja")));
    let (status, me) = put(bob.clone(), "/v1/me/settings", json!({"language": "en"})).await;
    assert_eq!(
        (status.as_u16(), &me["user"]),
        (200, &json!("bob@acme.test"))
    );
    // Only the org's admin (or a staff admin) sets the org's; another org does not see it.
    let (status, _) = put(
        ann.clone(),
        "/v1/orgs/acme/settings",
        json!({"language": "en"}),
    )
    .await;
    assert_eq!(status.as_u16(), 403);
    let gus = app.token(As::org_admin("gus@globex.test", "globex")).await;
    let (status, _) = put(gus, "/v1/orgs/acme/settings", json!({"language": "en"})).await;
    assert_eq!(status.as_u16(), 404);
    let shown: serde_json::Value = app
        .get("/v1/orgs/acme/settings", &ann)
        .await
        .json()
        .await
        .expect("settings");
    assert_eq!(shown["language"], "ja");

    let mut case = acme_case();
    case["participants"] = json!(["bob@acme.test", "carl@acme.test"]);
    app.open_case(&ann, case).await;
    settled(&app).await;
    let received = smtp.wait_for(3).await;
    let language_of = |to: &str| {
        received
            .iter()
            .find(|m| m.to == to && m.kind == "case_opened")
            .map(|m| m.language.clone())
            .unwrap_or_default()
    };
    assert_eq!(language_of("ann@acme.test"), "ja", "{received:#?}");
    assert_eq!(language_of("carl@acme.test"), "ja");
    assert_eq!(language_of("bob@acme.test"), "en");

    // Cleared, Bob's mail follows the org again.
    let (status, me) = put(bob, "/v1/me/settings", json!({"language": null})).await;
    assert_eq!((status.as_u16(), &me["language"]), (200, &json!(null)));
}

#[tokio::test]
async fn partner_users_who_opt_in_get_their_customers_case_mails_and_never_an_internal_note() {
    let smtp = SmtpServer::start().await;
    let app = mailing_app(&smtp).await;
    const BOTH: &[&str] = &["view_customers", "access_cases"];
    app.grant_partner("acme", "p-good", BOTH).await;
    let pat = app
        .token(As::partner("pat@good.test", "p-good", BOTH))
        .await;
    let mal = app
        .token(As::partner("mal@evil.test", "p-evil", BOTH))
        .await;
    let vic = app
        .token(As::partner("vic@good.test", "p-good", &["view_customers"]))
        .await;
    let opt_in = |token: String| {
        let app = &app;
        async move {
            app.http
                .put(app.url("/v1/me/settings"))
                .bearer_auth(token)
                .json(&json!({"case_alerts": true}))
                .send()
                .await
                .expect("PUT")
        }
    };
    let opted: serde_json::Value = opt_in(pat.clone()).await.json().await.expect("settings");
    assert_eq!(opted["case_alerts"], true);
    assert_eq!(opt_in(mal).await.status().as_u16(), 200);
    // Only partner users whose token has access_cases may opt in.
    assert_eq!(opt_in(vic).await.status().as_u16(), 403);
    let ann = app.token(ANN).await;
    assert_eq!(opt_in(ann.clone()).await.status().as_u16(), 403);

    let opened = app.open_case(&ann, acme_case()).await;
    let id = opened["id"].as_str().expect("id").to_string();
    let sam = app.token(As::agent()).await;
    let comments = format!("/v1/cases/{id}/comments");
    ok(
        &app,
        &sam,
        &comments,
        json!({"body": "Internal: old build", "visibility": "internal"}),
    )
    .await;
    ok(
        &app,
        &sam,
        &comments,
        json!({"body": "Please clear the cache."}),
    )
    .await;
    settled(&app).await;
    let queued = rows(&app).await;
    let received = smtp.wait_for(queued.len()).await;
    let to_pat: BTreeSet<&str> = received
        .iter()
        .filter(|m| m.to == "pat@good.test")
        .map(|m| m.kind.as_str())
        .collect();
    assert_eq!(
        to_pat,
        BTreeSet::from(["case_opened", "support_reply"]),
        "{received:#?}"
    );
    assert!(
        received.iter().all(|m| m.to != "mal@evil.test"),
        "a partner without a relationship with acme gets nothing of it"
    );
    assert!(received.iter().all(|m| !m.raw.contains("old build")));
}
