//! One `LISTEN` connection kept open: the wake-up path of the projection runner, and of any
//! per-process cache that other processes must be able to clear.

use std::time::Duration;

use futures::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

/// Listens on `channel` until `shutdown`, calling `notified` with each notification's
/// payload, and with `None` whenever the connection is (re)established, since notifications
/// may have been missed while it was down. Reconnects with backoff (100 ms doubling to 5 s).
pub async fn listen(
    config: tokio_postgres::Config,
    channel: &'static str,
    notified: impl Fn(Option<&str>) + Send,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = async {
            let (client, mut connection) = config.connect(NoTls).await?;
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            let statement = format!("LISTEN {channel}");
            // The connection must be driven while LISTEN runs.
            let mut listen = std::pin::pin!(client.batch_execute(&statement));
            loop {
                tokio::select! {
                    result = &mut listen => { result?; break; }
                    message = messages.next() => match message {
                        Some(Ok(_)) => {}
                        Some(Err(error)) => return Err(error),
                        None => return Ok(()),
                    },
                }
            }
            notified(None);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    message = messages.next() => match message {
                        Some(Ok(AsyncMessage::Notification(notification))) => {
                            notified(Some(notification.payload()));
                        }
                        Some(Ok(_)) => {}
                        Some(Err(error)) => return Err(error),
                        None => return Ok(()),
                    },
                }
            }
        };
        let result: Result<(), tokio_postgres::Error> = connected.await;
        if shutdown.is_cancelled() {
            return;
        }
        match result {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(error) => {
                tracing::warn!(%error, channel, "notification connection lost; reconnecting")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
