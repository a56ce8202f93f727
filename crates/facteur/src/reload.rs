//! SIGHUP: the password and ACL files are read again
//! ([`BrokerHandle::reload_security_files`]). A failed reload is logged with the file,
//! line and problem, and the rules in force stay as they were.

use facteur_broker::BrokerHandle;

/// Reloads on every SIGHUP, for as long as the broker runs (never returns on Unix; on
/// other systems there is no SIGHUP and it waits forever).
pub(crate) async fn on_hangup(broker: &BrokerHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "SIGHUP cannot be caught: no reloading");
                return std::future::pending().await;
            }
        };
        while hangups.recv().await.is_some() {
            match broker.reload_security_files() {
                Ok(()) => tracing::info!("password and ACL files reloaded"),
                Err(error) => {
                    tracing::error!(%error, "reload failed, the rules in force are kept")
                }
            }
        }
    }
    std::future::pending().await
}
