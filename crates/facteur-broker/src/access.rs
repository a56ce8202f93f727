//! A session's questions about its client's [`Rights`](crate::auth::Rights), looked up by
//! the broker's [`Authorizer`](crate::auth::Authorizer) when the client connected: without
//! an authorizer (no `acl_file`, none given by the embedder) every answer is yes, at the
//! cost of one branch; with one, a client without rights may do nothing.

use crate::auth::Rights;
use crate::router::Router;
use crate::session_task::SessionTask;

/// May a client with `rights` publish to `topic`? (A function of the parts of a session it
/// needs, for use while the session itself is borrowed.)
pub(crate) fn may_publish(router: &Router, rights: Option<&dyn Rights>, topic: &str) -> bool {
    router.authorizer.is_none() || rights.is_some_and(|r| r.may_publish(topic))
}

impl SessionTask {
    /// The rights of the connection that last attached.
    pub(crate) fn rights(&self) -> Option<&dyn Rights> {
        self.auth.as_deref().and_then(|a| a.rights.as_deref())
    }

    /// May this session's client publish to `topic`?
    pub(crate) fn may_publish(&self, topic: &str) -> bool {
        may_publish(&self.router, self.rights(), topic)
    }

    /// May this session's client subscribe to `filter`?
    pub(crate) fn may_subscribe(&self, filter: &str) -> bool {
        self.router.authorizer.is_none() || self.rights().is_some_and(|r| r.may_subscribe(filter))
    }

    /// May this session's client receive a message published to `topic`?
    #[inline]
    pub(crate) fn may_read(&self, topic: &str) -> bool {
        self.router.authorizer.is_none() || self.rights().is_some_and(|r| r.may_read(topic))
    }
}
