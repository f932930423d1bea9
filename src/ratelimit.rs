//! Token buckets per key (a client address, a username): `capacity` requests at once,
//! refilled at `capacity` per `window`. Kept in memory: counters do not survive a
//! restart, and under plain CGI each request is a new process, so there they limit
//! nothing (the one-time codes' try counters are on disk and hold everywhere).
//! Pure apart from the mutex: the time is an argument.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub capacity: f64,
    pub window_secs: f64,
}

impl Rate {
    /// `"N/SECONDS"`, e.g. `"10/60"`; `"0"` or `"off"` disables.
    pub fn parse(s: &str) -> Option<Option<Rate>> {
        let s = s.trim();
        if s == "0" || s.eq_ignore_ascii_case("off") {
            return Some(None);
        }
        let (n, w) = s.split_once('/')?;
        let (n, w): (u32, u32) = (n.trim().parse().ok()?, w.trim().parse().ok()?);
        (n > 0 && w > 0).then_some(Some(Rate {
            capacity: f64::from(n),
            window_secs: f64::from(w),
        }))
    }
}

/// The key a client is counted under: an IPv4 address as it is, an IPv6 address cut to
/// its first `v6_prefix` bits (a host is usually given a whole /64, so counting single
/// addresses would count nothing). Anything else (no address, a unix-socket peer) is
/// kept, escaped.
pub fn client_key(addr: &str, v6_prefix: u8) -> String {
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => a.to_string(),
        Ok(std::net::IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let bits = u128::from(a);
                let prefix = u32::from(v6_prefix.min(128));
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix)
                };
                format!("{}/{prefix}", std::net::Ipv6Addr::from(bits & mask))
            }
        },
        Err(_) => addr.escape_default().to_string(),
    }
}

struct Bucket {
    tokens: f64,
    at: f64,
}

pub struct Limiter {
    rate: Option<Rate>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Most keys kept before idle full buckets are dropped.
const MAX_KEYS: usize = 100_000;

impl Limiter {
    pub fn new(rate: Option<Rate>) -> Limiter {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` at time `now` (seconds). `Err(seconds)` says how long
    /// until one is available.
    pub fn take(&self, key: &str, now: f64) -> Result<(), u64> {
        let Some(rate) = self.rate else { return Ok(()) };
        let per_sec = rate.capacity / rate.window_secs;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, b| b.tokens + (now - b.at) * per_sec < rate.capacity);
        }
        let b = map.entry(key.to_string()).or_insert(Bucket {
            tokens: rate.capacity,
            at: now,
        });
        b.tokens = (b.tokens + (now - b.at).max(0.0) * per_sec).min(rate.capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / per_sec).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_the_n_plus_first_and_refills() {
        let l = Limiter::new(Rate::parse("3/60").unwrap());
        for _ in 0..3 {
            assert_eq!(l.take("a", 0.0), Ok(()));
        }
        assert_eq!(l.take("a", 0.0), Err(20));
        assert_eq!(l.take("b", 0.0), Ok(()), "other keys are separate");
        assert_eq!(l.take("a", 20.0), Ok(()), "one token back after window/capacity");
        assert!(l.take("a", 20.0).is_err());
    }

    #[test]
    fn ipv6_clients_count_by_network() {
        assert_eq!(client_key("192.0.2.7", 64), "192.0.2.7");
        assert_eq!(client_key("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(
            client_key("2001:db8:1:2:bbbb::9", 64),
            client_key("2001:db8:1:2:aaaa::1", 64)
        );
        assert_ne!(
            client_key("2001:db8:1:3::1", 64),
            client_key("2001:db8:1:2::1", 64)
        );
        assert_eq!(client_key("2001:db8:1:2::1", 48), "2001:db8:1::/48");
        assert_eq!(client_key("2001:db8::1", 128), "2001:db8::1/128");
        assert_eq!(client_key("::ffff:192.0.2.7", 64), "192.0.2.7");
        assert_eq!(client_key("x\ny", 64), "x\\ny");
    }

    #[test]
    fn parse_rates() {
        assert_eq!(Rate::parse("off"), Some(None));
        assert_eq!(Rate::parse("10/60").unwrap().unwrap().capacity, 10.0);
        assert_eq!(Rate::parse("10"), None);
        assert_eq!(Rate::parse("0/5"), None);
        assert!(Limiter::new(None).take("x", 0.0).is_ok());
    }
}
