//! The request fields of `AcquireCertLock` and `ReleaseCertLock` as domain types:
//! parsed once at the API edge, valid from then on.

use std::fmt;
use std::time::Duration;

/// The longest holder description accepted, in characters.
pub const MAX_HOLDER_CHARS: usize = 200;

/// The shortest lease granted: instants are stored to the millisecond, and a lease
/// must end after it begins.
const MIN_TTL: Duration = Duration::from_millis(1);

/// The longest lease id accepted on release.
const MAX_ID_CHARS: usize = 64;

/// What the edit service says it is doing with a lease (e.g. `cert-edit pod 3:
/// employee E00412`), for operators. Trimmed, 1 to 200 characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder(String);

impl LeaseHolder {
    /// Parses a holder, or says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err("must not be blank".into());
        }
        if chars > MAX_HOLDER_CHARS {
            return Err(format!(
                "must be at most {MAX_HOLDER_CHARS} characters, got {chars}"
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A lease's id: 32 random hex digits when granted; on release, any non-blank text of
/// at most 64 characters (an unknown id is simply not a lease).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseId(String);

impl LeaseId {
    /// A new random id. Ids need not be secret (only the identity that took a lease
    /// may release it), only unique.
    pub fn random() -> Self {
        Self(format!("{:032x}", fastrand::u128(..)))
    }

    /// Parses an id sent back by a client.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be blank".into());
        }
        if trimmed.chars().count() > MAX_ID_CHARS {
            return Err(format!("must be at most {MAX_ID_CHARS} characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a lease lasts: what was asked, capped by the service's maximum; the
/// maximum when nothing was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTtl(Duration);

impl LeaseTtl {
    /// The TTL for a request of `requested` (`None`: not given) under `max`. A zero,
    /// negative or sub-millisecond request is an error, not "the default": it is surely
    /// a client bug.
    pub fn parse(requested: Option<(i64, i32)>, max: Duration) -> Result<Self, String> {
        let Some((seconds, nanos)) = requested else {
            return Ok(Self(max));
        };
        if seconds < 0 || nanos < 0 || (seconds == 0 && nanos == 0) {
            return Err("must be positive".into());
        }
        let Ok(nanos) = u32::try_from(nanos) else {
            return Err("must be positive".into());
        };
        if nanos >= 1_000_000_000 {
            return Err("nanos must be less than one second".into());
        }
        let asked = Duration::new(u64::try_from(seconds).unwrap_or(u64::MAX), nanos);
        if asked < MIN_TTL {
            return Err("must be at least 1ms".into());
        }
        Ok(Self(asked.min(max)))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(30);

    #[test]
    fn holders_are_trimmed_and_bounded() {
        assert_eq!(
            LeaseHolder::parse("  cert-edit: E00412 ").unwrap().as_str(),
            "cert-edit: E00412"
        );
        assert!(LeaseHolder::parse("   ").is_err());
        assert!(LeaseHolder::parse(&"x".repeat(201)).is_err());
        assert!(LeaseHolder::parse(&"é".repeat(200)).is_ok());
        assert!(LeaseHolder::parse("a\u{0}b").is_err());
    }

    #[test]
    fn a_missing_ttl_is_the_cap_and_a_longer_one_is_capped() {
        assert_eq!(LeaseTtl::parse(None, MAX).unwrap().get(), MAX);
        assert_eq!(LeaseTtl::parse(Some((3600, 0)), MAX).unwrap().get(), MAX);
        assert_eq!(
            LeaseTtl::parse(Some((2, 500_000_000)), MAX).unwrap().get(),
            Duration::from_millis(2500)
        );
    }

    #[test]
    fn zero_or_negative_ttls_are_refused() {
        assert!(LeaseTtl::parse(Some((0, 0)), MAX).is_err());
        assert!(LeaseTtl::parse(Some((-1, 0)), MAX).is_err());
        assert!(LeaseTtl::parse(Some((1, -5)), MAX).is_err());
        assert!(LeaseTtl::parse(Some((1, 1_000_000_000)), MAX).is_err());
        assert!(LeaseTtl::parse(Some((0, 999_999)), MAX).is_err());
        assert!(LeaseTtl::parse(Some((0, 1_000_000)), MAX).is_ok());
    }

    #[test]
    fn random_ids_are_32_hex_digits_and_differ() {
        let a = LeaseId::random();
        let b = LeaseId::random();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn released_ids_must_not_be_blank() {
        assert!(LeaseId::parse(" ").is_err());
        assert!(LeaseId::parse(&"a".repeat(65)).is_err());
        assert_eq!(LeaseId::parse(" abc ").unwrap().as_str(), "abc");
    }
}
