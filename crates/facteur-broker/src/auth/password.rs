//! Password files: `username:hash` lines, as mosquitto's `mosquitto_passwd` writes them.
//!
//! Two hash formats are read, both mosquitto's:
//! - `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512 (mosquitto 2.0), base64 salt and
//!   64-byte hash;
//! - `$6$SALT$HASH`: one SHA-512 of the password followed by the salt (mosquitto 1.x).
//!
//! New hashes are `$7$` with [`DEFAULT_ITERATIONS`] (a file written by `facteur passwd`
//! stays readable by mosquitto, which reads the iteration count from each line).
//! Checking takes the same path for an unknown user as for a known one (a dummy hash of
//! the same cost is computed) and compares in constant time.

use super::FileError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::path::Path;
use subtle::ConstantTimeEq;

/// PBKDF2 iterations for new hashes: OWASP's figure for PBKDF2-HMAC-SHA512 (2023).
/// mosquitto_passwd writes 101; any count from 1 to [`MAX_ITERATIONS`] is read.
pub const DEFAULT_ITERATIONS: u32 = 210_000;

/// Most PBKDF2 iterations a line may ask for (a bound on what one CONNECT costs).
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// Salt length of new hashes, in bytes (mosquitto's).
const SALT_LEN: usize = 12;

/// Longest salt read, in bytes.
const MAX_SALT_LEN: usize = 1024;

/// One user's password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    kind: Kind,
    salt: Vec<u8>,
    hash: [u8; 64],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `$6$`: SHA-512(password || salt).
    Sha512,
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 { iterations: u32 },
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the hash itself in logs.
        f.debug_struct("PasswordHash")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PasswordHash {
    /// A new `$7$` hash of `password` with [`DEFAULT_ITERATIONS`] and a random salt.
    ///
    /// # Errors
    /// When the system's random number generator fails.
    pub fn new(password: &[u8]) -> Result<Self, getrandom::Error> {
        Self::with_iterations(password, DEFAULT_ITERATIONS)
    }

    /// A new `$7$` hash of `password` with `iterations` (at least 1) and a random salt.
    ///
    /// # Errors
    /// When the system's random number generator fails.
    pub fn with_iterations(password: &[u8], iterations: u32) -> Result<Self, getrandom::Error> {
        let mut salt = vec![0u8; SALT_LEN];
        getrandom::fill(&mut salt)?;
        let kind = Kind::Pbkdf2Sha512 {
            iterations: iterations.clamp(1, MAX_ITERATIONS),
        };
        let hash = compute(kind, &salt, password);
        Ok(Self { kind, salt, hash })
    }

    /// True if `password` is the one hashed (compared in constant time).
    pub fn verify(&self, password: &[u8]) -> bool {
        compute(self.kind, &self.salt, password)
            .ct_eq(&self.hash)
            .into()
    }

    /// A hash of a random password with the same algorithm and cost: checking against it
    /// takes as long as against `self`, and never succeeds in practice.
    fn dummy(&self) -> Self {
        let mut password = [0u8; 32];
        // Without randomness, a fixed password nobody can know from outside still works:
        // the hash is only ever compared, never accepted for a user.
        let _ = getrandom::fill(&mut password);
        let hash = compute(self.kind, &self.salt, &password);
        Self {
            kind: self.kind,
            salt: self.salt.clone(),
            hash,
        }
    }
}

fn compute(kind: Kind, salt: &[u8], password: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    match kind {
        Kind::Sha512 => {
            let mut digest = Sha512::new();
            digest.update(password);
            digest.update(salt);
            out.copy_from_slice(&digest.finalize());
        }
        Kind::Pbkdf2Sha512 { iterations } => {
            pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
        }
    }
    out
}

impl std::fmt::Display for PasswordHash {
    /// The hash as a password file writes it (`$7$...` or `$6$...`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let salt = STANDARD.encode(&self.salt);
        let hash = STANDARD.encode(self.hash);
        match self.kind {
            Kind::Sha512 => write!(f, "$6${salt}${hash}"),
            Kind::Pbkdf2Sha512 { iterations } => write!(f, "$7${iterations}${salt}${hash}"),
        }
    }
}

impl std::str::FromStr for PasswordHash {
    type Err = String;

    /// Reads a `$7$` or `$6$` hash; the error says what is wrong.
    fn from_str(text: &str) -> Result<Self, String> {
        let decode = |what: &str, b64: &str| {
            STANDARD
                .decode(b64)
                .map_err(|e| format!("the {what} is not valid base64 ({e})"))
        };
        let fields: Vec<&str> = text.split('$').collect();
        let (kind, salt, hash) = match fields.as_slice() {
            ["", "7", iterations, salt, hash] => {
                let iterations: u32 = iterations
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_ITERATIONS).contains(n))
                    .ok_or_else(|| {
                        format!("the iteration count must be a number from 1 to {MAX_ITERATIONS}")
                    })?;
                (Kind::Pbkdf2Sha512 { iterations }, salt, hash)
            }
            ["", "6", salt, hash] => (Kind::Sha512, salt, hash),
            ["", kind, ..] if *kind == "6" || *kind == "7" => {
                return Err(format!("a ${kind}$ hash with the wrong number of fields"))
            }
            _ => {
                return Err(
                    "not a $7$ (PBKDF2-SHA512) or $6$ (SHA-512) hash; a file of \
                     plain passwords is converted by `facteur passwd -U`"
                        .into(),
                )
            }
        };
        let salt = decode("salt", salt)?;
        if salt.is_empty() || salt.len() > MAX_SALT_LEN {
            return Err(format!("the salt must be 1 to {MAX_SALT_LEN} bytes"));
        }
        let hash: [u8; 64] = decode("hash", hash)?
            .try_into()
            .map_err(|_| "the hash must be 64 bytes (SHA-512)".to_owned())?;
        Ok(Self { kind, salt, hash })
    }
}

/// True if `text` looks like a hash this module reads (a `$6$` or `$7$` prefix), used by
/// `facteur passwd -U` to leave hashed lines alone.
pub fn is_hashed(text: &str) -> bool {
    text.starts_with("$6$") || text.starts_with("$7$")
}

/// A password file, read: every user and their hash.
#[derive(Debug, Clone)]
pub struct PasswordFile {
    users: HashMap<String, PasswordHash>,
    /// Checked when the user is unknown, so that an unknown user and a wrong password take
    /// the same time: the cost of the file's first line.
    dummy: PasswordHash,
}

impl PasswordFile {
    /// Reads a password file. Empty lines and lines starting with `#` are skipped.
    ///
    /// # Errors
    /// The file cannot be read, or a line is not `username:hash` with a hash this module
    /// reads, or a username comes twice: the error names the file and the line.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = super::read_file(path)?;
        Self::parse(&text).map_err(|(line, why)| FileError::at(path, line, why))
    }

    /// Parses a password file's text; an error gives the line (from 1) and the problem.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut users = HashMap::new();
        let mut first = None;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err((number, "expected `username:hash`".into()));
            };
            if user.is_empty() {
                return Err((number, "empty username".into()));
            }
            let hash: PasswordHash = hash.parse().map_err(|why| (number, why))?;
            first.get_or_insert_with(|| hash.clone());
            if users.insert(user.to_owned(), hash).is_some() {
                return Err((number, format!("user {user:?} appears twice")));
            }
        }
        // A file without users still checks unknown users at the cost of a new hash.
        let dummy = match first {
            Some(hash) => hash.dummy(),
            None => PasswordHash::with_iterations(b"", DEFAULT_ITERATIONS)
                .map_err(|e| (0, format!("no random numbers: {e}")))?,
        };
        Ok(Self { users, dummy })
    }

    /// True if `username` is in the file and `password` is theirs. An unknown user costs
    /// the same as a wrong password (a hash of the same kind is computed and compared).
    pub fn verify(&self, username: &str, password: &[u8]) -> bool {
        let (hash, known) = match self.users.get(username) {
            Some(hash) => (hash, true),
            None => (&self.dummy, false),
        };
        // Both evaluated, in this order, whatever `known` is.
        let matches = hash.verify(password);
        matches & known
    }

    /// How many users the file has.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True if the file has no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line Debian's mosquitto_passwd 2.0.11 wrote for user "u" and password "secret"
    /// (`mosquitto_passwd -c -b f u secret`).
    const MOSQUITTO_7: &str = "u:$7$101$qWKDYRSs1IbPUR8b$KR1Vz5mUXLM5QIbR4sV/Huk/sGqiqkgNNlCQ/CwCQZp5x7spfhmNVZZC0PtXHkNm/HF50bQlOJOgL1rHA96rxw==";

    #[test]
    fn writes_and_reads_back_7() {
        let hash = PasswordHash::with_iterations(b"pw", 1000).unwrap();
        let text = hash.to_string();
        assert!(text.starts_with("$7$1000$"), "{text}");
        let read: PasswordHash = text.parse().unwrap();
        assert_eq!(read, hash);
        assert!(read.verify(b"pw"));
        assert!(!read.verify(b"pW"));
        assert!(!read.verify(b""));
    }

    #[test]
    fn reads_6_lines() {
        // SHA-512("secret" || salt), salt "0123456789ab", made here by hand.
        let salt = b"0123456789ab";
        let mut digest = Sha512::new();
        digest.update(b"secret");
        digest.update(salt);
        let line = format!(
            "bob:$6${}${}\n",
            STANDARD.encode(salt),
            STANDARD.encode(digest.finalize())
        );
        let file = PasswordFile::parse(&line).unwrap();
        assert!(file.verify("bob", b"secret"));
        assert!(!file.verify("bob", b"secreT"));
        assert!(!file.verify("alice", b"secret"));
    }

    #[test]
    fn unknown_user_and_wrong_password_are_refused_alike() {
        let line = format!(
            "# users\n\nann:{}\n",
            PasswordHash::with_iterations(b"pw", 10).unwrap()
        );
        let file = PasswordFile::parse(&line).unwrap();
        assert_eq!(file.len(), 1);
        assert!(file.verify("ann", b"pw"));
        assert!(!file.verify("ann", b"px"));
        assert!(!file.verify("bob", b"pw"));
        // The unknown user is checked against a hash of the same kind and cost.
        assert_eq!(file.dummy.kind, Kind::Pbkdf2Sha512 { iterations: 10 });
    }

    #[test]
    fn reads_a_line_written_by_mosquitto_passwd() {
        let file = PasswordFile::parse(MOSQUITTO_7).unwrap();
        assert!(file.verify("u", b"secret"));
        assert!(!file.verify("u", b"Secret"));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let good = PasswordHash::with_iterations(b"pw", 1).unwrap().to_string();
        for (text, line, why) in [
            ("ann\n".to_owned(), 1, "username:hash"),
            ("ann:plain\n".to_owned(), 1, "facteur passwd -U"),
            (format!("a:{good}\n:{good}"), 2, "empty username"),
            (format!("a:{good}\na:{good}"), 2, "twice"),
            ("a:$7$0$AAAA$AAAA".to_owned(), 1, "iteration"),
            ("a:$7$x$AAAA$AAAA".to_owned(), 1, "iteration"),
            ("a:$7$99999999999$AAAA$AAAA".to_owned(), 1, "iteration"),
            ("a:$6$!!$AAAA".to_owned(), 1, "base64"),
            ("a:$6$AAAA$AAAA".to_owned(), 1, "64 bytes"),
            ("a:$6$AAAA".to_owned(), 1, "number of fields"),
            ("a:$6$$AAAA".to_owned(), 1, "salt"),
        ] {
            let (at, message) = PasswordFile::parse(&text).unwrap_err();
            assert_eq!(at, line, "{text:?}: {message}");
            assert!(message.contains(why), "{text:?}: {message}");
        }
    }
}
