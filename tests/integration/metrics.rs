//! `GET /metrics` against the real server: the OpenMetrics page is parsed (name{labels} value)
//! and its figures checked against what the test did over real sockets and HTTP: sends acked,
//! refused by reason, connections by wire format, group commits and store operations.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::json;

use super::harness::{Server, Ws, ADMIN_TOKEN};

/// One scrape: each sample keyed by its name and its labels in a fixed order
/// (`name{a="1",b="2"}`, or the bare name without labels).
struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = HashMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("a sample line has a value: {line}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("a number: {line}")),
            };
            let key = match series.split_once('{') {
                None => series.to_string(),
                Some((name, rest)) => {
                    let labels = rest.strip_suffix('}').expect("labels end with }");
                    let sorted: BTreeMap<&str, &str> = labels
                        .split(',')
                        .filter(|l| !l.is_empty())
                        .map(|l| l.split_once('=').expect("label is k=\"v\""))
                        .collect();
                    let labels: Vec<String> =
                        sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("{name}{{{}}}", labels.join(","))
                }
            };
            samples.insert(key, value);
        }
        Scrape(samples)
    }

    /// A sample that must be there; `key` as [`Scrape`] writes it (labels sorted by name).
    fn get(&self, key: &str) -> f64 {
        *self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("{key} is exposed; have {:?}", self.names()))
    }

    fn or_zero(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    fn names(&self) -> Vec<&String> {
        let mut v: Vec<_> = self.0.keys().collect();
        v.sort();
        v
    }
}

async fn scrape_text(s: &Server) -> (u16, String, String) {
    let res = reqwest::Client::new()
        .get(format!("http://{}/metrics", s.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics answer");
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ctype, res.text().await.expect("metrics body"))
}

async fn scrape(s: &Server) -> Scrape {
    let (status, _, text) = scrape_text(s).await;
    assert_eq!(status, 200, "{text}");
    Scrape::parse(&text)
}

const ACK: &str = "switchboard_send_ack_seconds_count";
const ACK_INF: &str = "switchboard_send_ack_seconds_bucket{le=\"+Inf\"}";
const JSON_SOCKETS: &str = "switchboard_connections{format=\"json\"}";
const MSGPACK_SOCKETS: &str = "switchboard_connections{format=\"msgpack\"}";

#[tokio::test]
async fn metrics_count_what_the_server_did() {
    // A budget of 10: the conversation's first message takes one, the test's sends the rest,
    // and then it runs out (rate_limited).
    let s = Server::start_with(&[
        ("SWITCHBOARD_LIMITS__MESSAGES_PER_MINUTE", "6"),
        ("SWITCHBOARD_LIMITS__MESSAGES_BURST", "10"),
    ])
    .await;
    let (customer, provider, conv) = s.conversation("metrics").await;

    // The page is the operators': no token, no metrics.
    let res = reqwest::Client::new()
        .get(format!("http://{}/metrics", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);

    let mut ws = Ws::connect(&s, &customer).await;
    let _mp =
        Ws::connect_url(&s.ws_url(&format!("/ws?access_token={provider}&format=msgpack"))).await;
    let (status, ctype, text) = scrape_text(&s).await;
    assert_eq!(status, 200);
    assert_eq!(
        ctype,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let before = Scrape::parse(&text);
    assert_eq!(before.get(JSON_SOCKETS), 1.0, "one JSON socket is open");
    assert_eq!(
        before.get(MSGPACK_SOCKETS),
        1.0,
        "one MessagePack socket is open"
    );
    let (_, stats) = s.admin_call("GET", "/admin/v1/stats", None).await;
    assert_eq!(stats["connections"], 2, "{stats}");

    // Five sends over the socket, two over HTTP, each acked after it is durable.
    let mut acked = 0.0;
    for i in 0..5 {
        ws.send(json!({"type": "chat_message", "conversation_id": conv, "text": format!("m{i}"), "ref": format!("r{i}")}))
            .await;
        assert_eq!(ws.next_of("ack").await["ref"], format!("r{i}"));
        acked += 1.0;
    }
    let path = format!("/api/v1/conversations/{conv}/messages");
    for i in 0..2 {
        let (st, b) = s
            .api(
                "POST",
                &path,
                &customer,
                Some(json!({"text": format!("h{i}")})),
            )
            .await;
        assert_eq!(st, 201, "{b}");
        acked += 1.0;
    }
    // An empty text is refused before the budget is spent.
    ws.send(json!({"type": "chat_message", "conversation_id": conv, "text": "", "ref": "empty"}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "text_required");
    // Spend the rest of the budget until it says no.
    let mut limited = 0.0;
    for i in 0..8 {
        let (st, b) = s
            .api(
                "POST",
                &path,
                &customer,
                Some(json!({"text": format!("x{i}")})),
            )
            .await;
        match st {
            201 => acked += 1.0,
            429 => {
                assert_eq!(b["error"]["code"], "rate_limited");
                limited += 1.0;
            }
            _ => panic!("{st} {b}"),
        }
    }
    assert!(limited >= 1.0, "the budget ran out");

    let after = scrape(&s).await;
    let delta = |key: &str| after.or_zero(key) - before.or_zero(key);
    assert_eq!(delta(ACK), acked, "one send→ack observation per acked send");
    assert_eq!(
        after.get(ACK_INF),
        after.get(ACK),
        "+Inf bucket is the count"
    );
    assert!(after.get("switchboard_send_ack_seconds_sum") > 0.0);
    assert_eq!(delta("switchboard_messages_accepted_total"), acked);
    assert_eq!(delta("switchboard_messages_stored_total"), acked);
    assert_eq!(
        delta("switchboard_messages_refused_total{reason=\"text_required\"}"),
        1.0
    );
    assert_eq!(
        delta("switchboard_messages_refused_total{reason=\"rate_limited\"}"),
        limited
    );
    assert_eq!(delta("switchboard_rate_limited_total"), limited);
    assert!(
        delta("switchboard_fanout_events_total") >= acked,
        "at least every ack was written to a socket"
    );
    assert!(after.get("switchboard_store_batch_size_count") > 0.0);
    assert_eq!(
        after.get("switchboard_store_batch_size_bucket{le=\"+Inf\"}"),
        after.get("switchboard_store_batch_size_count")
    );
    assert!(
        delta("switchboard_store_operation_seconds_count{op=\"submit\"}") >= acked,
        "every stored message was one timed submit"
    );
    assert!(after.get("switchboard_store_operation_seconds_count{op=\"get_conversation\"}") > 0.0);
    assert_eq!(after.get("switchboard_store_up"), 1.0);
    assert!(after.get("switchboard_conversation_actors") >= 1.0);
    assert_eq!(after.get("switchboard_online_users"), 2.0);
    assert_eq!(after.get("switchboard_slow_socket_closes_total"), 0.0);

    // Closing the JSON socket takes it off the gauge.
    drop(ws);
    let mut now = after;
    for _ in 0..100 {
        if now.get(JSON_SOCKETS) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        now = scrape(&s).await;
    }
    assert_eq!(
        now.get(JSON_SOCKETS),
        0.0,
        "the closed socket is not counted"
    );
    assert_eq!(now.get(MSGPACK_SOCKETS), 1.0);
}

#[test]
fn the_parser_sorts_labels() {
    let s = Scrape::parse(
        "# TYPE a histogram\na_bucket{le=\"1.0\",op=\"x\"} 2\nb 3.5\nc{z=\"1\",a=\"2\"} 1\n# EOF\n",
    );
    assert_eq!(s.get("a_bucket{le=\"1.0\",op=\"x\"}"), 2.0);
    assert_eq!(s.get("b"), 3.5);
    assert_eq!(s.get("c{a=\"2\",z=\"1\"}"), 1.0);
}
