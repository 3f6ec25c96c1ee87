//! Query side: parsing, the member/conversation filter, ranking and paging.
//!
//! Ranking is BM25 score desc, then `created_at` desc, then `message_id` asc — a total
//! order, so offset paging is exact. tantivy's `TopDocs` breaks ties by doc address,
//! which changes when segments merge, so we use our own collector (`RankCollector`)
//! that keeps the top K by (score, created_at) *plus every tie at the cut*, and then
//! resolve remaining ties with the stored `message_id`.

use std::cmp::Ordering;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, QueryParser, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument};

use super::schema::{self, StoredMsg};
use super::snippet::{self, MAX_SNIPPET_CHARS};
use super::{Hit, Page, Query, SearchError, Shared};

/// Largest page; larger `limit`s are clamped to it.
pub const MAX_LIMIT: usize = 50;
/// Page size used when `limit` is 0.
const DEFAULT_LIMIT: usize = 20;
/// Deepest offset a cursor may point to: deeper paging costs memory and time and no
/// person scrolls 10,000 search results.
pub const MAX_OFFSET: usize = 10_000;
/// Longest accepted query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;

const CURSOR_PREFIX: &str = "o";

/// Cursor = `"o"` + decimal offset into the ordered result. Opaque to clients; the
/// prefix leaves room for a different encoding later. Offsets are not snapshots: if
/// the index changes between two pages a hit can shift across the page boundary.
fn encode_cursor(offset: usize) -> String {
    format!("{CURSOR_PREFIX}{offset}")
}

fn decode_cursor(c: &str) -> Result<usize, SearchError> {
    c.strip_prefix(CURSOR_PREFIX)
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n <= MAX_OFFSET)
        .ok_or(SearchError::BadCursor)
}

pub(crate) fn search(shared: &Shared, q: &Query) -> Result<Page, SearchError> {
    let text = q.text.trim();
    if text.is_empty() {
        return Err(SearchError::EmptyQuery);
    }
    if text.len() > MAX_QUERY_BYTES {
        return Err(SearchError::QueryTooLong);
    }
    let offset = match &q.cursor {
        Some(c) => decode_cursor(c)?,
        None => 0,
    };
    let limit = if q.limit == 0 {
        DEFAULT_LIMIT
    } else {
        q.limit.min(MAX_LIMIT)
    };
    let f = &shared.fields;

    let mut parser = QueryParser::for_index(&shared.index, vec![f.text]);
    // Chat search users expect every word to be present ("pizza friday").
    parser.set_conjunction_by_default();
    let (user_query, errors) = parser.parse_query_lenient(text);
    if !errors.is_empty() {
        tracing::debug!(?errors, "search: lenient parse recovered from errors");
    }

    // Filters score 0 so they do not distort BM25 of the user's words.
    let filter = |field, value: &str| -> Box<dyn tantivy::query::Query> {
        let tq = TermQuery::new(schema::term(field, value), IndexRecordOption::Basic);
        Box::new(ConstScoreQuery::new(Box::new(tq), 0.0))
    };
    let mut clauses = vec![
        (Occur::Must, user_query.box_clone()),
        (Occur::Must, filter(f.member, &q.user_id)),
    ];
    if let Some(cid) = &q.conversation_id {
        clauses.push((Occur::Must, filter(f.conversation_id, cid)));
    }
    let full = BooleanQuery::new(clauses);

    let searcher = shared.reader.searcher();
    // One extra to learn whether a next page exists.
    let want = offset + limit + 1;
    let mut cands = searcher.search(&full, &RankCollector { k: want })?;
    cands.sort_by(cmp_key);

    let has_more = cands.len() > offset + limit;
    let end = (offset + limit).min(cands.len());
    if offset >= end {
        return Ok(Page {
            items: vec![],
            next_cursor: None,
        });
    }
    // Widen [offset, end) to whole tie groups, load them, order ties by message_id.
    let mut lo = offset;
    while lo > 0 && cmp_key(&cands[lo - 1], &cands[lo]) == Ordering::Equal {
        lo -= 1;
    }
    let mut hi = end;
    while hi < cands.len() && cmp_key(&cands[hi - 1], &cands[hi]) == Ordering::Equal {
        hi += 1;
    }
    let mut loaded = Vec::with_capacity(hi - lo);
    for c in &cands[lo..hi] {
        let d: TantivyDocument = searcher.doc(c.addr)?;
        loaded.push((*c, StoredMsg::from_document(f, &d)));
    }
    loaded.sort_by(|a, b| cmp_key(&a.0, &b.0).then_with(|| a.1.message_id.cmp(&b.1.message_id)));

    let generator = match SnippetGenerator::create(&searcher, &*user_query, f.text) {
        Ok(mut g) => {
            g.set_max_num_chars(MAX_SNIPPET_CHARS);
            Some(g)
        }
        Err(e) => {
            tracing::warn!(error = %e, "search: snippet generator unavailable");
            None
        }
    };
    let items = loaded
        .into_iter()
        .skip(offset - lo)
        .take(end - offset)
        .map(|(_, m)| Hit {
            snippet: snippet::snippet_for(generator.as_ref(), &m.text),
            message_id: m.message_id,
            conversation_id: m.conversation_id,
            seq: m.seq,
            created_at_ms: m.created_at_ms,
        })
        .collect();
    let next = offset + limit;
    let next_cursor = (has_more && next <= MAX_OFFSET).then(|| encode_cursor(next));
    Ok(Page { items, next_cursor })
}

/// A scored candidate before its stored fields are loaded.
#[derive(Debug, Clone, Copy)]
struct Cand {
    score: Score,
    created_at: i64,
    addr: DocAddress,
}

/// Best first: higher score, then newer. Equal keys are ties (resolved by message_id).
fn cmp_key(a: &Cand, b: &Cand) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then_with(|| b.created_at.cmp(&a.created_at))
}

/// Keeps the best `k` candidates and every candidate tied with the k-th, so the
/// final `message_id` tie-break is exact. Memory stays ~2k per segment.
fn prune(v: &mut Vec<Cand>, k: usize) {
    if v.len() <= k || k == 0 {
        return;
    }
    v.select_nth_unstable_by(k - 1, cmp_key);
    let cut = v[k - 1];
    // After select_nth, [k..] holds elements >= cut; retain the tied ones.
    let mut i = k;
    while i < v.len() {
        if cmp_key(&v[i], &cut) == Ordering::Equal {
            i += 1;
        } else {
            v.swap_remove(i);
        }
    }
}

struct RankCollector {
    k: usize,
}

struct RankSegment {
    k: usize,
    seg: SegmentOrdinal,
    created_at: Column<i64>,
    buf: Vec<Cand>,
    /// Prune when `buf` reaches this; grows if ties keep it large (no O(n^2)).
    prune_at: usize,
}

impl Collector for RankCollector {
    type Fruit = Vec<Cand>;
    type Child = RankSegment;

    fn for_segment(
        &self,
        seg: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<RankSegment> {
        Ok(RankSegment {
            k: self.k,
            seg,
            created_at: reader.fast_fields().i64("created_at")?,
            buf: Vec::new(),
            prune_at: self.k.saturating_mul(2).max(64),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Cand>>) -> tantivy::Result<Vec<Cand>> {
        let mut all: Vec<Cand> = fruits.into_iter().flatten().collect();
        prune(&mut all, self.k);
        Ok(all)
    }
}

impl SegmentCollector for RankSegment {
    type Fruit = Vec<Cand>;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.buf.push(Cand {
            score,
            created_at: self.created_at.first(doc).unwrap_or(i64::MIN),
            addr: DocAddress::new(self.seg, doc),
        });
        if self.buf.len() >= self.prune_at {
            prune(&mut self.buf, self.k);
            self.prune_at = self.prune_at.max(self.buf.len().saturating_mul(2));
        }
    }

    fn harvest(mut self) -> Vec<Cand> {
        prune(&mut self.buf, self.k);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(score: f32, created_at: i64, doc: u32) -> Cand {
        Cand {
            score,
            created_at,
            addr: DocAddress::new(0, doc),
        }
    }

    #[test]
    fn prune_keeps_ties_at_the_cut() {
        let mut v = vec![
            c(1.0, 5, 0),
            c(3.0, 1, 1),
            c(2.0, 7, 2),
            c(2.0, 7, 3),
            c(0.5, 9, 4),
        ];
        prune(&mut v, 2);
        v.sort_by(cmp_key);
        let docs: Vec<u32> = v.iter().map(|c| c.addr.doc_id).collect();
        assert_eq!(docs.len(), 3, "top-2 plus the tie: {docs:?}");
        assert_eq!(docs[0], 1);
    }

    #[test]
    fn cursor_roundtrip_and_rejects_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(40)).ok(), Some(40));
        assert!(decode_cursor("x").is_err());
        assert!(decode_cursor("o-1").is_err());
        assert!(decode_cursor(&encode_cursor(MAX_OFFSET + 1)).is_err());
    }
}
