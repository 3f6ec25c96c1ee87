//! The AsyncAPI 3.0 document of the socket (`/ws` and the compatibility socket
//! `/ws/chat/{conversation_id}/`). Its payload schemas are the `utoipa` schemas of the serde
//! types the socket reads and writes ([`ClientFrame`], [`ServerEvent`] and what they hold), so a
//! frame type added to either enum appears here with its fields; the envelope around them is
//! written here with `serde_json`.

use serde_json::{json, Map, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::domain::events::{ClientFrame, ServerEvent};

/// Message (and payload schema) names are `client.<type>` and `server.<type>`.
const CLIENT: &str = "client";
const SERVER: &str = "server";

/// A tagged enum's variants as (tag, schema): each `oneOf` item names its tag in `type`.
fn variants(schema: RefOr<Schema>) -> Result<Vec<(String, Value)>, serde_json::Error> {
    let schema = serde_json::to_value(schema)?;
    let items = schema
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let tag = tag_of(&item)?;
            Some((tag, item))
        })
        .collect())
}

fn tag_of(variant: &Value) -> Option<String> {
    let t = variant.get("properties")?.get("type")?;
    t.get("enum")
        .and_then(|e| e.get(0))
        .or_else(|| t.get("const"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The schemas a type refers to, by name.
fn referenced<T: ToSchema>(into: &mut Map<String, Value>) -> Result<(), serde_json::Error> {
    let mut found = Vec::new();
    T::schemas(&mut found);
    for (name, schema) in found {
        into.insert(name, serde_json::to_value(schema)?);
    }
    Ok(())
}

fn summary(side: &str, tag: &str) -> String {
    match side {
        CLIENT => format!("`{tag}` frame from a client"),
        _ => format!("`{tag}` event from the server"),
    }
}

/// The whole document.
pub fn document() -> Result<Value, serde_json::Error> {
    let mut schemas = Map::new();
    referenced::<ClientFrame>(&mut schemas)?;
    referenced::<ServerEvent>(&mut schemas)?;
    let mut messages = Map::new();
    let mut client = Vec::new();
    let mut server = Vec::new();
    for (side, variants, names) in [
        (CLIENT, variants(ClientFrame::schema())?, &mut client),
        (SERVER, variants(ServerEvent::schema())?, &mut server),
    ] {
        for (tag, schema) in variants {
            let name = format!("{side}.{tag}");
            schemas.insert(name.clone(), schema);
            messages.insert(
                name.clone(),
                json!({
                    "name": tag,
                    "title": tag,
                    "summary": summary(side, &tag),
                    "contentType": "application/json",
                    "payload": {"$ref": format!("#/components/schemas/{name}")},
                }),
            );
            names.push(name);
        }
    }
    let channel_messages: Map<String, Value> = client
        .iter()
        .chain(&server)
        .map(|n| {
            (
                n.clone(),
                json!({"$ref": format!("#/components/messages/{n}")}),
            )
        })
        .collect();
    let query = json!({
        "ws": {
            "method": "GET",
            "query": {
                "type": "object",
                "properties": {
                    "access_token": {"type": "string", "description": "the JWT, if not sent otherwise"},
                    "format": {"type": "string", "enum": ["json", "msgpack"], "default": "json"},
                },
            },
            "bindingVersion": "0.1.0",
        }
    });
    let operations = |channel: &str| {
        let refs = |names: &[String]| -> Vec<Value> {
            names
                .iter()
                .map(|n| json!({"$ref": format!("#/channels/{channel}/messages/{n}")}))
                .collect()
        };
        [
            (
                format!("{channel}.receive"),
                json!({
                    "action": "receive",
                    "summary": "frames a client sends",
                    "channel": {"$ref": format!("#/channels/{channel}")},
                    "messages": refs(&client),
                }),
            ),
            (
                format!("{channel}.send"),
                json!({
                    "action": "send",
                    "summary": "events the server pushes",
                    "channel": {"$ref": format!("#/channels/{channel}")},
                    "messages": refs(&server),
                }),
            ),
        ]
    };
    let operations: Map<String, Value> = operations("socket")
        .into_iter()
        .chain(operations("compat"))
        .collect();
    Ok(json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Switchboard socket",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "One socket per device, carrying events for all of the user's \
                conversations. Text frames hold JSON. With `?format=msgpack` on the upgrade URL \
                the server sends binary frames holding MessagePack maps with exactly the same \
                field names (named fields, not arrays) and accepts binary frames in kind; the \
                payload schemas below describe both. The token comes with the upgrade \
                (`?access_token=`, `Authorization: Bearer`, the cookie) or as the first frame, \
                `auth`, within 5 s. A bad frame gets an `error` event and the socket stays open. \
                Ids are decimal strings (numbers accepted on input); `ref` is echoed when sent.",
        },
        "defaultContentType": "application/json",
        "channels": {
            "socket": {
                "address": "/ws",
                "title": "The socket",
                "messages": channel_messages,
                "bindings": query,
            },
            "compat": {
                "address": "/ws/chat/{conversation_id}/",
                "title": "The one-conversation compatibility socket",
                "parameters": {"conversation_id": {"description": "conversation id"}},
                "messages": channel_messages,
                "bindings": query,
            },
        },
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }))
}
