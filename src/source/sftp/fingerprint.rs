//! The pinned SSH host key fingerprint, in the form `ssh-keygen -lf` prints.

use std::fmt;
use std::str::FromStr;

use russh::keys::{HashAlg, PublicKey, ssh_key::Fingerprint};

/// A SHA-256 SSH host key fingerprint, `SHA256:<base64>` as `ssh-keygen -lf` prints it.
///
/// The state publishes its SFTP server's fingerprint in this form, and operators paste it
/// into Vault; parsing it once here means a typo (a missing character, an MD5
/// `aa:bb:…` fingerprint, a whole public key) is reported when the credentials are
/// read, naming the problem, instead of surfacing later as a mismatch that looks like
/// an attack.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HostKeyFingerprint(Fingerprint);

impl HostKeyFingerprint {
    /// The fingerprint of a server's public key.
    pub fn of(key: &PublicKey) -> Self {
        Self(key.fingerprint(HashAlg::Sha256))
    }

    /// Parses a list of fingerprints separated by commas and/or whitespace, as stored
    /// in one secret value while a host key rotation is rolled out (old and new both
    /// accepted). An empty list is an error: without a pinned key nothing can be trusted.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, FingerprintError> {
        let fingerprints = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Self>, _>>()?;
        if fingerprints.is_empty() {
            return Err(FingerprintError::Empty);
        }
        Ok(fingerprints)
    }
}

/// Why a pinned fingerprint could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// No fingerprint at all.
    #[error(
        "no host key fingerprint given (expected `SHA256:<base64>` as `ssh-keygen -lf` prints)"
    )]
    Empty,
    /// Not of the form `SHA256:<43 base64 characters>`.
    #[error(
        "`{0}` is not a SHA-256 host key fingerprint (expected `SHA256:<base64>` as `ssh-keygen -lf` prints)"
    )]
    Malformed(String),
}

impl FromStr for HostKeyFingerprint {
    type Err = FingerprintError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let malformed = || FingerprintError::Malformed(text.to_owned());
        if text.is_empty() {
            return Err(FingerprintError::Empty);
        }
        // `ssh-keygen` prints no padding; accept it when pasted from elsewhere.
        let unpadded = text.trim_end_matches('=');
        let fingerprint: Fingerprint = unpadded.parse().map_err(|_| malformed())?;
        if fingerprint.algorithm() != HashAlg::Sha256 {
            return Err(malformed());
        }
        Ok(Self(fingerprint))
    }
}

impl fmt::Display for HostKeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for HostKeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostKeyFingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "SHA256:alqSNwBJ+rjsYgipC3a0hbUlqGtBbQM67vCQiWMH90w";
    const TWO: &str = "SHA256:KFsSVvlNy5RXpAe4PBQopHqJ0OII3jKu6k9279lJ3pM";

    #[test]
    fn a_fingerprint_reads_back_as_ssh_keygen_prints_it() {
        let fingerprint: HostKeyFingerprint = ONE.parse().unwrap();
        assert_eq!(fingerprint.to_string(), ONE);
    }

    #[test]
    fn padding_and_surrounding_space_are_accepted() {
        let fingerprint: HostKeyFingerprint = format!("  {ONE}=\n").parse().unwrap();
        assert_eq!(fingerprint.to_string(), ONE);
    }

    #[test]
    fn a_list_may_be_separated_by_commas_or_whitespace() {
        let list = HostKeyFingerprint::parse_list(&format!("{ONE},\n {TWO} ")).unwrap();
        let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(shown, [ONE, TWO]);
    }

    #[test]
    fn an_empty_list_is_refused() {
        assert_eq!(
            HostKeyFingerprint::parse_list(" , "),
            Err(FingerprintError::Empty)
        );
    }

    #[test]
    fn md5_truncated_and_unprefixed_fingerprints_are_refused() {
        for bad in [
            "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48",
            "SHA256:alqSNwBJ+rjsYgipC3a0hbUlqGtBbQM67vCQiWMH90",
            "alqSNwBJ+rjsYgipC3a0hbUlqGtBbQM67vCQiWMH90w",
            "SHA512:alqSNwBJ+rjsYgipC3a0hbUlqGtBbQM67vCQiWMH90w",
        ] {
            let error = bad.parse::<HostKeyFingerprint>().unwrap_err();
            assert!(
                matches!(error, FingerprintError::Malformed(_)),
                "{bad}: {error:?}"
            );
        }
    }
}
