//! The write pipeline of one conversation: writes handed to the store in order, their effects
//! released strictly in that order once each is durable, whatever order the store answers in.
//!
//! This is what lets a conversation go faster than one fsync per message while keeping `seq`
//! order: the actor submits write N+1 without waiting for write N, and the ack of N+1 still
//! leaves after the ack of N. Generic over the effect so it is tested without an actor.

use std::collections::VecDeque;

use crate::storage::StoreResult;

/// A write's place in the pipeline, handed to the store's callback and given back on completion.
pub type Ticket = u64;

struct Pending<E> {
    ticket: Ticket,
    result: Option<StoreResult<()>>,
    effect: E,
}

pub struct Pipeline<E> {
    pending: VecDeque<Pending<E>>,
    next_ticket: Ticket,
}

impl<E> Default for Pipeline<E> {
    fn default() -> Self {
        Pipeline {
            pending: VecDeque::new(),
            next_ticket: 0,
        }
    }
}

impl<E> Pipeline<E> {
    /// The ticket the next [`Self::push`] will get: the store's callback must carry it.
    pub fn next_ticket(&self) -> Ticket {
        self.next_ticket
    }

    /// Uses up the next ticket without queueing anything (its write was refused).
    pub fn skip_ticket(&mut self) {
        self.next_ticket += 1;
    }

    /// Queues an effect behind every earlier one. `settled` is `Some` for an effect with no write
    /// of its own (answered as soon as everything before it is released).
    pub fn push(&mut self, effect: E, settled: Option<StoreResult<()>>) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.pending.push_back(Pending {
            ticket,
            result: settled,
            effect,
        });
        ticket
    }

    /// Records the store's answer for `ticket`. Unknown tickets (already released, or from before
    /// a failure emptied the pipeline) are ignored.
    pub fn complete(&mut self, ticket: Ticket, result: StoreResult<()>) {
        let Some(front) = self.pending.front().map(|p| p.ticket) else {
            return;
        };
        if let Some(p) = ticket
            .checked_sub(front)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.pending.get_mut(i))
        {
            p.result.get_or_insert(result);
        }
    }

    /// The oldest effect, if its write is answered: release it (or fail it) now. Effects behind
    /// one still in flight wait, so effects leave in submission order.
    pub fn pop_ready(&mut self) -> Option<(E, StoreResult<()>)> {
        self.pending.front()?.result.as_ref()?;
        let p = self.pending.pop_front()?;
        p.result.map(|r| (p.effect, r))
    }

    /// Every effect still queued, oldest first, for failing them all at once.
    pub fn drain(&mut self) -> impl Iterator<Item = E> + '_ {
        self.pending.drain(..).map(|p| p.effect)
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The effects still waiting for their writes, oldest first.
    pub fn waiting(&self) -> impl Iterator<Item = &E> {
        self.pending.iter().map(|p| &p.effect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreError;

    fn ready(p: &mut Pipeline<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| p.pop_ready().map(|(e, _)| e)).collect()
    }

    #[test]
    fn effects_leave_in_submission_order_whatever_order_writes_finish_in() {
        let mut p = Pipeline::default();
        let a = p.push("a", None);
        let b = p.push("b", None);
        let c = p.push("c", None);
        p.complete(c, Ok(()));
        p.complete(b, Ok(()));
        assert!(ready(&mut p).is_empty(), "a is still in flight");
        p.complete(a, Ok(()));
        assert_eq!(ready(&mut p), vec!["a", "b", "c"]);
        assert!(p.is_empty());
    }

    #[test]
    fn an_effect_without_a_write_waits_for_the_writes_before_it() {
        let mut p = Pipeline::default();
        let a = p.push("write", None);
        p.push("duplicate", Some(Ok(())));
        assert!(ready(&mut p).is_empty());
        p.complete(a, Ok(()));
        assert_eq!(ready(&mut p), vec!["write", "duplicate"]);
    }

    #[test]
    fn a_failed_write_is_reported_and_stale_tickets_are_ignored() {
        let mut p = Pipeline::default();
        let a = p.push("a", None);
        p.push("b", None);
        p.complete(a, Err(StoreError::Io("disk".into())));
        let (e, r) = p.pop_ready().unwrap();
        assert_eq!(e, "a");
        assert!(r.is_err());
        assert_eq!(p.drain().collect::<Vec<_>>(), vec!["b"]);
        p.complete(a, Ok(()));
        p.complete(99, Ok(()));
        assert!(p.pop_ready().is_none());
    }

    #[test]
    fn a_second_answer_for_a_ticket_does_not_overwrite_the_first() {
        let mut p = Pipeline::default();
        let a = p.push("a", None);
        p.complete(a, Err(StoreError::Closed));
        p.complete(a, Ok(()));
        assert!(p.pop_ready().unwrap().1.is_err());
    }
}
