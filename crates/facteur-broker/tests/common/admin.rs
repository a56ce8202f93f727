//! An embedder's authorizer for the tests: root does everything, the others nothing under
//! `admin/`; the user `locked` may not connect. Its rights are looked up asynchronously, as
//! from a database.

use facteur_broker::auth::{AuthError, Authorizer, BoxFuture, Client, Rights};
use std::sync::Arc;

/// Only root may use `admin/`.
pub struct AdminArea;

/// Root's rights, or everyone else's.
struct AdminRights {
    root: bool,
}

impl Rights for AdminRights {
    fn may_publish(&self, topic: &str) -> bool {
        self.root || !topic.starts_with("admin/")
    }
    fn may_subscribe(&self, filter: &str) -> bool {
        self.root || !filter.starts_with("admin/")
    }
    fn may_read(&self, topic: &str) -> bool {
        self.root || !topic.starts_with("admin/")
    }
}

impl Authorizer for AdminArea {
    fn rights<'a>(
        &'a self,
        client: &'a Client<'a>,
    ) -> BoxFuture<'a, Result<Arc<dyn Rights>, AuthError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            match client.username {
                Some("locked") => Err(AuthError::NotAuthorized),
                user => Ok(Arc::new(AdminRights {
                    root: user == Some("root"),
                }) as Arc<dyn Rights>),
            }
        })
    }
}
