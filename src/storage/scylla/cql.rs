//! Every statement the ScyllaDB store sends, as text: one per query the store serves, prepared
//! once at startup. Pure data, so what the store says to the cluster can be read (and tested)
//! in one place, and the fault-injection tests can answer PREPARE with the right bind markers.
//!
//! Every write carries `USING TIMESTAMP ?`: the store stamps the writes of a conversation in
//! submission order from one monotonic clock, so the cluster applies them in that order however
//! they travel (a retried write, coordinators whose clocks disagree, several writes coalesced
//! into one batch), and writing the same thing again changes nothing.

/// The type of a bind marker (what the fault-injection tests forge PREPARE answers with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    BigInt,
    Int,
    Text,
    Blob,
}

/// Messages per history partition: (conversation, seq / BUCKET_SEQS). A bucket of 1024 messages
/// of at most 2,000 characters stays far below the partition sizes ScyllaDB handles well.
pub const BUCKET_SEQS: u64 = 1024;

pub fn bucket_of(seq: u64) -> i64 {
    (seq / BUCKET_SEQS) as i64
}

/// Whether `seq` is the first message of its bucket: that write also lists the bucket.
pub fn starts_bucket(seq: u64) -> bool {
    seq.is_multiple_of(BUCKET_SEQS) || seq == 1
}

macro_rules! statements {
    ($($name:ident = $cql:literal [$($ty:ident),*];)*) => {
        /// A statement of the store, by what it does.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        pub enum Q { $($name),* }

        impl Q {
            pub const ALL: &'static [Q] = &[$(Q::$name),*];

            /// The CQL, with `{ks}` where the keyspace goes.
            pub fn template(self) -> &'static str {
                match self { $(Q::$name => $cql),* }
            }

            /// The types of its bind markers, in order.
            pub fn binds(self) -> &'static [Ty] {
                match self { $(Q::$name => &[$(Ty::$ty),*]),* }
            }
        }
    };
}

statements! {
    PutService = "INSERT INTO {ks}.services (service_id, body) VALUES (?, ?)" [Text, Blob];
    GetService = "SELECT body FROM {ks}.services WHERE service_id = ?" [Text];
    DeleteService = "DELETE FROM {ks}.services WHERE service_id = ?" [Text];
    ScanServices = "SELECT body FROM {ks}.services" [];
    PutUser = "INSERT INTO {ks}.users (user_id, body) VALUES (?, ?)" [Text, Blob];
    GetUser = "SELECT body FROM {ks}.users WHERE user_id = ?" [Text];
    DeleteUser = "DELETE FROM {ks}.users WHERE user_id = ?" [Text];
    ScanUsers = "SELECT body FROM {ks}.users" [];

    PutConversation = "INSERT INTO {ks}.conversations (conversation_id, body) VALUES (?, ?) USING TIMESTAMP ?" [BigInt, Blob, BigInt];
    GetConversation = "SELECT body, WRITETIME(body) FROM {ks}.conversations WHERE conversation_id = ?" [BigInt];
    ScanConversations = "SELECT body FROM {ks}.conversations" [];
    ClaimKey = "INSERT INTO {ks}.conversation_keys (service_id, provider_id, customer_id, conversation_id, created_at) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS" [Text, Text, Text, BigInt, BigInt];
    TakeOverKey = "UPDATE {ks}.conversation_keys SET conversation_id = ?, created_at = ? WHERE service_id = ? AND provider_id = ? AND customer_id = ? IF conversation_id = ? AND created_at = ?" [BigInt, BigInt, Text, Text, Text, BigInt, BigInt];
    PutKey = "INSERT INTO {ks}.conversation_keys (service_id, provider_id, customer_id, conversation_id, created_at) VALUES (?, ?, ?, ?, ?)" [Text, Text, Text, BigInt, BigInt];
    FindKey = "SELECT conversation_id, created_at FROM {ks}.conversation_keys WHERE service_id = ? AND provider_id = ? AND customer_id = ?" [Text, Text, Text];

    PutMessage = "INSERT INTO {ks}.messages (conversation_id, bucket, seq, body) VALUES (?, ?, ?, ?) USING TIMESTAMP ?" [BigInt, BigInt, BigInt, Blob, BigInt];
    GetMessage = "SELECT body FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq = ?" [BigInt, BigInt, BigInt];
    MessagesDesc = "SELECT body FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq > ? AND seq < ? LIMIT ?" [BigInt, BigInt, BigInt, BigInt, Int];
    MessagesAsc = "SELECT body FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq > ? AND seq < ? ORDER BY seq ASC LIMIT ?" [BigInt, BigInt, BigInt, BigInt, Int];
    ScanMessages = "SELECT body FROM {ks}.messages" [];
    PutBucket = "INSERT INTO {ks}.message_buckets (conversation_id, bucket) VALUES (?, ?) USING TIMESTAMP ?" [BigInt, BigInt, BigInt];
    NewestBucket = "SELECT bucket FROM {ks}.message_buckets WHERE conversation_id = ? LIMIT 1" [BigInt];
    PutMessageId = "INSERT INTO {ks}.message_ids (message_id, conversation_id, seq) VALUES (?, ?, ?) USING TIMESTAMP ?" [BigInt, BigInt, BigInt, BigInt];
    GetMessageId = "SELECT conversation_id, seq FROM {ks}.message_ids WHERE message_id = ?" [BigInt];
    PutDedupe = "INSERT INTO {ks}.dedupe (conversation_id, sender_id, client_msg_id, message_id, seq) VALUES (?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?" [BigInt, Text, Text, BigInt, BigInt, Int, BigInt];
    DeleteDedupe = "DELETE FROM {ks}.dedupe USING TIMESTAMP ? WHERE conversation_id = ? AND sender_id = ? AND client_msg_id = ?" [BigInt, BigInt, Text, Text];
    GetDedupe = "SELECT message_id, seq FROM {ks}.dedupe WHERE conversation_id = ? AND sender_id = ? AND client_msg_id = ?" [BigInt, Text, Text];

    PutActivity = "INSERT INTO {ks}.user_conversations (user_id, activity_ms, conversation_id) VALUES (?, ?, ?) USING TIMESTAMP ?" [Text, BigInt, BigInt, BigInt];
    DeleteActivity = "DELETE FROM {ks}.user_conversations USING TIMESTAMP ? WHERE user_id = ? AND activity_ms = ? AND conversation_id = ?" [BigInt, Text, BigInt, BigInt];
    ListActivity = "SELECT activity_ms, conversation_id FROM {ks}.user_conversations WHERE user_id = ?" [Text];
    ListActivityAfter = "SELECT activity_ms, conversation_id FROM {ks}.user_conversations WHERE user_id = ? AND (activity_ms, conversation_id) < (?, ?)" [Text, BigInt, BigInt];
    HasActivity = "SELECT conversation_id FROM {ks}.user_conversations WHERE user_id = ? AND activity_ms = ? AND conversation_id = ?" [Text, BigInt, BigInt];
    PutWatermarks = "INSERT INTO {ks}.watermarks (user_id, conversation_id, unread, read_seq, delivered_seq) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?" [Text, BigInt, BigInt, BigInt, BigInt, BigInt];
    ListWatermarks = "SELECT conversation_id, unread FROM {ks}.watermarks WHERE user_id = ?" [Text];

    PutHidden = "INSERT INTO {ks}.hidden (user_id, message_id) VALUES (?, ?)" [Text, BigInt];
    GetHidden = "SELECT message_id FROM {ks}.hidden WHERE user_id = ? AND message_id = ?" [Text, BigInt];
    ScanHidden = "SELECT user_id, message_id FROM {ks}.hidden" [];
    PutLastSeen = "INSERT INTO {ks}.last_seen (user_id, at_ms) VALUES (?, ?)" [Text, BigInt];
    GetLastSeen = "SELECT at_ms FROM {ks}.last_seen WHERE user_id = ?" [Text];
    ScanLastSeen = "SELECT user_id, at_ms FROM {ks}.last_seen" [];

    PutItem = "INSERT INTO {ks}.items (kind, part, key, value) VALUES (?, ?, ?, ?)" [Text, Text, Blob, Blob];
    GetItem = "SELECT value FROM {ks}.items WHERE kind = ? AND part = ? AND key = ?" [Text, Text, Blob];
    DeleteItem = "DELETE FROM {ks}.items WHERE kind = ? AND part = ? AND key = ?" [Text, Text, Blob];
    ListItems = "SELECT key, value FROM {ks}.items WHERE kind = ? AND part = ? LIMIT ?" [Text, Text, Int];
    ListItemsAfter = "SELECT key, value FROM {ks}.items WHERE kind = ? AND part = ? AND key > ? LIMIT ?" [Text, Text, Blob, Int];
    ScanItems = "SELECT kind, part, key, value FROM {ks}.items" [];
}

impl Q {
    /// The statement's text for `keyspace` (already checked to be a plain identifier).
    pub fn cql(self, keyspace: &str) -> String {
        self.template().replace("{ks}", keyspace)
    }
}

/// The schema files, in the order `migrate` applies them.
pub const SCHEMA: &[(&str, &str)] = &[
    (
        "001_keyspace.cql",
        include_str!("../../../schema/001_keyspace.cql"),
    ),
    (
        "002_tables.cql",
        include_str!("../../../schema/002_tables.cql"),
    ),
    (
        "003_items.cql",
        include_str!("../../../schema/003_items.cql"),
    ),
];

/// The statements of a schema file for a keyspace and a replication map (`{'class': ...}`):
/// comments dropped, split at `;`.
pub fn schema_statements(file: &str, keyspace: &str, replication: &str) -> Vec<String> {
    let text: String = file
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.replace("{keyspace}", keyspace)
                .replace("{replication}", replication)
        })
        .collect()
}

/// The replication map of `CREATE KEYSPACE` for a strategy and factor.
pub fn replication(strategy: &str, factor: u32) -> String {
    format!("{{'class': '{strategy}', 'replication_factor': {factor}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_binds_as_many_values_as_it_has_markers() {
        for q in Q::ALL {
            let markers = q.template().matches('?').count();
            assert_eq!(markers, q.binds().len(), "{q:?}");
            assert!(q.cql("ks").contains("ks."), "{q:?}");
            assert!(!q.cql("ks").contains("{ks}"), "{q:?}");
        }
    }

    #[test]
    fn every_write_on_the_message_path_is_stamped() {
        for q in [
            Q::PutConversation,
            Q::PutMessage,
            Q::PutBucket,
            Q::PutMessageId,
            Q::PutDedupe,
            Q::PutActivity,
            Q::DeleteActivity,
            Q::PutWatermarks,
        ] {
            assert!(q.template().contains("TIMESTAMP ?"), "{q:?}");
        }
    }

    #[test]
    fn buckets_are_dense_and_known_from_the_seq() {
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(1023), 0);
        assert_eq!(bucket_of(1024), 1);
        assert!(starts_bucket(1) && starts_bucket(1024) && starts_bucket(2048));
        assert!(!starts_bucket(2) && !starts_bucket(1025));
    }

    #[test]
    fn schema_files_split_into_idempotent_statements() {
        let repl = replication("SimpleStrategy", 1);
        let mut all = Vec::new();
        for (_, file) in SCHEMA {
            all.extend(schema_statements(file, "sb_test", &repl));
        }
        assert!(all[0].starts_with("CREATE KEYSPACE IF NOT EXISTS sb_test WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"), "{}", all[0]);
        for s in &all {
            assert!(s.contains("IF NOT EXISTS"), "{s}");
            assert!(!s.contains('{') || s.contains("replication"), "{s}");
            assert!(!s.contains("--"), "{s}");
        }
        // Every table a statement names is created by the schema.
        for q in Q::ALL {
            let cql = q.cql("sb_test");
            let table = cql
                .split_whitespace()
                .find(|w| w.starts_with("sb_test."))
                .unwrap();
            assert!(
                all.iter()
                    .any(|s| s.contains(&format!("CREATE TABLE IF NOT EXISTS {table} "))),
                "{q:?} uses {table}"
            );
        }
    }
}
