//! The "you have unread messages" mail: what goes in it, and the one Brevo call that sends it.
//!
//! One mail per conversation covers everything unread in it when it goes out (a digest of up to
//! [`DIGEST_MESSAGES`] previews, newest last). Message text is user input: it is cut to a short
//! preview and HTML-escaped; the rest of the mail is ours.

use serde_json::{json, Value};

use super::config::EmailConfig;
use super::webhook::SendError;
use crate::domain::conversation::ConversationRecord;
use crate::domain::message::StoredMessage;
use crate::html::escape;

/// Messages previewed in one mail; the mail says how many more there are.
pub const DIGEST_MESSAGES: usize = 5;
/// Characters of each message shown.
pub const PREVIEW_CHARS: usize = 140;

/// Who the mail goes to.
pub struct Recipient {
    pub email: String,
    pub name: String,
}

/// The Brevo request body (`POST /v3/smtp/email`) for `unread` messages of `conversation`, of
/// which `recent` are the newest (oldest first).
pub fn brevo_body(
    config: &EmailConfig,
    to: &Recipient,
    conversation: &ConversationRecord,
    unread: u64,
    recent: &[StoredMessage],
    notification_id: &str,
) -> Value {
    let from = recent
        .last()
        .map(|m| m.sender_name.clone())
        .unwrap_or_default();
    let link = config
        .conversation_url
        .replace("{conversation_id}", &conversation.id.to_string());
    let subject = match unread {
        1 => format!(
            "New message from {from} about {}",
            conversation.service_title
        ),
        n => format!(
            "{n} new messages from {from} about {}",
            conversation.service_title
        ),
    };
    let previews: Vec<Value> = recent
        .iter()
        .map(|m| json!({"sender_name": m.sender_name, "text": preview(m)}))
        .collect();
    let mut body = json!({
        "sender": {"email": config.sender_email, "name": config.sender_name},
        "to": [{"email": to.email, "name": to.name}],
        "subject": subject,
        // Brevo passes these on as mail headers: a receiver (or a support person) can tell two
        // mails for the same notification apart from two notifications.
        "headers": {"X-Switchboard-Notification": notification_id},
        "tags": ["switchboard-unread"],
    });
    match config.template_id {
        Some(template) => {
            body["templateId"] = json!(template);
            body["params"] = json!({
                "conversation_id": conversation.id,
                "conversation_url": link,
                "service_title": conversation.service_title,
                "sender_name": from,
                "unread": unread,
                "messages": previews,
            });
        }
        None => {
            body["htmlContent"] = json!(html(conversation, unread, recent, &link));
            body["textContent"] = json!(text(conversation, unread, recent, &link));
        }
    }
    body
}

/// POSTs a mail to Brevo. 2xx (Brevo answers 201 with a `messageId`) is sent.
pub async fn send(
    client: &reqwest::Client,
    config: &EmailConfig,
    body: &Value,
) -> Result<(), SendError> {
    let url = format!(
        "{}/v3/smtp/email",
        config.brevo_base_url.trim_end_matches('/')
    );
    let answer = client
        .post(url)
        .header("api-key", &config.brevo_api_key)
        .header("accept", "application/json")
        .json(body)
        .send()
        .await?;
    super::webhook::accepted(answer.status())
}

/// The start of a message as a notification shows it: whitespace collapsed, at most
/// [`PREVIEW_CHARS`], attachments named when there is no text.
pub fn preview(m: &StoredMessage) -> String {
    let text = if m.text.trim().is_empty() {
        match m.attachments.len() {
            0 => String::new(),
            1 => "(an attachment)".to_string(),
            n => format!("({n} attachments)"),
        }
    } else {
        m.text.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let mut cut: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().count() > PREVIEW_CHARS {
        cut.push('…');
    }
    cut
}

fn more(unread: u64, shown: usize) -> Option<String> {
    let rest = unread.saturating_sub(shown as u64);
    (rest > 0).then(|| match rest {
        1 => "and 1 more message".to_string(),
        n => format!("and {n} more messages"),
    })
}

fn html(c: &ConversationRecord, unread: u64, recent: &[StoredMessage], link: &str) -> String {
    let mut out = format!(
        "<p>You have unread messages about <strong>{}</strong>:</p>\n",
        escape(&c.service_title)
    );
    for m in recent {
        out.push_str(&format!(
            "<p><strong>{}</strong>: {}</p>\n",
            escape(&m.sender_name),
            escape(&preview(m))
        ));
    }
    if let Some(more) = more(unread, recent.len()) {
        out.push_str(&format!("<p>{more}</p>\n"));
    }
    if !link.is_empty() {
        out.push_str(&format!(
            "<p><a href=\"{}\">Open the conversation</a></p>\n",
            escape(link)
        ));
    }
    out
}

fn text(c: &ConversationRecord, unread: u64, recent: &[StoredMessage], link: &str) -> String {
    let mut out = format!("You have unread messages about {}:\n\n", c.service_title);
    for m in recent {
        out.push_str(&format!("{}: {}\n", m.sender_name, preview(m)));
    }
    if let Some(more) = more(unread, recent.len()) {
        out.push_str(&format!("{more}\n"));
    }
    if !link.is_empty() {
        out.push_str(&format!("\nOpen the conversation: {link}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::MessageType;
    use crate::domain::user::ExternalId;
    use crate::domain::Id;

    fn id(s: &str) -> ExternalId {
        ExternalId::parse(s).unwrap()
    }

    fn record() -> ConversationRecord {
        ConversationRecord {
            id: Id(42),
            service_id: id("svc"),
            service_title: "Plumbing <fast>".into(),
            provider_id: id("p"),
            provider_name: "Pat".into(),
            customer_id: id("c"),
            customer_name: "Cy".into(),
            created_at: 0,
        }
    }

    fn message(seq: u64, text: &str) -> StoredMessage {
        StoredMessage {
            id: Id(seq),
            conversation_id: Id(42),
            seq,
            sender_id: id("c"),
            sender_name: "Cy".into(),
            message_type: MessageType::Text,
            text: text.into(),
            attachments: Vec::new(),
            created_at: 0,
            client_msg_id: None,
            deleted: false,
        }
    }

    fn config() -> EmailConfig {
        EmailConfig {
            brevo_api_key: "k".into(),
            sender_email: "chat@market.example".into(),
            conversation_url: "https://market.example/inbox/{conversation_id}".into(),
            ..EmailConfig::default()
        }
    }

    #[test]
    fn a_digest_escapes_user_text_and_cuts_long_messages() {
        let long = "x".repeat(500);
        let recent = [
            message(1, "<script>alert(1)</script> & hi"),
            message(2, &long),
        ];
        let to = Recipient {
            email: "pat@example.com".into(),
            name: "Pat".into(),
        };
        let body = brevo_body(&config(), &to, &record(), 7, &recent, "99");
        let html = body["htmlContent"].as_str().unwrap();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; hi"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("Plumbing &lt;fast&gt;"));
        assert!(html.contains("and 5 more messages"));
        assert!(html.contains("href=\"https://market.example/inbox/42\""));
        assert!(!html.contains(&long), "a preview is cut");
        assert!(html.contains(&format!("{}…", "x".repeat(PREVIEW_CHARS))));
        assert_eq!(
            body["subject"],
            "7 new messages from Cy about Plumbing <fast>"
        );
        assert_eq!(body["to"][0]["email"], "pat@example.com");
        assert_eq!(body["headers"]["X-Switchboard-Notification"], "99");
        assert!(body["textContent"]
            .as_str()
            .unwrap()
            .contains("Open the conversation: https://market.example/inbox/42"));
    }

    #[test]
    fn a_template_gets_params_instead_of_content() {
        let mut c = config();
        c.template_id = Some(12);
        let to = Recipient {
            email: "pat@example.com".into(),
            name: "Pat".into(),
        };
        let body = brevo_body(&c, &to, &record(), 1, &[message(1, "hello")], "1");
        assert_eq!(body["templateId"], 12);
        assert!(body.get("htmlContent").is_none());
        assert_eq!(body["params"]["messages"][0]["text"], "hello");
        assert_eq!(body["params"]["unread"], 1);
        assert_eq!(
            body["params"]["conversation_url"],
            "https://market.example/inbox/42"
        );
    }
}
