//! The KPIs from a scripted day of traffic on a settable clock (`admin.clock_control`): every
//! figure is computed by hand below and must come back exactly.

use serde_json::{json, Value};

use super::harness::{Server, Ws};

const DAY: &str = "2026-06-01";

/// Sets the engine's clock to `hh:mm:ss.mmm` on [`DAY`].
async fn at(server: &Server, time: &str) {
    let (status, body) = server
        .admin_call(
            "PUT",
            "/admin/v1/clock",
            Some(json!({"now": format!("{DAY}T{time}Z")})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn say(server: &Server, token: &str, conversation: &str, text: &str) {
    let (status, body) = server
        .api(
            "POST",
            &format!("/api/v1/conversations/{conversation}/messages"),
            token,
            Some(json!({ "text": text })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn open(server: &Server, token: &str, service: &str) -> String {
    let (status, body) = server
        .api(
            "POST",
            "/api/v1/conversations",
            token,
            Some(json!({"service_id": service, "initial_message": "Hello!"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["conversation"]["id"].as_str().unwrap().to_string()
}

async fn report(server: &Server, query: &str) -> Value {
    let (status, body) = server
        .admin_call("GET", &format!("/admin/v1/analytics?{query}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn outcome(server: &Server, conversation: &str, booked: bool) {
    let (status, body) = server
        .admin_call(
            "POST",
            &format!("/admin/v1/conversations/{conversation}/outcome"),
            Some(json!({ "booked": booked })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_scripted_day_gives_the_hand_computed_kpis() {
    let server = Server::start_with(&[
        ("SWITCHBOARD_ADMIN__CLOCK_CONTROL", "true"),
        ("SWITCHBOARD_ANALYTICS__FLUSH_MS", "50"),
    ])
    .await;
    server.service("svc-kpi-a", "prov-kpi").await;
    server.service("svc-kpi-b", "prov-kpi").await;
    let provider = server.token("prov-kpi", "provider").await;
    let customers = [
        server.token("cust-kpi-1", "customer").await,
        server.token("cust-kpi-2", "customer").await,
        server.token("cust-kpi-3", "customer").await,
    ];

    // 09:00: four views of service A and one of B; three conversations start.
    at(&server, "09:00:00.000").await;
    for (token, service) in [
        (&customers[0], "svc-kpi-a"),
        (&customers[1], "svc-kpi-a"),
        (&customers[1], "svc-kpi-a"),
        (&customers[2], "svc-kpi-a"),
        (&customers[2], "svc-kpi-b"),
    ] {
        let (status, body) = server
            .api(
                "GET",
                &format!("/api/v1/services/{service}/contact"),
                token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // The clock is set again before each start, so the requests above take nothing off a wait.
    at(&server, "09:00:00.000").await;
    let c1 = open(&server, &customers[0], "svc-kpi-a").await;
    at(&server, "09:00:00.000").await;
    let c2 = open(&server, &customers[1], "svc-kpi-a").await;
    at(&server, "09:00:00.000").await;
    let c3 = open(&server, &customers[2], "svc-kpi-b").await;

    // Replies, each set half a second past the whole second so the few milliseconds a request
    // takes never move a truncated second: c3 after 60 s, c1 after 120 s; the customer of c1
    // writes again at 09:10 and a second time at 09:12 (still one wait), answered at 09:15
    // (300 s); c2 after 1800 s. A provider's second message in a row measures nothing.
    at(&server, "09:01:00.500").await;
    say(&server, &provider, &c3, "Sure, when?").await;
    at(&server, "09:02:00.500").await;
    say(&server, &provider, &c1, "Hi, yes.").await;
    say(&server, &provider, &c1, "Anything else?").await;
    at(&server, "09:10:00.000").await;
    say(&server, &customers[0], &c1, "Saturday?").await;
    at(&server, "09:12:00.000").await;
    say(&server, &customers[0], &c1, "Or Sunday?").await;
    at(&server, "09:15:00.500").await;
    say(&server, &provider, &c1, "Saturday works.").await;
    at(&server, "09:30:00.500").await;
    say(&server, &provider, &c2, "Sorry for the wait.").await;

    // The marketplace reports outcomes; c3's report changes its mind.
    outcome(&server, &c1, true).await;
    outcome(&server, &c2, false).await;
    outcome(&server, &c3, true).await;
    outcome(&server, &c3, false).await;
    outcome(&server, &c1, true).await;

    let range = format!("from={DAY}&to={DAY}");
    let all = report(&server, &range).await;
    assert_eq!(all["from"], DAY);
    assert_eq!(
        all["adoption"],
        json!({"contact_views": 5, "conversations": 3, "rate": 0.6})
    );
    // Samples 60, 120, 300, 1800: median (120 + 300) / 2, p90 the 4th of 4 by nearest rank.
    assert_eq!(
        all["response_time"],
        json!({"samples": 4, "median_seconds": 210.0, "p90_seconds": 1800})
    );
    assert_eq!(
        all["conversion"],
        json!({"conversations": 3, "outcomes": 3, "booked": 1, "rate": 1.0 / 3.0})
    );
    assert_eq!(all["days"].as_array().unwrap().len(), 1);
    assert_eq!(all["days"][0]["date"], DAY);

    let a = report(&server, &format!("{range}&service_id=svc-kpi-a")).await;
    assert_eq!(
        a["adoption"],
        json!({"contact_views": 4, "conversations": 2, "rate": 0.5})
    );
    assert_eq!(
        a["response_time"],
        json!({"samples": 3, "median_seconds": 300.0, "p90_seconds": 1800})
    );
    assert_eq!(
        a["conversion"],
        json!({"conversations": 2, "outcomes": 2, "booked": 1, "rate": 0.5})
    );
    let b = report(&server, &format!("{range}&service_id=svc-kpi-b")).await;
    assert_eq!(b["response_time"]["median_seconds"], 60.0);
    assert_eq!(b["conversion"]["booked"], 0);
    let by_provider = report(&server, &format!("{range}&provider_id=prov-kpi")).await;
    assert_eq!(by_provider["response_time"], all["response_time"]);

    // Another day holds nothing.
    let empty = report(&server, "from=2026-06-02&to=2026-06-03").await;
    assert_eq!(empty["adoption"]["contact_views"], 0);
    assert_eq!(empty["response_time"]["median_seconds"], Value::Null);

    // The same figures as CSV: a row for the day and a total.
    let res = reqwest::Client::new()
        .get(format!(
            "http://{}/admin/v1/analytics?{range}",
            server.admin
        ))
        .bearer_auth(super::harness::ADMIN_TOKEN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("date,contact_views,conversations,adoption_rate,"));
    assert!(
        lines[1].starts_with(&format!("{DAY},5,3,0.6,4,210,1800,3,1,")),
        "{csv}"
    );
    assert!(
        lines[2].starts_with("total,5,3,0.6,4,210,1800,3,1,"),
        "{csv}"
    );

    // The contact endpoint's typical response: the median of 210 s, in minutes rounded up.
    let (_, contact) = server
        .api(
            "GET",
            "/api/v1/services/svc-kpi-a/contact",
            &customers[0],
            None,
        )
        .await;
    assert_eq!(contact["provider"]["typical_response_minutes"], 4);

    // The provider's own figures; customers have none; another provider's service is unknown.
    let (status, mine) = server
        .api(
            "GET",
            &format!("/api/v1/me/analytics?{range}"),
            &provider,
            None,
        )
        .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["response_time"], all["response_time"]);
    let (status, _) = server
        .api("GET", "/api/v1/me/analytics", &customers[0], None)
        .await;
    assert_eq!(status, 403);
    server.service("svc-kpi-other", "prov-kpi-other").await;
    let (status, body) = server
        .api(
            "GET",
            "/api/v1/me/analytics?service_id=svc-kpi-other",
            &provider,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("service_not_found"))
    );

    // Bad periods are refused clearly.
    for bad in [
        "from=2026-06-02&to=2026-06-01",
        "from=yesterday",
        "from=2020-01-01&to=2026-01-01",
    ] {
        let (status, body) = server
            .admin_call("GET", &format!("/admin/v1/analytics?{bad}"), None)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_query")),
            "{bad}"
        );
    }
    let (status, _) = server
        .admin_call(
            "POST",
            "/admin/v1/conversations/123/outcome",
            Some(json!({"booked": true})),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn delivery_time_runs_from_send_to_the_first_delivered_receipt() {
    let server = Server::start_with(&[
        ("SWITCHBOARD_ADMIN__CLOCK_CONTROL", "true"),
        ("SWITCHBOARD_ANALYTICS__FLUSH_MS", "50"),
    ])
    .await;
    let (customer, provider, id) = server.conversation("kpi-dlv").await;
    let mut ws = Ws::connect(&server, &provider).await;
    at(&server, "12:00:00.000").await;
    say(&server, &customer, &id, "Are you there?").await;
    let message = ws.next_of("chat_message").await;
    let up_to = message["message"]["id"].clone();
    // The receipt comes 10 s later on the engine's clock; a second receipt measures nothing.
    at(&server, "12:00:10.000").await;
    let mut customer_ws = Ws::connect(&server, &customer).await;
    for _ in 0..2 {
        ws.send(json!({"type": "delivered", "conversation_id": id, "up_to": up_to}))
            .await;
    }
    // The first receipt reaches the sender; the second moves nothing and is not relayed.
    customer_ws.next_of("receipt").await;
    // The receipt travels on by itself: wait until it is counted.
    for _ in 0..50 {
        let day = report(&server, &format!("from={DAY}&to={DAY}")).await;
        if day["delivery_time"]["samples"] != 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let day = report(&server, &format!("from={DAY}&to={DAY}")).await;
    let d = &day["delivery_time"];
    assert_eq!(d["samples"], 1, "{day}");
    let p50 = d["p50_ms"].as_u64().unwrap();
    // 10 s on the engine's clock, give or take the milliseconds each request took to arrive.
    assert!((9_500..10_500).contains(&p50), "{p50} ms");
    assert_eq!(d["p99_ms"], d["p50_ms"]);

    // Without clock control the clock cannot be moved at all.
    let plain = Server::start().await;
    let (status, _) = plain
        .admin_call(
            "PUT",
            "/admin/v1/clock",
            Some(json!({"now": "2026-06-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 404);
}
