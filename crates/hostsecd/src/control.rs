//! The control socket: a Unix stream socket (mode 0600: administrators only) where each connection sends one
//! JSON request line and receives one JSON response line.

use hostsec_proto::control::{Request, Response};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

/// A request from the CLI with the channel to answer it.
pub struct ControlRequest {
    /// The request.
    pub request: Request,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Response>,
}

/// Bound on the size of a request line (requests are tiny; this bounds a misbehaving client).
const MAX_REQUEST: usize = 64 * 1024;

/// Binds the control socket, replacing a stale one left by a crash.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("{} is in use: is another hostsecd running?", path.display()));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("cannot bind control socket {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    Ok(listener)
}

/// Accepts connections forever, forwarding each request to the daemon loop.
pub async fn serve(listener: UnixListener, to_daemon: mpsc::Sender<ControlRequest>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let tx = to_daemon.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut rd = BufReader::new(rd.take(MAX_REQUEST as u64));
            let mut line = String::new();
            if rd.read_line(&mut line).await.is_err() {
                return;
            }
            let response = match serde_json::from_str::<Request>(line.trim()) {
                Err(e) => Response::invalid(format!("bad request: {e}")),
                Ok(request) => {
                    let (reply, answer) = oneshot::channel();
                    if tx.send(ControlRequest { request, reply }).await.is_err() {
                        return;
                    }
                    match answer.await {
                        Ok(r) => r,
                        Err(_) => Response::failed("the daemon is shutting down"),
                    }
                }
            };
            if let Ok(mut text) = serde_json::to_string(&response) {
                text.push('\n');
                let _ = wr.write_all(text.as_bytes()).await;
            }
        });
    }
}

/// Removes the control socket on exit.
pub fn remove(path: &PathBuf) {
    let _ = std::fs::remove_file(path);
}
