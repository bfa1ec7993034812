/// How many times a request may be claimed for sending (`CANTINA__DISPATCH__MAX_ATTEMPTS`): the one attempt rule.
///
/// A request that has had `intentos` attempts may have another while `intentos < max`. The dispatcher asks
/// [`AttemptLimit::allows_another`] after a failed send (retry, or final `Error`), the claim binds
/// [`AttemptLimit::sql`] to `intentos < $n` (claimable), and the clean-up of abandoned claims binds it to
/// `intentos >= $n` (never claimable again): the same rule, read three ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttemptLimit(i32);

impl AttemptLimit {
    pub const fn new(max: i32) -> Self {
        AttemptLimit(max)
    }

    /// Whether a request whose `intentos` attempts all failed may be tried again (and claimed again).
    pub const fn allows_another(self, intentos: i32) -> bool {
        intentos < self.0
    }

    /// The value bound to the SQL's `intentos < $n` (claim) and `intentos >= $n` (closing abandoned claims).
    pub const fn sql(&self) -> &i32 {
        &self.0
    }

    pub const fn get(self) -> i32 {
        self.0
    }
}

impl From<i32> for AttemptLimit {
    fn from(max: i32) -> Self {
        AttemptLimit(max)
    }
}

#[cfg(test)]
mod tests {
    use super::AttemptLimit;

    #[test]
    fn another_attempt_while_below_the_limit() {
        let limit = AttemptLimit::new(3);
        assert!(limit.allows_another(0));
        assert!(limit.allows_another(1));
        assert!(limit.allows_another(2));
        assert!(!limit.allows_another(3));
        assert!(!limit.allows_another(4));
        assert_eq!(*limit.sql(), 3);
        assert_eq!(limit.get(), 3);
        assert_eq!(AttemptLimit::from(8), AttemptLimit::new(8));
    }
}
