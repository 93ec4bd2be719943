//! Operations: what an operator touches besides the config — the control socket and
//! `vrrp-agent status`, the Prometheus endpoint.

pub mod control;
pub mod metrics;
pub mod systemd;

use std::{io, sync::Arc, time::Duration};

use log::debug;

/// `ADDR:PORT` as status and metrics show a real server, an IPv6 address in brackets.
pub(crate) fn host_port(addr: &str, port: &str) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}
use tokio::sync::Semaphore;

/// At most this many connections are served at once; more are closed at once (anyone who
/// can connect may hold a connection for the request timeout).
const MAX_CONNECTIONS: usize = 16;

/// A listener the bounded server accepts from.
trait Listener {
    type Stream;
    /// A connection, and how to name its peer in log lines.
    fn next(&self) -> impl Future<Output = io::Result<(Self::Stream, String)>> + Send;
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn next(&self) -> io::Result<(Self::Stream, String)> {
        Ok((self.accept().await?.0, String::new()))
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn next(&self) -> io::Result<(Self::Stream, String)> {
        let (s, peer) = self.accept().await?;
        Ok((s, format!(" {peer}")))
    }
}

/// Accepts connections until the runtime goes away and answers each in a task of its own, at
/// most [`MAX_CONNECTIONS`] at once; an accept error (out of descriptors, say) pauses rather
/// than spins.
async fn serve_bounded<L: Listener, Fut>(
    what: &'static str,
    listener: L,
    answer: impl Fn(L::Stream) -> Fut,
) where
    Fut: Future<Output = io::Result<()>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.next().await {
            Ok(c) => c,
            Err(e) => {
                debug!("{what}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let answering = answer(stream);
        tokio::spawn(async move {
            if let Err(e) = answering.await {
                debug!("{what}{peer}: {e}");
            }
            drop(permit);
        });
    }
}
