//! Rate limits: token buckets per client address and route, a global budget for outgoing
//! mail, and a minimum interval between mails of one kind to one address.
//!
//! The per-address interval is kept in memory for every address asked about, known or not,
//! so that re-sends are limited identically for unknown addresses (no enumeration).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateLimits;
use crate::error::{Error, ErrorKind, Result};

type Keyed<K> = RateLimiter<K, HashMapStateStore<K>, DefaultClock>;
type Direct = RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>;

/// The routes limited per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    Token,
    Verify,
    Signup,
    Otp,
    Magiclink,
    Recover,
    Resend,
    UserUpdate,
    Anonymous,
    Mfa,
}

/// Keys older than their window are dropped once this many are held.
const PRUNE_AT: usize = 10_000;

fn quota(per: u32, window: Duration) -> Option<Quota> {
    let n = NonZeroU32::new(per)?;
    Quota::with_period(window / per).map(|q| q.allow_burst(n))
}

pub(crate) struct Limiters {
    per_ip: Vec<(Route, Option<Keyed<IpAddr>>)>,
    email_sent: Option<Direct>,
    sms_sent: Option<Direct>,
    per_address: Option<Keyed<(u8, String)>>,
    guesses: Keyed<String>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters").finish_non_exhaustive()
    }
}

impl Limiters {
    pub(crate) fn new(limits: &RateLimits, max_frequency: Duration) -> Self {
        const FIVE_MIN: Duration = Duration::from_secs(300);
        let keyed = |per: u32, window: Duration| quota(per, window).map(RateLimiter::hashmap);
        let per_ip = vec![
            (Route::Token, keyed(limits.token_per_5min, FIVE_MIN)),
            (Route::Verify, keyed(limits.verify_per_5min, FIVE_MIN)),
            (Route::Signup, keyed(limits.otp_per_5min, FIVE_MIN)),
            (Route::Otp, keyed(limits.otp_per_5min, FIVE_MIN)),
            (Route::Magiclink, keyed(limits.otp_per_5min, FIVE_MIN)),
            (Route::Recover, keyed(limits.otp_per_5min, FIVE_MIN)),
            (Route::Resend, keyed(limits.otp_per_5min, FIVE_MIN)),
            (Route::UserUpdate, keyed(limits.otp_per_5min, FIVE_MIN)),
            (Route::Anonymous, keyed(limits.anonymous_per_hour, Duration::from_secs(3600))),
            (Route::Mfa, keyed(limits.mfa_per_minute, Duration::from_secs(60))),
        ];
        let email_sent = quota(limits.email_sent_per_hour, Duration::from_secs(3600)).map(RateLimiter::direct);
        let sms_sent = quota(limits.sms_sent_per_hour, Duration::from_secs(3600)).map(RateLimiter::direct);
        let per_address =
            (!max_frequency.is_zero()).then(|| Quota::with_period(max_frequency).map(RateLimiter::hashmap)).flatten();
        // Short codes (6-digit OTPs, nonces, TOTP) get a few tries per target whatever the
        // client address: 10 at once, then one every 30 seconds.
        let guesses = RateLimiter::hashmap(
            Quota::with_period(Duration::from_secs(30))
                .expect("non-zero")
                .allow_burst(NonZeroU32::new(10).expect("non-zero")),
        );
        Self { per_ip, email_sent, sms_sent, per_address, guesses, clock: DefaultClock::default() }
    }

    /// Counts a guess at a short code belonging to `target` (an address or a factor id).
    pub(crate) fn guess(&self, target: &str) -> Result<()> {
        prune(&self.guesses);
        self.guesses.check_key(&target.to_ascii_lowercase()).map_err(|_| Error::rate_limited())
    }

    /// Counts a request on `route` from `ip` (no address: not limited, as in GoTrue).
    pub(crate) fn check(&self, route: Route, ip: Option<IpAddr>) -> Result<()> {
        let Some(ip) = ip else { return Ok(()) };
        let Some((_, limiter)) = self.per_ip.iter().find(|(r, _)| *r == route) else { return Ok(()) };
        match limiter {
            None => Err(Error::rate_limited()),
            Some(l) => {
                prune(l);
                l.check_key(&ip).map_err(|_| Error::rate_limited())
            }
        }
    }

    /// Counts a mail of `kind` to `address`: refused when one went out less than the
    /// configured interval ago, or when the global hourly budget is spent.
    pub(crate) fn mail(&self, kind: crate::mail::MailKind, address: &str) -> Result<()> {
        self.interval(kind as u8, address, ErrorKind::OverEmailSendRateLimit)?;
        spend(&self.email_sent, ErrorKind::OverEmailSendRateLimit, "email rate limit exceeded")
    }

    /// Counts a text of `kind` to `phone`, as [`Limiters::mail`] does mail.
    pub(crate) fn sms(&self, kind: crate::sms::SmsKind, phone: &str) -> Result<()> {
        self.interval(0x80 | kind as u8, phone, ErrorKind::OverSmsSendRateLimit)?;
        spend(&self.sms_sent, ErrorKind::OverSmsSendRateLimit, "SMS rate limit exceeded")
    }

    fn interval(&self, kind: u8, address: &str, code: ErrorKind) -> Result<()> {
        if let Some(l) = &self.per_address {
            prune(l);
            if let Err(not_until) = l.check_key(&(kind, address.to_ascii_lowercase())) {
                let wait = not_until.wait_time_from(self.clock.now());
                return Err(Error::too_soon(code, wait.as_secs().max(1)));
            }
        }
        Ok(())
    }
}

/// Spends one from a global budget (none: every send is refused).
fn spend(budget: &Option<Direct>, code: ErrorKind, message: &'static str) -> Result<()> {
    match budget {
        Some(l) if l.check().is_ok() => Ok(()),
        _ => Err(Error::new(code, message)),
    }
}

fn prune<K: Hash + Eq + Clone>(l: &Keyed<K>) {
    if l.len() > PRUNE_AT {
        l.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::MailKind;

    #[test]
    fn per_ip_buckets_refuse_past_the_burst_and_keep_addresses_apart() {
        let limits = RateLimits::default().with_otp_per_5min(3);
        let l = Limiters::new(&limits, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..3 {
            l.check(Route::Recover, Some(a)).expect("within the burst");
        }
        let err = l.check(Route::Recover, Some(a)).expect_err("over");
        assert_eq!((err.status().as_u16(), err.code()), (429, "over_request_rate_limit"));
        l.check(Route::Recover, Some(b)).expect("another address");
        l.check(Route::Otp, Some(a)).expect("another route");
        l.check(Route::Recover, None).expect("no address: not limited");
    }

    #[test]
    fn guesses_at_one_code_are_limited_whatever_the_client() {
        let l = Limiters::new(&RateLimits::default(), Duration::from_secs(60));
        for _ in 0..10 {
            l.guess("a@b.c").expect("within the burst");
        }
        assert_eq!(l.guess("A@b.c").expect_err("over").code(), "over_request_rate_limit");
        l.guess("x@y.z").expect("another target");
    }

    #[test]
    fn mails_to_one_address_are_spaced_and_zero_means_never() {
        let l = Limiters::new(&RateLimits::default(), Duration::from_secs(60));
        l.mail(MailKind::Recovery, "a@b.c").expect("first");
        let err = l.mail(MailKind::Recovery, "A@b.c").expect_err("too soon");
        assert_eq!(err.code(), "over_email_send_rate_limit");
        assert!(err.to_string().contains("after"), "{err}");
        l.mail(MailKind::MagicLink, "a@b.c").expect("another kind");
        let none = Limiters::new(&RateLimits::default().with_email_sent_per_hour(0), Duration::ZERO);
        assert_eq!(none.mail(MailKind::Recovery, "x@y.z").expect_err("zero").status().as_u16(), 429);
    }
}
