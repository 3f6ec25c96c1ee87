//! `POST /api/v1/attachments` (multipart upload) and `GET /api/v1/attachments/{id}`; for
//! operators, the uploads accepted unscanned (`GET /admin/v1/attachments/unscanned`, and
//! `DELETE .../{id}` once reviewed).
//!
//! The upload is read as a stream, field by field (`multer`): the `file` field is gathered up to
//! `attachments.max_bytes` and the request is refused the moment it passes that, so an upload
//! never holds more than the limit in memory, and one that says up front (`Content-Length`) that
//! it is larger is refused before a byte of it is read.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::admin::operator;
use super::reply::{id_cursor, json, limit_param, principal, query_pairs, reject, with_engine};
use crate::attachments::AttachmentError;
use crate::describe::errors::{Authed, Operator};
use crate::domain::user::Principal;
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::ErrorBody;

/// The upload form, for the API description only: the handler reads the stream itself
/// (`read_file_field`), taking the `file` field and ignoring any other.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// PNG, JPEG, GIF, WebP or PDF, decided by the content; at most `attachments.max_bytes`
    /// (default 5 MiB).
    #[schema(value_type = String, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
}

/// What a multipart body may carry beyond the file: boundaries, part headers, a small field or
/// two. A `Content-Length` over `max_bytes` plus this cannot hold an acceptable file.
const FORM_OVERHEAD: u64 = 16 * 1024;

/// How much of an oversized upload without a `Content-Length` is read (and dropped) past the
/// limit so its sender can read the 413; past that the connection is simply closed.
const DRAIN_BYTES: u64 = 16 * 1024 * 1024;
/// The longest an oversized upload is read for.
const DRAIN_SECS: u64 = 30;

pub fn routes(engine: EngineRef) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let upload = warp::path!("api" / "v1" / "attachments")
        .and(warp::post())
        .and(principal(engine.clone()))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(with_engine(engine.clone()))
        .and_then(upload);
    let fetch = warp::path!("api" / "v1" / "attachments" / String)
        .and(warp::get())
        .and(principal(engine.clone()))
        .and(with_engine(engine))
        .and_then(fetch);
    upload.or(fetch).unify()
}

pub fn admin_routes(
    engine: EngineRef,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("admin" / "v1" / "attachments" / "unscanned")
        .and(warp::get())
        .and(operator(engine.clone()))
        .and(query_pairs())
        .and(with_engine(engine.clone()))
        .and_then(unscanned);
    let reviewed = warp::path!("admin" / "v1" / "attachments" / "unscanned" / String)
        .and(warp::delete())
        .and(operator(engine.clone()))
        .and(with_engine(engine))
        .and_then(reviewed);
    list.or(reviewed).unify()
}

/// Uploads accepted while the virus scanner was unreachable (`attachments.scan.on_unavailable =
/// "accept"`), for an operator to review. Items: `id`, `owner_id`, `filename`, `content_type`,
/// `size`, `sha256`, `created_at`.
#[utoipa::path(get, path = "/admin/v1/attachments/unscanned", tag = "admin: attachments",
    security(("admin_token" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 0, description = "default 50, at most 200 (larger is clamped)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = super::reply::Page<serde_json::Value>), Operator,
        (status = 400, description = "`invalid_query`, `invalid_cursor`", body = ErrorBody)))]
async fn unscanned(
    _op: (),
    q: Vec<(String, String)>,
    engine: EngineRef,
) -> Result<Response, Rejection> {
    async {
        let limit = limit_param(&q, 50, 200)?;
        let after = id_cursor(&q)?;
        let (metas, more) = engine.attachments.unscanned(after, limit).await?;
        let next = more
            .then(|| metas.last().map(|m| m.id.to_string()))
            .flatten();
        let items: Vec<_> = metas
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id, "owner_id": m.owner, "filename": m.filename,
                    "content_type": m.content_type, "size": m.size, "sha256": m.sha256,
                    "created_at": crate::domain::clock::format_ms(m.created_at),
                })
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({"items": items, "next_cursor": next}),
        ))
    }
    .await
    .map_err(|e: crate::error::ApiError| reject(e))
}

/// Mark an unscanned upload reviewed: it leaves the list.
#[utoipa::path(delete, path = "/admin/v1/attachments/unscanned/{id}", tag = "admin: attachments",
    security(("admin_token" = [])), params(("id" = String, Path, description = "attachment id")),
    responses((status = 204, description = "reviewed"), Operator,
        (status = 404, description = "`attachment_not_found`", body = ErrorBody)))]
async fn reviewed(id: String, _op: (), engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let id: Id = id.parse().map_err(|_| AttachmentError::NotFound)?;
        engine.attachments.reviewed(id).await?;
        tracing::info!(attachment_id = %id, "unscanned upload reviewed");
        Ok::<_, AttachmentError>(
            warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response(),
        )
    }
    .await
    .map_err(|e| reject(e.into()))
}

/// Upload a file (multipart/form-data, field `file`), to send with a message by its id. Answers
/// `id`, `filename`, `content_type`, `size`, `sha256` and `scan` (the virus scan's outcome).
#[utoipa::path(post, path = "/api/v1/attachments", tag = "attachments", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "stored", body = serde_json::Value), Authed,
        (status = 413, description = "`attachment_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type` (not multipart, or not an accepted type)", body = ErrorBody),
        (status = 422, description = "`invalid_request`, `attachment_rejected`", body = ErrorBody),
        (status = 503, description = "`overloaded`, `scanner_unavailable`, `store_unavailable`", body = ErrorBody)))]
async fn upload<S, B>(
    p: Principal,
    content_type: Option<String>,
    content_length: Option<u64>,
    body: S,
    engine: EngineRef,
) -> Result<Response, Rejection>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin + 'static,
    B: Buf + Send,
{
    async {
        let max = engine.attachments.max_bytes();
        if let Some(n) = content_length.filter(|n| *n > max + FORM_OVERHEAD) {
            if n <= max + FORM_OVERHEAD + DRAIN_BYTES {
                drain(body).await;
            }
            return Err(AttachmentError::TooLarge(max));
        }
        let boundary = content_type
            .as_deref()
            .and_then(|ct| multer::parse_boundary(ct).ok())
            .ok_or(AttachmentError::NotMultipart)?;
        let _slot = engine.attachments.admit()?;
        let stream = body.map(|chunk| chunk.map(|mut b| b.copy_to_bytes(b.remaining())));
        let (filename, bytes) = read_file_field(stream, &boundary, max).await?;
        let meta = engine
            .attachments
            .upload(&p.user_id, filename.as_deref(), bytes)
            .await?;
        tracing::info!(user_id = %p.user_id, attachment_id = %meta.id, size = meta.size, content_type = %meta.content_type, "attachment uploaded");
        Ok(json(
            StatusCode::CREATED,
            &serde_json::json!({
                "id": meta.id,
                "filename": meta.filename,
                "content_type": meta.content_type,
                "size": meta.size,
                "sha256": meta.sha256,
                "scan": meta.scan,
            }),
        ))
    }
    .await
    .map_err(|e: AttachmentError| reject(e.into()))
}

/// Reads a body to its end into nothing (at most `DRAIN_SECS`), so that its sender, still
/// sending, can read the answer: a connection closed on unread data is reset, and the client sees
/// a broken pipe instead of the 413.
async fn drain<S, B>(mut body: S)
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
{
    let all = async { while let Some(Ok(_)) = body.next().await {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(DRAIN_SECS), all).await;
}

/// The `file` field's name and bytes, at most `max` of them, from a multipart body with this
/// boundary. Other fields are read past (they count toward the whole body's limit). Public for
/// the fuzz target, which feeds it arbitrary bodies.
pub async fn read_file_field<S, E>(
    stream: S,
    boundary: &str,
    max: u64,
) -> Result<(Option<String>, Bytes), AttachmentError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let limits = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(max + FORM_OVERHEAD + DRAIN_BYTES));
    let mut form = multer::Multipart::with_constraints(stream, boundary.to_string(), limits);
    while let Some(mut field) = form.next_field().await.map_err(|e| form_error(e, max))? {
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().map(str::to_string);
        let mut bytes = BytesMut::new();
        let mut over = false;
        while let Some(chunk) = field.chunk().await.map_err(|e| form_error(e, max))? {
            if !over && bytes.len() as u64 + chunk.len() as u64 > max {
                // Keep reading, into nothing, for the same reason as `drain`; the stream's limit
                // ends hopeless cases.
                over = true;
                bytes = BytesMut::new();
            }
            if !over {
                bytes.extend_from_slice(&chunk);
            }
        }
        if over {
            return Err(AttachmentError::TooLarge(max));
        }
        return Ok((filename, bytes.freeze()));
    }
    Err(AttachmentError::BadForm("no `file` field".into()))
}

fn form_error(e: multer::Error, max: u64) -> AttachmentError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            AttachmentError::TooLarge(max)
        }
        e => AttachmentError::BadForm(e.to_string()),
    }
}

/// The file's bytes, to its uploader and the participants of a conversation it was sent in.
#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "attachments", security(("bearer" = [])),
    params(("id" = String, Path, description = "attachment id")),
    responses(
        (status = 200, description = "the file, with its detected `Content-Type`", content(
            (String = "image/png"), (String = "image/jpeg"), (String = "image/gif"),
            (String = "image/webp"), (String = "application/pdf"))),
        Authed,
        (status = 404, description = "`attachment_not_found` (also for a file the caller may not see)", body = ErrorBody),
        (status = 500, description = "`attachment_unreadable` (cannot be decrypted on this server)", body = ErrorBody)))]
async fn fetch(id: String, p: Principal, engine: EngineRef) -> Result<Response, Rejection> {
    async {
        let id: Id = id.parse().map_err(|_| AttachmentError::NotFound)?;
        let (meta, bytes) = engine.attachments.open_for(&p.user_id, id).await?;
        let mut res = Response::new(bytes.into());
        let h = res.headers_mut();
        let ct = HeaderValue::from_str(&meta.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        h.insert(header::CONTENT_TYPE, ct);
        // Images are shown in place; anything else is a download, never a page of our origin.
        let disposition = if meta.content_type.starts_with("image/") {
            "inline"
        } else {
            "attachment"
        };
        if let Ok(v) = HeaderValue::from_str(&content_disposition(disposition, &meta.filename)) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        // Even opened directly, the file can run nothing and load nothing.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; img-src 'self'; sandbox"),
        );
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=86400, immutable"),
        );
        Ok::<_, AttachmentError>(res)
    }
    .await
    .map_err(|e| reject(e.into()))
}

/// `inline; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266): every browser gets
/// the real name, and the header stays ASCII whatever the name holds.
fn content_disposition(kind: &str, filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_stay_ascii_and_keep_the_real_name() {
        assert_eq!(
            content_disposition("inline", "photo.jpg"),
            "inline; filename=\"photo.jpg\"; filename*=UTF-8''photo.jpg"
        );
        let d = content_disposition("attachment", "Überweisung \"2026\".pdf");
        assert!(d.is_ascii(), "{d}");
        assert!(d.contains("filename=\"_berweisung 2026.pdf\""), "{d}");
        assert!(d.contains("%C3%9Cberweisung%20%222026%22.pdf"), "{d}");
    }
}
