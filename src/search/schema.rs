//! The tantivy schema, the text analyzer, and `Doc` <-> tantivy document conversion.
//!
//! Kept in one place so that the writer (which builds documents) and the query side
//! (which reads stored fields back) can never disagree about field names or types.

use tantivy::schema::{
    Field, IndexRecordOption, Schema, TantivyDocument, TextFieldIndexing, TextOptions, Value, FAST,
    STORED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{Index as TantivyIndex, Term};

use super::Doc;

/// Name under which our analyzer is registered. It is part of the on-disk schema, so
/// renaming it means a reindex.
pub(crate) const TOKENIZER: &str = "msg_text";

/// Handles to every field, resolved once at open time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields {
    pub message_id: Field,
    pub conversation_id: Field,
    pub member: Field,
    pub sender_id: Field,
    pub seq: Field,
    pub created_at: Field,
    pub text: Field,
}

/// Builds the schema. `created_at` is FAST because ranking reads it for every hit;
/// `member`/`sender_id` are only indexed (filters and erasure), never stored.
pub(crate) fn build_schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_opts = TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        message_id: b.add_text_field("message_id", STRING | STORED),
        conversation_id: b.add_text_field("conversation_id", STRING | STORED),
        member: b.add_text_field("member", STRING),
        sender_id: b.add_text_field("sender_id", STRING),
        seq: b.add_u64_field("seq", STORED | FAST),
        created_at: b.add_i64_field("created_at", STORED | FAST),
        text: b.add_text_field("text", text_opts),
    };
    (b.build(), fields)
}

/// Registers the analyzer on an index handle. Tokenizers are not persisted by tantivy,
/// so this must run on every open, before any writer, reader or query parser is built.
///
/// Unicode-aware word split (`SimpleTokenizer` uses `char::is_alphanumeric`), drops
/// absurdly long tokens (pasted base64 etc.), lowercases, and folds accents so
/// "cafe" finds "café". No stemming: chat text is multilingual and stemming one
/// language hurts the others.
pub(crate) fn register_tokenizer(index: &TantivyIndex) {
    let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build();
    index.tokenizers().register(TOKENIZER, analyzer);
}

/// Converts an engine `Doc` into a tantivy document.
pub(crate) fn to_document(f: &Fields, doc: &Doc) -> TantivyDocument {
    let mut d = TantivyDocument::default();
    d.add_text(f.message_id, &doc.message_id);
    d.add_text(f.conversation_id, &doc.conversation_id);
    for m in &doc.members {
        d.add_text(f.member, m);
    }
    d.add_text(f.sender_id, &doc.sender_id);
    d.add_u64(f.seq, doc.seq);
    d.add_i64(f.created_at, doc.created_at_ms);
    d.add_text(f.text, &doc.text);
    d
}

/// Exact-match term on a STRING field (message_id, member, sender_id, ...).
pub(crate) fn term(field: Field, value: &str) -> Term {
    Term::from_field_text(field, value)
}

/// The stored fields a hit needs, read back from a tantivy document.
#[derive(Debug, Clone)]
pub(crate) struct StoredMsg {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: u64,
    pub created_at_ms: i64,
    pub text: String,
}

impl StoredMsg {
    /// Missing fields become empty/zero rather than errors: a stored document always
    /// has them, and a search must not fail because of one odd document.
    pub(crate) fn from_document(f: &Fields, d: &TantivyDocument) -> StoredMsg {
        let s = |field: Field| {
            d.get_first(field)
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        StoredMsg {
            message_id: s(f.message_id),
            conversation_id: s(f.conversation_id),
            seq: d.get_first(f.seq).and_then(|v| v.as_u64()).unwrap_or(0),
            created_at_ms: d
                .get_first(f.created_at)
                .and_then(|v| v.as_i64())
                .unwrap_or(0),
            text: s(f.text),
        }
    }
}
