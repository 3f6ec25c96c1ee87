//! What a change causes: which notifications, with what bodies, and that they survive the store.

use std::sync::Arc;

use super::*;
use crate::domain::conversation::{ConversationRecord, ConversationState};
use crate::domain::message::MessageType;

fn ext(s: &str) -> ExternalId {
    ExternalId::parse(s).unwrap()
}

fn notifier(email: bool, webhooks: bool) -> Notifier {
    let mut e = EmailConfig::default();
    let mut w = WebhooksConfig::default();
    if email {
        e.brevo_api_key = "k".into();
        e.sender_email = "chat@market.example".into();
        e.delay_secs = 60;
    }
    if webhooks {
        w.url = "http://127.0.0.1:9/hook".into();
        w.secret = "s".repeat(32);
    }
    Notifier::new(e, w, PushConfig::default(), Arc::new(IdGenerator::new(3))).0
}

fn doc() -> ConversationDoc {
    ConversationDoc {
        record: ConversationRecord {
            id: Id(7),
            service_id: ext("svc"),
            service_title: "Tiling".into(),
            provider_id: ext("prov"),
            provider_name: "P".into(),
            customer_id: ext("cust"),
            customer_name: "C".into(),
            created_at: 1,
        },
        state: ConversationState::default(),
    }
}

fn message(seq: u64) -> StoredMessage {
    StoredMessage {
        id: Id(100 + seq),
        conversation_id: Id(7),
        seq,
        sender_id: ext("cust"),
        sender_name: "C".into(),
        message_type: MessageType::Text,
        text: "hello".into(),
        attachments: Vec::new(),
        created_at: 5,
        client_msg_id: None,
        deleted: false,
    }
}

fn events(p: &[Pending]) -> Vec<String> {
    p.iter()
        .map(|p| match &p.work {
            Work::Webhook { event, .. } => event.clone(),
            Work::Email { recipient, .. } => format!("email to {recipient}"),
            Work::Push { recipient, .. } => format!("push to {recipient}"),
            Work::PushTo { subscription, .. } => format!("push to {subscription}"),
        })
        .collect()
}

#[test]
fn nothing_is_recorded_when_nothing_is_configured() {
    let n = notifier(false, false);
    assert!(!n.enabled());
    assert!(n
        .on_created(&doc(), Some(&message(1)), &["url".into()])
        .is_empty());
    assert!(n.on_message(&doc(), &message(2), 1, &[]).is_empty());
    assert!(n.on_deleted(Id(7), Id(1), "sender").is_empty());
}

#[test]
fn a_first_unread_message_schedules_one_mail_after_the_delay_and_later_ones_none() {
    let n = notifier(true, false);
    let first = n.on_message(&doc(), &message(1), 1, &[]);
    assert_eq!(events(&first), ["email to prov"]);
    let wait = first[0].due_at - first[0].created_at;
    assert!((59_000..=61_000).contains(&wait), "{wait}");
    assert!(
        n.on_message(&doc(), &message(2), 2, &[]).is_empty(),
        "the mail covers it"
    );
}

#[test]
fn webhook_bodies_are_the_documented_envelope() {
    let n = notifier(false, true);
    let created = n.on_created(&doc(), Some(&message(1)), &["phone_number".into()]);
    assert_eq!(
        events(&created),
        ["conversation.created", "message.created", "message.flagged"]
    );
    let ids: std::collections::HashSet<_> = created.iter().map(|p| p.id).collect();
    assert_eq!(ids.len(), 3, "each has its own id");
    for p in &created {
        let Work::Webhook { event, body } = &p.work else {
            panic!("a webhook")
        };
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["id"], p.id.to_string());
        assert_eq!(&v["type"], event.as_str());
        assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v["data"]["conversation_id"], "7");
    }
    let Work::Webhook { body, .. } = &created[1].work else {
        unreachable!()
    };
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["data"]["message"]["text"], "hello");
    assert_eq!(v["data"]["message"]["id"], "101");
}

#[test]
fn a_pending_notification_round_trips_through_its_item() {
    let n = notifier(true, true);
    for p in n.on_created(&doc(), Some(&message(1)), &[]) {
        let item = p.item(ItemKind::Notification);
        assert_eq!(item.key, p.id.0.to_be_bytes());
        assert_eq!(Pending::from_item(&item).unwrap(), p);
    }
}

#[test]
fn a_full_handoff_is_remembered_as_missed() {
    let (n, rx) = Notifier::new(
        EmailConfig::default(),
        WebhooksConfig {
            url: "http://127.0.0.1:9/".into(),
            secret: "s".repeat(32),
            max_attempts: 3,
        },
        PushConfig::default(),
        Arc::new(IdGenerator::new(1)),
    );
    let mut all = Vec::new();
    while all.len() <= HANDOFF_QUEUE {
        all.extend(n.on_deleted(Id(1), Id(2), "sender"));
    }
    assert!(!n.take_missed());
    n.committed(all);
    assert!(n.take_missed(), "one did not fit");
    assert!(!n.take_missed(), "and the flag is cleared once read");
    drop(rx);
}
