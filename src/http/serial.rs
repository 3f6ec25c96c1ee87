//! One request at a time per user, for the few routes that read a user's small list and then
//! write it (push subscriptions, templates): the limit and the order they check must hold when two
//! requests of the same user race. Sharded by user; never on the message path.

use std::sync::OnceLock;

use tokio::sync::Mutex;

const SHARDS: usize = 64;

/// The lock of `user`'s shard.
pub fn per_user(user: &str) -> &'static Mutex<()> {
    static LOCKS: OnceLock<Vec<Mutex<()>>> = OnceLock::new();
    let locks = LOCKS.get_or_init(|| (0..SHARDS).map(|_| Mutex::new(())).collect());
    let shard = user
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % SHARDS;
    &locks[shard]
}
