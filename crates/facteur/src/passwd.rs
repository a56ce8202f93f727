//! `facteur passwd`: manages a password file as mosquitto's `mosquitto_passwd` does, with
//! its flags: `-c` creates (or overwrites) the file, `-b` takes the password from the
//! command line, `-D` deletes a user, `-U` hashes a file of plain `user:password` lines.
//! Without `-b` the password is asked for twice on the terminal, without echo.
//!
//! New hashes are PBKDF2-SHA512 `$7$` lines (facteur-broker's `PasswordHash`), which
//! mosquitto reads too. The file is written whole to a temporary file beside it (mode
//! 0600) and renamed over it, and only when every line of the result is one the broker
//! reads: `facteur passwd` never leaves a file that would stop the broker.

use facteur_broker::auth::password::{is_hashed, PasswordFile, PasswordHash, DEFAULT_ITERATIONS};
use std::path::{Path, PathBuf};

/// The arguments of `facteur passwd`.
#[derive(Debug, clap::Args)]
#[command(override_usage = "facteur passwd [-c | -D] FILE USERNAME\n       \
                      facteur passwd [-c] -b FILE USERNAME PASSWORD\n       \
                      facteur passwd -U FILE")]
pub(crate) struct Args {
    /// Create a new password file (an existing one is overwritten).
    #[arg(short = 'c', conflicts_with_all = ["delete", "upgrade"])]
    create: bool,
    /// Batch mode: the password is the last argument.
    #[arg(short = 'b', conflicts_with_all = ["delete", "upgrade"])]
    batch: bool,
    /// Delete USERNAME from the file.
    #[arg(short = 'D')]
    delete: bool,
    /// Hash every plain `user:password` line of the file (hashed lines are left as they are).
    #[arg(short = 'U', conflicts_with = "delete")]
    upgrade: bool,
    /// PBKDF2 iterations of new hashes.
    #[arg(short = 'I', long, default_value_t = DEFAULT_ITERATIONS,
          value_parser = clap::value_parser!(u32).range(1..=facteur_broker::auth::password::MAX_ITERATIONS as i64))]
    iterations: u32,
    /// The password file.
    file: PathBuf,
    /// The user to add, change or delete.
    username: Option<String>,
    /// The password (with -b only).
    password: Option<String>,
}

/// Runs `facteur passwd`; the error is the message to print.
pub(crate) fn run(args: Args) -> Result<(), String> {
    let file = &args.file;
    if args.upgrade {
        if args.username.is_some() {
            return Err("-U takes only the password file".into());
        }
        let text = read(file)?;
        return write(file, &upgrade(&text, args.iterations)?);
    }
    let username = args
        .username
        .as_deref()
        .ok_or("a username is needed (see --help)")?;
    check_username(username)?;
    if args.password.is_some() && !args.batch {
        return Err("a password on the command line needs -b".into());
    }
    let text = match args.create {
        true => String::new(),
        false => read(file)?,
    };
    if args.delete {
        return write(file, &delete(&text, username)?);
    }
    let password = match (&args.password, args.batch) {
        (Some(password), true) => password.clone(),
        (None, true) => return Err("-b needs the password as the last argument".into()),
        (_, false) => ask_password()?,
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    let hash = PasswordHash::with_iterations(password.as_bytes(), args.iterations)
        .map_err(|e| format!("no random numbers for the salt: {e}"))?;
    write(file, &set(&text, username, &hash))
}

fn check_username(username: &str) -> Result<(), String> {
    if username.is_empty() || username.contains(':') || username.chars().any(char::is_control) {
        return Err(format!(
            "invalid username {username:?}: it must be non-empty, without ':' or control characters"
        ));
    }
    Ok(())
}

fn ask_password() -> Result<String, String> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the password: {e}"))
    };
    let first = ask("Password: ")?;
    let again = ask("Reenter password: ")?;
    if first != again {
        return Err("the passwords do not match".into());
    }
    Ok(first)
}

/// The user of a password file line, if it is a user's line.
fn user_of(line: &str) -> Option<&str> {
    if line.trim().is_empty() || line.starts_with('#') {
        return None;
    }
    Some(line.split_once(':').map_or(line, |(user, _)| user))
}

/// The file with `username`'s hash set: its line replaced, or a line added.
fn set(text: &str, username: &str, hash: &PasswordHash) -> String {
    let new_line = format!("{username}:{hash}");
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|line| match user_of(line) {
            Some(user) if user == username => {
                found = true;
                new_line.clone()
            }
            _ => line.to_owned(),
        })
        .collect();
    if !found {
        out.push(new_line);
    }
    out.join("\n") + "\n"
}

/// The file without `username`'s line.
fn delete(text: &str, username: &str) -> Result<String, String> {
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| user_of(line) != Some(username))
        .collect();
    if kept.len() == text.lines().count() {
        return Err(format!("user {username:?} is not in the file"));
    }
    Ok(kept.iter().map(|line| format!("{line}\n")).collect())
}

/// The file with every plain `user:password` line hashed.
fn upgrade(text: &str, iterations: u32) -> Result<String, String> {
    let mut out = String::new();
    for (index, line) in text.lines().enumerate() {
        let plain = user_of(line).and_then(|_| line.split_once(':'));
        match plain {
            Some((user, password)) if !is_hashed(password) => {
                check_username(user).map_err(|e| format!("line {}: {e}", index + 1))?;
                let hash = PasswordHash::with_iterations(password.as_bytes(), iterations)
                    .map_err(|e| format!("no random numbers for the salt: {e}"))?;
                out.push_str(&format!("{user}:{hash}\n"));
            }
            Some(_) => out.push_str(&format!("{line}\n")),
            None if user_of(line).is_some() => {
                return Err(format!("line {}: expected `user:password`", index + 1));
            }
            None => out.push_str(&format!("{line}\n")),
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Writes the file whole (temporary file beside it, mode 0600, renamed over it), after
/// checking the broker reads every line of it.
fn write(path: &Path, text: &str) -> Result<(), String> {
    PasswordFile::parse(text).map_err(|(line, why)| {
        format!(
            "{}:{line}: {why} (the file was left as it was)",
            path.display()
        )
    })?;
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file name", path.display()))?;
    let mut temporary = name.to_owned();
    temporary.push(".tmp");
    let temporary = path.with_file_name(temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        use std::io::Write;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    written
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            format!("cannot write {}: {e}", path.display())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(password: &str) -> PasswordHash {
        PasswordHash::with_iterations(password.as_bytes(), 1).unwrap()
    }

    #[test]
    fn set_replaces_or_adds_and_keeps_other_lines() {
        let text = "# users\nann:$6$x$y\nbob:$6$x$y\n";
        let once = set(text, "bob", &hash("b"));
        let lines: Vec<&str> = once.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[..2], ["# users", "ann:$6$x$y"]);
        assert!(lines[2].starts_with("bob:$7$1$"));
        let added = set(&once, "carol", &hash("c"));
        assert!(added.lines().nth(3).unwrap().starts_with("carol:$7$"));
    }

    #[test]
    fn delete_removes_only_that_user() {
        let text = "ann:h\nannie:h\n";
        assert_eq!(delete(text, "ann").unwrap(), "annie:h\n");
        assert!(delete(text, "bob").is_err());
    }

    #[test]
    fn upgrade_hashes_plain_lines_only() {
        let hashed = format!("ann:{}", hash("a"));
        let text = format!("# c\n{hashed}\nbob:b:with:colons\n");
        let out = upgrade(&text, 1).unwrap();
        let file = PasswordFile::parse(&out).unwrap();
        assert!(file.verify("ann", b"a"));
        assert!(file.verify("bob", b"b:with:colons"));
        assert!(out.contains(&hashed));
        assert!(upgrade("nocolon\n", 1).unwrap_err().contains("line 1"));
    }

    #[test]
    fn usernames_with_a_colon_are_refused() {
        assert!(check_username("a:b").is_err());
        assert!(check_username("").is_err());
        assert!(check_username("a\nb").is_err());
        assert!(check_username("alice").is_ok());
    }
}
