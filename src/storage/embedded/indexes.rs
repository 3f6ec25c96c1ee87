//! What a write puts on disk: a conversation write turned into the operations of one batch, with
//! every index it moves, and the one-time build of the activity index for stores made before it.
//!
//! Indexes are written only where a change can have moved them, because every index write costs
//! on the message path: a new message costs its value, its id entry, its dedupe entry and that
//! entry's expiry, two activity moves (a delete and an insert for each participant) and the
//! recipient's unread count.

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::committer::Op;
use super::{decode, encode, io, Ks};
use crate::domain::conversation::{ConversationDoc, Side};
use crate::domain::message::StoredMessage;
use crate::storage::{keys, participants, ConversationWrite, StoreError, StoreResult};

/// The operations of one conversation write.
pub(super) fn conversation_ops(w: &ConversationWrite) -> Vec<Op> {
    let doc = &w.doc;
    let cid = doc.record.id;
    let mut ops = Vec::with_capacity(10);
    ops.push(Op::Put(
        Ks::Conversations,
        keys::id(cid).to_vec(),
        encode(doc),
    ));
    if let Some(m) = &w.message {
        message_ops(&mut ops, m);
    }
    ops.extend(w.items.iter().map(super::items::put));
    if let Some(old) = w.moved_from {
        let new = doc.state.activity_ms;
        // Deleting and inserting the same key in one batch would leave which one wins to the
        // batch's internals; an unmoved entry needs neither.
        if old != new {
            for (_, user) in participants(doc) {
                ops.push(Op::Delete(Ks::Activity, keys::activity(user, old, cid)));
                ops.push(Op::Put(
                    Ks::Activity,
                    keys::activity(user, new, cid),
                    Vec::new(),
                ));
            }
        }
    }
    if let Some(side) = w.unread_of {
        ops.push(unread_op(doc, side));
    }
    ops
}

/// The operations that create a conversation, with its first message when there is one: the
/// conversation, its key, the message and its indexes, the unread counts `doc.state` holds and
/// both participants' list entries.
pub(super) fn create_ops(doc: &ConversationDoc, first: Option<&StoredMessage>) -> Vec<Op> {
    let r = &doc.record;
    let mut ops = Vec::with_capacity(12);
    ops.push(Op::Put(
        Ks::Conversations,
        keys::id(r.id).to_vec(),
        encode(doc),
    ));
    ops.push(Op::Put(
        Ks::ConversationKeys,
        keys::conversation_key(&r.service_id, &r.provider_id, &r.customer_id),
        keys::id(r.id).to_vec(),
    ));
    if let Some(m) = first {
        message_ops(&mut ops, m);
    }
    // Whoever the first message made unread (the recipient of the sender's message) is in the
    // doc; the store does not decide which side that is.
    for (side, user) in participants(doc) {
        if doc.state.side(side).unread > 0 {
            ops.push(unread_op(doc, side));
        }
        ops.push(Op::Put(
            Ks::Activity,
            keys::activity(user, doc.state.activity_ms, r.id),
            Vec::new(),
        ));
    }
    ops
}

pub(super) fn message_ops(ops: &mut Vec<Op>, m: &StoredMessage) {
    let mkey = keys::message(m.conversation_id, m.seq).to_vec();
    ops.push(Op::Put(Ks::Messages, mkey.clone(), encode(m)));
    ops.push(Op::Put(
        Ks::MessageIds,
        keys::id(m.id).to_vec(),
        mkey.clone(),
    ));
    if let Some(c) = &m.client_msg_id {
        let dkey = keys::dedupe(m.conversation_id, &m.sender_id, c);
        // The expiry entry remembers which message it was for, so a sweep never deletes a newer
        // entry that reused the key after the window.
        ops.push(Op::Put(
            Ks::DedupeExpiry,
            keys::dedupe_expiry(m.created_at, &dkey),
            mkey.clone(),
        ));
        ops.push(Op::Put(Ks::Dedupe, dkey, mkey));
    }
}

fn unread_op(doc: &ConversationDoc, side: Side) -> Op {
    let ukey = keys::user_and_id(doc.record.user(side), doc.record.id);
    match doc.state.side(side).unread {
        0 => Op::Delete(Ks::Unread, ukey),
        n => Op::Put(Ks::Unread, ukey, n.to_be_bytes().to_vec()),
    }
}

/// The keyspace of the (user, conversation) -> activity lists stores had before the activity
/// index; read once, to build the index, and never written.
const OLD_LISTS: &str = "user_conversations";
/// Marks in `meta` that the activity index is complete.
const ACTIVITY_BUILT: &[u8] = b"activity_index_built";
/// Marks in `meta` that every dedupe entry is keyed by conversation and has its expiry entry.
const DEDUPE_REKEYED: &[u8] = b"dedupe_rekeyed";
/// Entries per batch while building, so a large store does not build one huge batch in memory.
const BUILD_CHUNK: usize = 10_000;

/// The one-time builds for stores made by earlier versions, run at open before any reader or
/// writer. Each build's writes are idempotent and its marker is written after them, so a build cut
/// short by a crash is simply done again at the next open; a new store only gets the markers.
pub(super) fn upgrade(db: &Database, spaces: &[Keyspace]) -> StoreResult<()> {
    once(db, spaces, ACTIVITY_BUILT, |batch| {
        build_activity_index(db, spaces, batch)
    })?;
    once(db, spaces, DEDUPE_REKEYED, |batch| {
        rekey_dedupe(spaces, batch)
    })?;
    db.persist(PersistMode::SyncAll).map_err(io)
}

/// Writes in chunks of `BUILD_CHUNK`.
struct Chunked<'a> {
    db: &'a Database,
    batch: fjall::OwnedWriteBatch,
    n: usize,
}

impl Chunked<'_> {
    fn insert(&mut self, ks: &Keyspace, k: Vec<u8>, v: Vec<u8>) -> StoreResult<()> {
        self.batch.insert(ks, k, v);
        self.tick()
    }

    fn remove(&mut self, ks: &Keyspace, k: Vec<u8>) -> StoreResult<()> {
        self.batch.remove(ks, k);
        self.tick()
    }

    fn tick(&mut self) -> StoreResult<()> {
        self.n += 1;
        if self.n.is_multiple_of(BUILD_CHUNK) {
            std::mem::replace(&mut self.batch, self.db.batch())
                .commit()
                .map_err(io)?;
        }
        Ok(())
    }
}

fn once(
    db: &Database,
    spaces: &[Keyspace],
    marker: &[u8],
    build: impl FnOnce(&mut Chunked) -> StoreResult<()>,
) -> StoreResult<()> {
    let meta = &spaces[Ks::Meta as usize];
    if meta.contains_key(marker).map_err(io)? {
        return Ok(());
    }
    let mut chunked = Chunked {
        db,
        batch: db.batch(),
        n: 0,
    };
    build(&mut chunked)?;
    let Chunked { mut batch, n, .. } = chunked;
    batch.insert(meta, marker, Vec::new());
    batch.commit().map_err(io)?;
    if n > 0 {
        tracing::info!(
            build = %String::from_utf8_lossy(marker),
            writes = n,
            "upgraded the store's indexes"
        );
    }
    Ok(())
}

/// The activity index from the old (user, conversation) -> activity lists, if there are any.
fn build_activity_index(db: &Database, spaces: &[Keyspace], out: &mut Chunked) -> StoreResult<()> {
    if !db.keyspace_exists(OLD_LISTS) {
        return Ok(());
    }
    let old = db
        .keyspace(OLD_LISTS, KeyspaceCreateOptions::default)
        .map_err(io)?;
    let activity = &spaces[Ks::Activity as usize];
    for g in old.iter() {
        let (k, v) = g.into_inner().map_err(io)?;
        let corrupt = || StoreError::Corrupt("old conversation list entry".into());
        let user = k.get(..k.len().saturating_sub(8)).ok_or_else(corrupt)?;
        let cid = keys::trailing_id(&k).ok_or_else(corrupt)?;
        let at = <[u8; 8]>::try_from(v.as_ref()).map_err(|_| corrupt())?;
        out.insert(
            activity,
            keys::activity_under(user, i64::from_be_bytes(at), cid),
            Vec::new(),
        )?;
    }
    Ok(())
}

/// Earlier versions keyed dedupe entries by (sender, id) alone and never expired them: such an
/// entry would never be found again (lookups are per conversation now) nor swept. Each is moved
/// under its conversation (the first 8 bytes of the message key it holds) with an expiry entry
/// at its message's creation, so a retry across the upgrade still finds its original.
fn rekey_dedupe(spaces: &[Keyspace], out: &mut Chunked) -> StoreResult<()> {
    let dedupe = &spaces[Ks::Dedupe as usize];
    let messages = &spaces[Ks::Messages as usize];
    // The iterator reads the keyspace as it was when it began, so it never meets a moved entry.
    for g in dedupe.iter() {
        let (k, mkey) = g.into_inner().map_err(io)?;
        out.remove(dedupe, k.to_vec())?;
        let message = match messages.get(&mkey).map_err(io)? {
            Some(v) => decode::<StoredMessage>(&v).ok(),
            None => None,
        };
        let (Some(m), Some(conversation)) = (message, mkey.get(..8)) else {
            continue;
        };
        let mut dkey = conversation.to_vec();
        dkey.extend_from_slice(&k);
        out.insert(
            &spaces[Ks::DedupeExpiry as usize],
            keys::dedupe_expiry(m.created_at, &dkey),
            mkey.to_vec(),
        )?;
        out.insert(dedupe, dkey, mkey.to_vec())?;
    }
    Ok(())
}
