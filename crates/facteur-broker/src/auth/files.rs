//! The file-based authenticator and authorizer: `password_file` with `allow_anonymous`,
//! and `acl_file`. Both can be re-read while the broker runs; a file that fails to read
//! leaves the rules in force as they were.

use super::acl::AclFile;
use super::password::PasswordFile;
use super::Identity;
use super::{AuthError, AuthRequest, Authenticator, Authorizer, BoxFuture, Client, FileError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio::sync::Semaphore;

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn replace<T>(lock: &RwLock<T>, value: T) {
    *lock.write().unwrap_or_else(|p| p.into_inner()) = value;
}

/// The password file and `allow_anonymous`, as mosquitto applies them:
/// - a client whose username is its certificate's identity (`use_identity_as_username`)
///   is accepted as that user;
/// - a client without a username is accepted where anonymous clients are;
/// - a client with a username must give that user's password when there is a password
///   file (unknown user and wrong password: refused alike, 0x86); without a password file
///   its username is taken as given where anonymous clients are accepted, and it is
///   refused elsewhere.
///
/// Passwords are checked on tokio's blocking threads, a few at a time (as many as the
/// machine has cores), so that slow hashes never stall the tasks serving clients.
#[derive(Debug)]
pub struct FileAuthenticator {
    path: Option<PathBuf>,
    passwords: RwLock<Option<Arc<PasswordFile>>>,
    /// One permit per core: held by the blocking hash itself, so a client that gives up
    /// (connect_timeout) does not free its place before its hash is done.
    hashing: Arc<Semaphore>,
}

impl FileAuthenticator {
    /// Reads the password file at `path`, if any.
    ///
    /// # Errors
    /// The file cannot be read or a line does not parse.
    pub fn load(path: Option<&Path>) -> Result<Self, FileError> {
        let passwords = path.map(PasswordFile::load).transpose()?.map(Arc::new);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            path: path.map(Path::to_owned),
            passwords: RwLock::new(passwords),
            hashing: Arc::new(Semaphore::new(cores)),
        })
    }

    /// Reads the password file again, without putting it in force.
    pub(crate) fn read_again(&self) -> Result<Option<PasswordFile>, FileError> {
        self.path.as_deref().map(PasswordFile::load).transpose()
    }

    /// Puts a file read by [`FileAuthenticator::read_again`] in force.
    pub(crate) fn put_in_force(&self, passwords: Option<PasswordFile>) {
        replace(&self.passwords, passwords.map(Arc::new));
    }

    /// Re-reads the password file; on an error the users in force stay as they were.
    ///
    /// # Errors
    /// The file cannot be read or a line does not parse.
    pub fn reload(&self) -> Result<(), FileError> {
        let passwords = self.read_again()?;
        self.put_in_force(passwords);
        Ok(())
    }

    async fn check_password(&self, file: Arc<PasswordFile>, user: &str, password: &[u8]) -> bool {
        let Ok(permit) = self.hashing.clone().acquire_owned().await else {
            return false;
        };
        let (user, password) = (user.to_owned(), password.to_owned());
        tokio::task::spawn_blocking(move || {
            let verified = file.verify(&user, &password);
            drop(permit);
            verified
        })
        .await
        .unwrap_or(false)
    }
}

impl Authenticator for FileAuthenticator {
    fn authenticate<'a>(
        &'a self,
        request: &'a AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, AuthError>> {
        Box::pin(async move {
            let username = match request.username {
                Some(user) if request.username_from_certificate => {
                    return Ok(Identity::user(user));
                }
                Some(user) => user,
                None if request.anonymous_allowed => return Ok(Identity::anonymous()),
                None => return Err(AuthError::NotAuthorized),
            };
            let Some(file) = read(&self.passwords) else {
                return match request.anonymous_allowed {
                    true => Ok(Identity::user(username)),
                    false => Err(AuthError::NotAuthorized),
                };
            };
            let password = request.password.unwrap_or_default();
            match self.check_password(file, username, password).await {
                true => Ok(Identity::user(username)),
                false => Err(AuthError::BadCredentials),
            }
        })
    }
}

/// The ACL file ([`AclFile`]'s rules) as the broker's [`Authorizer`].
#[derive(Debug)]
pub struct FileAuthorizer {
    path: PathBuf,
    acl: RwLock<Arc<AclFile>>,
}

impl FileAuthorizer {
    /// Reads the ACL file at `path`.
    ///
    /// # Errors
    /// The file cannot be read or a line does not parse.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        Ok(Self {
            path: path.to_owned(),
            acl: RwLock::new(Arc::new(AclFile::load(path)?)),
        })
    }

    /// Reads the ACL file again, without putting it in force.
    pub(crate) fn read_again(&self) -> Result<AclFile, FileError> {
        AclFile::load(&self.path)
    }

    /// Puts a file read by [`FileAuthorizer::read_again`] in force.
    pub(crate) fn put_in_force(&self, acl: AclFile) {
        replace(&self.acl, Arc::new(acl));
    }

    /// Re-reads the ACL file; on an error the rules in force stay as they were.
    ///
    /// # Errors
    /// The file cannot be read or a line does not parse.
    pub fn reload(&self) -> Result<(), FileError> {
        let acl = self.read_again()?;
        self.put_in_force(acl);
        Ok(())
    }

    fn rules(&self) -> Arc<AclFile> {
        read(&self.acl)
    }
}

impl Authorizer for FileAuthorizer {
    fn may_publish(&self, client: &Client<'_>, topic: &str) -> bool {
        self.rules()
            .may_publish(client.client_id, client.username, topic)
    }

    fn may_subscribe(&self, client: &Client<'_>, filter: &str) -> bool {
        self.rules()
            .may_subscribe(client.client_id, client.username, filter)
    }

    fn may_read(&self, client: &Client<'_>, topic: &str) -> bool {
        self.rules()
            .may_read(client.client_id, client.username, topic)
    }
}
