//! An outbox row as the e-mail a recipient reads: subject, plain text and HTML, in the
//! recipient's language. English is the words the projections stored; other languages are
//! rendered from the row's facts (the case's key, summary and status at the event, or the
//! subscription's product) with the people's own text (a reply, a reason) kept as written.
//! A kind or a row without the facts a language needs falls back to the stored English.

use serde_json::Value;

/// A language mail is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    #[default]
    English,
    Japanese,
}

impl Language {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Self::English),
            "ja" => Some(Self::Japanese),
            _ => None,
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Self::English => "en",
            Self::Japanese => "ja",
        }
    }
}

/// One outbox row, as delivery reads it.
#[derive(Debug, Clone)]
pub struct Stored<'a> {
    pub kind: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// The case's `key`, `summary`, `status`; or the subscription's `product`.
    pub facts: &'a Value,
}

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn fact<'a>(facts: &'a Value, key: &str) -> Option<&'a str> {
    facts.get(key).and_then(Value::as_str)
}

fn status_ja(status: &str) -> &'static str {
    match status {
        "open" => "受付済み",
        "investigating" => "調査中",
        "waiting_for_customer" => "お客様の返信待ち",
        "resolved" => "解決済み（返信すると再開します）",
        "closed" => "クローズ（新しいお問い合わせをご作成ください）",
        _ => "更新",
    }
}

/// The Japanese subject and lead of `row`, or none when its kind or facts are unknown.
fn japanese(row: &Stored<'_>) -> Option<(String, String)> {
    let case = || Some((fact(row.facts, "key")?, fact(row.facts, "summary")?));
    let product = || fact(row.facts, "product");
    Some(match row.kind {
        "case_opened" => {
            let (key, summary) = case()?;
            (
                format!("[{key}] お問い合わせを受け付けました: {summary}"),
                format!("お問い合わせ {key}「{summary}」を受け付けました。サポートよりご連絡いたします。"),
            )
        }
        "status_changed" => {
            let (key, summary) = case()?;
            let status = status_ja(fact(row.facts, "status")?);
            (
                format!("[{key}] {summary}: {status}"),
                format!("お問い合わせ {key} のステータスは「{status}」になりました。"),
            )
        }
        "participant_added" => {
            let (key, summary) = case()?;
            (
                format!("[{key}] {summary}: 共有されました"),
                format!("お問い合わせ {key}「{summary}」があなたと共有されました。今後の更新をお送りします。"),
            )
        }
        "support_reply" => {
            let (key, summary) = case()?;
            (
                format!("[{key}] {summary}: サポートからの返信"),
                format!("サポートからの返信です:\n\n{}", row.body),
            )
        }
        "customer_reply" => {
            let (key, summary) = case()?;
            (
                format!("[{key}] {summary}: お客様からの返信"),
                format!("お客様からの返信です:\n\n{}", row.body),
            )
        }
        "escalation" => {
            let (key, summary) = case()?;
            (
                format!("[{key}] {summary}: エスカレーション"),
                format!(
                    "お問い合わせ {key} のエスカレーションについて:\n\n{}",
                    row.body
                ),
            )
        }
        "sla_warning" | "sla_breach" => {
            let (key, summary) = case()?;
            let what = if row.kind == "sla_warning" {
                "SLA の期限が近づいています"
            } else {
                "SLA の期限を過ぎました"
            };
            (
                format!("[{key}] {summary}: {what}"),
                format!("{what}。\n\n{}", row.body),
            )
        }
        "purchase_confirmation" => (
            format!("ご購入の確認: {}", product()?),
            format!("{} のご購入を承りました。\n\n{}", product()?, row.body),
        ),
        "subscription_welcome" => (
            format!("{} へようこそ", product()?),
            format!(
                "{} のサブスクリプションをご利用いただけます。\n\n{}",
                product()?,
                row.body
            ),
        ),
        "billing_account_moved" => (
            format!("{}: 請求先アカウントが変更されました", product()?),
            format!(
                "{} の請求先アカウントが変更されました。\n\n{}",
                product()?,
                row.body
            ),
        ),
        "partner_welcome" => {
            let partner = fact(row.facts, "partner_id")?;
            (
                format!("{partner} がお客様のパートナーになりました"),
                format!(
                    "{partner} がお客様の組織を担当するパートナーになりました。\n\n{}",
                    row.body
                ),
            )
        }
        "subscription_cancelled" | "subscription_expired" => (
            format!("{}: サブスクリプションは終了しました", product()?),
            format!(
                "{} のサブスクリプションは終了しました。\n\n{}",
                product()?,
                row.body
            ),
        ),
        _ => return None,
    })
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The text as HTML: one paragraph per blank-line-separated block, line breaks kept.
fn html(language: Language, subject: &str, text: &str) -> String {
    let paragraphs: String = text
        .split("\n\n")
        .map(|p| format!("<p>{}</p>\n", escape(p).replace('\n', "<br>\n")))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body>\n{paragraphs}</body></html>\n",
        language.tag(),
        escape(subject)
    )
}

/// `row` in `language` (English when the language has no words for it).
pub fn render(row: &Stored<'_>, language: Language) -> (Rendered, Language) {
    let (subject, text, language) = match language {
        Language::Japanese => match japanese(row) {
            Some((subject, text)) => (subject, text, Language::Japanese),
            None => (
                row.subject.to_string(),
                row.body.to_string(),
                Language::English,
            ),
        },
        Language::English => (
            row.subject.to_string(),
            row.body.to_string(),
            Language::English,
        ),
    };
    let html = html(language, &subject, &text);
    (
        Rendered {
            subject,
            text,
            html,
        },
        language,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reply(facts: &Value) -> Stored<'_> {
        Stored {
            kind: "support_reply",
            subject: "[CASE-1] Board: reply from support",
            body: "Clear the cache <then> reload",
            facts,
        }
    }

    #[test]
    fn english_is_the_stored_words_and_html_escapes_them() {
        let facts = json!({"key": "CASE-1", "summary": "Board"});
        let (mail, language) = render(&reply(&facts), Language::English);
        assert_eq!(language, Language::English);
        assert_eq!(mail.subject, "[CASE-1] Board: reply from support");
        assert_eq!(mail.text, "Clear the cache <then> reload");
        assert!(
            mail.html.contains("Clear the cache &lt;then&gt; reload"),
            "{}",
            mail.html
        );
        assert!(mail.html.contains("lang=\"en\""));
    }

    #[test]
    fn japanese_keeps_the_replys_own_words() {
        let facts = json!({"key": "CASE-1", "summary": "Board"});
        let (mail, language) = render(&reply(&facts), Language::Japanese);
        assert_eq!(language, Language::Japanese);
        assert_eq!(mail.subject, "[CASE-1] Board: サポートからの返信");
        assert!(
            mail.text.ends_with("Clear the cache <then> reload"),
            "{}",
            mail.text
        );
        assert!(mail.html.contains("lang=\"ja\""));
    }

    #[test]
    fn without_the_facts_a_language_needs_the_stored_english_is_sent() {
        let facts = Value::Null;
        let (mail, language) = render(&reply(&facts), Language::Japanese);
        assert_eq!(language, Language::English);
        assert_eq!(mail.subject, "[CASE-1] Board: reply from support");
    }

    #[test]
    fn languages_are_named_by_their_tags() {
        assert_eq!(Language::parse("JA"), Some(Language::Japanese));
        assert_eq!(Language::parse("en"), Some(Language::English));
        assert_eq!(Language::parse("fr"), None);
    }
}
