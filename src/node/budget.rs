//! Carrier budgets as the node acts on them. A budget runs *low* in its last
//! [`RESERVE_PERCENT`]: the outbox then holds control frames back, so posts and their repair
//! go first. It is *spent* when nothing is left or frames wait for it: everything waits
//! durably for the window, the owners are told once (over another carrier, since this one
//! has nothing left to say it with), and status and dashboard show it.

use std::collections::HashSet;

use lakitu_transport::Scheme;

use crate::api::Budget;

/// The share of a budget kept for posts and their repair.
pub(crate) const RESERVE_PERCENT: u64 = 15;

/// `b` with `low` and `spent` filled in.
pub(crate) fn judge(mut b: Budget) -> Budget {
    let low = |used: u64, limit: u64| {
        limit > 0 && Budget::left(used, limit) <= (limit * RESERVE_PERCENT / 100).max(1)
    };
    let spent = |used: u64, limit: u64| limit > 0 && used >= limit;
    let bytes = b.bytes_used.zip(b.bytes_limit);
    b.spent = b.held > 0 || spent(b.used, b.limit) || bytes.is_some_and(|(u, l)| spent(u, l));
    b.low = b.spent || low(b.used, b.limit) || bytes.is_some_and(|(u, l)| low(u, l));
    b
}

/// Which carriers' exhaustion the owners were told of.
#[derive(Debug, Default)]
pub(crate) struct Told(HashSet<Scheme>);

impl Told {
    /// True once per exhaustion: when `scheme`'s budget `b` just became spent. An exhaustion
    /// ends only when the budget is no longer low, so a budget that frees one mail at a time
    /// as its window slides (and spends it at once on what waited) is told of once.
    pub(crate) fn newly_spent(&mut self, scheme: Scheme, b: &Budget) -> bool {
        if b.spent {
            self.0.insert(scheme)
        } else {
            if !b.low {
                self.0.remove(&scheme);
            }
            false
        }
    }
}

/// What the owners are told when `scheme`'s budget `b` is spent.
pub(crate) fn notice(scheme: Scheme, b: &Budget) -> String {
    let what = match scheme {
        Scheme::Mail => "mails",
        _ => "stanzas",
    };
    format!(
        "Lakitu: the {} sending budget is spent ({} of {} {what} in its window). Frames wait \
         in the outbox and go out as the window allows, posts first; nothing is lost.",
        scheme.as_str(),
        b.used,
        b.limit
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(used: u64, limit: u64, held: u64) -> Budget {
        judge(Budget {
            used,
            limit,
            held,
            ..Budget::default()
        })
    }

    #[test]
    fn a_budget_runs_low_in_its_last_share_and_is_spent_at_the_limit_or_when_frames_wait() {
        assert!(!mail(300, 400, 0).low);
        assert!(mail(340, 400, 0).low);
        assert!(!mail(340, 400, 0).spent);
        assert!(mail(400, 400, 0).spent);
        assert!(
            mail(10, 400, 3).spent,
            "frames held: spent whatever the count says"
        );
        assert!(!mail(1_000_000, 0, 0).low, "no limit, never low");
        assert!(
            mail(1, 2, 0).low,
            "a tiny budget keeps at least one for posts"
        );
    }

    #[test]
    fn the_byte_budget_counts_too() {
        let b = judge(Budget {
            used: 1,
            limit: 100,
            bytes_used: Some(95),
            bytes_limit: Some(100),
            ..Budget::default()
        });
        assert!(b.low && !b.spent);
    }

    #[test]
    fn the_owners_are_told_once_per_exhaustion() {
        let mut told = Told::default();
        let (fine, low, spent) = (mail(0, 10, 0), mail(9, 10, 0), mail(10, 10, 0));
        assert!(!told.newly_spent(Scheme::Mail, &fine));
        assert!(told.newly_spent(Scheme::Mail, &spent));
        assert!(!told.newly_spent(Scheme::Mail, &spent));
        assert!(
            told.newly_spent(Scheme::Xmpp, &spent),
            "each carrier on its own"
        );
        assert!(!told.newly_spent(Scheme::Mail, &low));
        assert!(
            !told.newly_spent(Scheme::Mail, &spent),
            "one mail freed and spent at once: the same exhaustion"
        );
        assert!(!told.newly_spent(Scheme::Mail, &fine));
        assert!(
            told.newly_spent(Scheme::Mail, &spent),
            "spent again the next day"
        );
    }
}
