//! The broker side as an OwnTracks deployment wants it: a password file with each user
//! and the recorder's own user, and an ACL by which a user reads and writes only
//! `owntracks/USER/...` while the recorder reads everything under `owntracks/`.

use std::io;
use std::path::{Path, PathBuf};

use facteur_broker::auth::password::PasswordHash;
use facteur_broker::{Broker, BrokerHandle, Config, StartError};

/// The recorder's username.
pub const RECORDER_USER: &str = "recorder";

/// The ACL: the recorder reads every device; each user reads and writes their own
/// devices' topics (`pattern readwrite owntracks/%u/#`) and nothing else.
pub const ACL: &str = "\
# The recorder reads every device's topics (and writes none of theirs).
user recorder
topic read owntracks/#

# Everyone else: only their own devices (%u is the MQTT username).
pattern readwrite owntracks/%u/#
";

/// Writes `passwd` (one `user:$7$...` line per user, PBKDF2 with `iterations`) and `acl`
/// in `dir`; their paths.
///
/// # Errors
/// A file cannot be written, or the system has no random numbers for the salts.
pub fn write_files(
    dir: &Path,
    users: &[(String, String)],
    iterations: u32,
) -> io::Result<(PathBuf, PathBuf)> {
    let mut passwd = String::new();
    for (user, password) in users {
        let hash = PasswordHash::with_iterations(password.as_bytes(), iterations)
            .map_err(|e| io::Error::other(format!("no random numbers for a salt: {e}")))?;
        passwd.push_str(&format!("{user}:{hash}\n"));
    }
    let passwd_path = dir.join("passwd");
    let acl_path = dir.join("acl");
    std::fs::write(&passwd_path, passwd)?;
    std::fs::write(&acl_path, ACL)?;
    Ok((passwd_path, acl_path))
}

/// Starts a broker on `bind:port` (0: any free port) with these files and no anonymous
/// client.
///
/// # Errors
/// A file is unusable or the address cannot be bound.
pub async fn start_broker(
    bind: &str,
    port: u16,
    passwd: PathBuf,
    acl: PathBuf,
) -> Result<BrokerHandle, StartError> {
    let mut config = Config::default();
    config.listeners[0].bind_address = bind.to_owned();
    config.listeners[0].port = port;
    config.password_file = Some(passwd);
    config.acl_file = Some(acl);
    config.allow_anonymous = Some(false);
    Broker::start(config).await
}
