//! An HTTP capture server standing in for Slack, PagerDuty or a webhook consumer: it records
//! every request (method, path, headers, body) and answers with a scripted status per request
//! (default 200, or a queue of statuses with optional `Retry-After`). It runs on its own thread
//! with its own tokio runtime, so sync and async tests can use it alike.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body of {} is not JSON ({e}): {}",
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Default)]
struct State {
    captured: Vec<Captured>,
    /// Scripted answers: (status, Retry-After seconds); when empty, `default_status`.
    script: VecDeque<(u16, Option<u64>)>,
    default_status: u16,
}

/// A running capture server; stops when dropped.
pub struct CaptureServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CaptureServer {
    /// Starts on 127.0.0.1 with a free port, answering 200 by default.
    pub fn start() -> Self {
        Self::start_with_status(200)
    }

    /// Starts answering `status` to every request that has no scripted answer.
    pub fn start_with_status(status: u16) -> Self {
        let state = Arc::new(Mutex::new(State {
            default_status: status,
            ..State::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind capture server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app =
                    axum::Router::new().fallback(move |m, u, h, b| handle(st.clone(), m, u, h, b));
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("capture server");
            });
        });
        CaptureServer {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next requests with these statuses (and `Retry-After` seconds), in order.
    pub fn script(&self, answers: &[(u16, Option<u64>)]) {
        self.state
            .lock()
            .expect("lock")
            .script
            .extend(answers.iter().copied());
    }

    /// Everything received so far.
    pub fn captured(&self) -> Vec<Captured> {
        self.state.lock().expect("lock").captured.clone()
    }

    /// The requests to `path`.
    pub fn captured_at(&self, path: &str) -> Vec<Captured> {
        self.captured()
            .into_iter()
            .filter(|c| c.path == path)
            .collect()
    }

    /// Waits until at least `n` requests reached `path`, then returns them; panics after
    /// `timeout`.
    pub fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Captured> {
        crate::eventually(timeout, || {
            let got = self.captured_at(path);
            if got.len() >= n {
                Ok(got)
            } else {
                Err(format!(
                    "{} of {n} requests at {path}; all: {:?}",
                    got.len(),
                    self.captured()
                        .iter()
                        .map(|c| c.path.clone())
                        .collect::<Vec<_>>()
                ))
            }
        })
    }

    /// From now on answers `status` to every request (scripted answers not yet used are
    /// dropped).
    pub fn answer_all(&self, status: u16) {
        let mut s = self.state.lock().expect("lock");
        s.script.clear();
        s.default_status = status;
    }

    /// Forgets what was captured.
    pub fn clear(&self) {
        self.state.lock().expect("lock").captured.clear();
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (status, retry_after) = {
        let mut s = state.lock().expect("lock");
        s.captured.push(Captured {
            method: method.to_string(),
            path: uri.path().to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        });
        let d = s.default_status;
        s.script.pop_front().unwrap_or((d, None))
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, "{\"status\":\"captured\"}").into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut().insert(
            "retry-after",
            secs.to_string().parse().expect("header value"),
        );
    }
    resp
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
