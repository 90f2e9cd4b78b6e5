//! A TCP proxy the test controls, put between one process and a server (a replica and PostgreSQL) to cut the
//! connection, drop it silently (a partition) or restore it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Forwards both ways.
    Up,
    /// Closes every open connection and every new one at once (a server that went away: connection refused or
    /// reset).
    Down,
    /// Forwards nothing and closes nothing: connections stay open and silent (a network partition). Connections
    /// open during it are closed when the link comes back (their byte streams have holes).
    Partitioned,
}

/// A running proxy; stops (closing its connections) when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    link: watch::Sender<Link>,
    accept: JoinHandle<()>,
    open: Arc<AtomicUsize>,
}

impl TcpProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream`.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port for a proxy");
        let addr = listener.local_addr().expect("local address");
        let (link, watching) = watch::channel(Link::Up);
        let open = Arc::new(AtomicUsize::new(0));
        let counter = open.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (link, counter) = (watching.clone(), counter.clone());
                tokio::spawn(async move {
                    counter.fetch_add(1, Ordering::Relaxed);
                    serve(client, upstream, link).await;
                    counter.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        Self { addr, link, accept, open }
    }

    /// The address to connect to instead of the upstream.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open through the proxy now.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Sets the link.
    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.link.send_replace(Link::Down);
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, mut link: watch::Receiver<Link>) {
    let _ = client.set_nodelay(true);
    // A connection made during a partition hangs until the partition ends, then is closed.
    if *link.borrow() == Link::Partitioned {
        let _ = link.wait_for(|l| *l != Link::Partitioned).await;
        return;
    }
    if *link.borrow() == Link::Down {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let copy = async {
        tokio::select! {
            _ = tokio::io::copy(&mut cr, &mut sw) => {},
            _ = tokio::io::copy(&mut sr, &mut cw) => {},
        }
    };
    let changed = tokio::select! {
        () = copy => None,
        l = link.wait_for(|l| *l != Link::Up) => Some(l.map(|l| *l).unwrap_or(Link::Down)),
    };
    // Partitioned: hold the sockets open, forward nothing, until the link changes again.
    if changed == Some(Link::Partitioned) {
        let _ = link.wait_for(|l| *l != Link::Partitioned).await;
    }
    let _ = cw.shutdown().await;
    let _ = sw.shutdown().await;
}
