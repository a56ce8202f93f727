//! A session's questions to the broker's [`Authorizer`](crate::auth::Authorizer): without
//! one (no `acl_file`, none given by the embedder) every answer is yes, at the cost of one
//! branch.

use crate::auth::Client;
use crate::router::Router;
use crate::session_task::SessionTask;

/// May this client publish to `topic`? (A function of the parts of a session it needs, for
/// use while the session itself is borrowed.)
pub(crate) fn may_publish(
    router: &Router,
    client_id: &str,
    username: Option<&str>,
    topic: &str,
) -> bool {
    match &router.authorizer {
        None => true,
        Some(authorizer) => authorizer.may_publish(&Client::new(client_id, username), topic),
    }
}

impl SessionTask {
    fn client(&self) -> Client<'_> {
        let username = self.auth.as_deref().and_then(|a| a.username.as_deref());
        Client::new(&self.client_id, username)
    }

    /// May this session's client publish to `topic`?
    pub(crate) fn may_publish(&self, topic: &str) -> bool {
        let username = self.auth.as_deref().and_then(|a| a.username.as_deref());
        may_publish(&self.router, &self.client_id, username, topic)
    }

    /// May this session's client subscribe to `filter`?
    pub(crate) fn may_subscribe(&self, filter: &str) -> bool {
        match &self.router.authorizer {
            None => true,
            Some(authorizer) => authorizer.may_subscribe(&self.client(), filter),
        }
    }

    /// May this session's client receive a message published to `topic`?
    #[inline]
    pub(crate) fn may_read(&self, topic: &str) -> bool {
        match &self.router.authorizer {
            None => true,
            Some(authorizer) => authorizer.may_read(&self.client(), topic),
        }
    }
}
