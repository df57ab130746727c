//! A trap: a loopback listener that nothing should connect to, and proof that nothing did.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Accepts and holds every connection to `127.0.0.1:<port>`, noting who connected, in order.
#[derive(Debug)]
pub struct Trap {
    /// The address listened on.
    pub addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<SocketAddr>,
}

impl Trap {
    /// A trap on a free loopback port; it stops with the runtime.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("addr");
        let (tx, accepted) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, peer)) = listener.accept().await {
                if tx.send(peer).is_err() {
                    return;
                }
                held.push(socket);
            }
        });
        Self { addr, accepted }
    }

    /// Asserts that nothing has connected so far: connects once itself and checks that this
    /// sentinel is the first connection accepted (the accept queue is FIFO). Consumes the
    /// sentinel, so it may be called again later.
    pub async fn assert_untouched(&mut self, what: &str) {
        let sentinel = TcpStream::connect(self.addr)
            .await
            .expect("the sentinel connects");
        let mine = sentinel.local_addr().expect("sentinel addr");
        let first = tokio::time::timeout(Duration::from_secs(10), self.accepted.recv())
            .await
            .expect("the trap accepts within the deadline")
            .expect("the trap's accept loop is alive");
        assert_eq!(
            first, mine,
            "{what}: something connected to the trap at {}",
            self.addr
        );
    }
}
