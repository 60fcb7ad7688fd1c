//! The sender's rules from the remote-write spec, against a local receiver that answers from a
//! script: 5xx, timeouts and (when configured) 429 are retried with the same body, honouring
//! `Retry-After`; other 4xx are dropped, counted and not retried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::http;
use e2e::payload::{encode_v1, labels, series};
use e2e::{Promgate, eventually, now_ms};
use proto::v1::WriteRequest;

/// What the receiver does with one request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16, Option<u64>),
    Hang(Duration),
}

#[derive(Default)]
struct Log {
    bodies: Vec<(Instant, Vec<u8>)>,
}

/// Serves HTTP/1.1 on loopback, answering request i with `script[i]` (204 after the end).
fn receiver(script: Vec<Answer>) -> (String, Arc<Mutex<Log>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/api/v1/write",
        listener.local_addr().expect("addr")
    );
    let log = Arc::new(Mutex::new(Log::default()));
    let script = Arc::new(script);
    let shared = log.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (log, script) = (shared.clone(), script.clone());
            std::thread::spawn(move || serve(conn, &log, &script));
        }
    });
    (url, log)
}

fn serve(conn: TcpStream, log: &Mutex<Log>, script: &[Answer]) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut conn = conn;
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let i = {
            let mut l = log.lock().expect("lock");
            l.bodies.push((Instant::now(), body));
            l.bodies.len() - 1
        };
        let answer = script.get(i).copied().unwrap_or(Answer::Status(204, None));
        let (status, retry_after) = match answer {
            Answer::Hang(d) => {
                std::thread::sleep(d);
                return;
            }
            Answer::Status(s, r) => (s, r),
        };
        let text = if status == 400 {
            "out of bounds: sample too old"
        } else {
            ""
        };
        let mut resp = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", text.len());
        if let Some(r) = retry_after {
            resp.push_str(&format!("Retry-After: {r}\r\n"));
        }
        resp.push_str("\r\n");
        resp.push_str(text);
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn write(pg: &Promgate, value: f64, t: i64) {
    let req = WriteRequest {
        timeseries: (0..3)
            .map(|i| {
                series(
                    labels(&[("__name__", "retry_m"), ("i", &i.to_string())]),
                    &[(t, value)],
                )
            })
            .collect(),
        metadata: vec![],
    };
    let r = http::post_rw_v1(&pg.write_url(), encode_v1(&req)).expect("write");
    assert_eq!(r.status, 204);
}

fn counter(pg: &Promgate, name: &str, url: &str) -> f64 {
    let series =
        format!("prometheus_remote_storage_{name}_total{{remote_name=\"r\",url=\"{url}\"}}");
    http::metric_value(&pg.metrics(), &series).unwrap_or(0.0)
}

#[test]
fn retries_and_drops_follow_the_spec() {
    let (url, log) = receiver(vec![
        Answer::Status(500, None),
        Answer::Status(429, Some(1)),
        Answer::Hang(Duration::from_secs(3)),
        Answer::Status(204, None),
        Answer::Status(400, None),
    ]);
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        &format!(
            "remote_write:\n  - url: {url}\n    name: r\n    remote_timeout: 1s\n    \
             queue_config:\n      retry_on_http_429: true\n      min_backoff: 10ms\n      max_backoff: 100ms\n"
        ),
    );
    let t = now_ms();
    write(&pg, 1.0, t);
    eventually(Duration::from_secs(20), || {
        let n = log.lock().expect("lock").bodies.len();
        if n >= 4 {
            Ok(())
        } else {
            Err(format!("{n} requests"))
        }
    });
    write(&pg, 2.0, t + 1000);
    eventually(Duration::from_secs(10), || {
        let n = log.lock().expect("lock").bodies.len();
        if n >= 5 {
            Ok(())
        } else {
            Err(format!("{n} requests"))
        }
    });
    write(&pg, 3.0, t + 2000);
    eventually(Duration::from_secs(10), || {
        let n = log.lock().expect("lock").bodies.len();
        if n >= 6 {
            Ok(())
        } else {
            Err(format!("{n} requests"))
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let log = log.lock().expect("lock");
    let b = &log.bodies;
    assert_eq!(b.len(), 6, "the 400 must not be retried");
    // 500, 429 and the timeout were retried with the same body.
    assert!(b[0].1 == b[1].1 && b[1].1 == b[2].1 && b[2].1 == b[3].1);
    assert!(
        b[2].0 - b[1].0 >= Duration::from_millis(950),
        "Retry-After: 1 honoured"
    );
    assert!(
        b[3].0 - b[2].0 >= Duration::from_millis(950),
        "remote_timeout 1s waited"
    );
    assert_ne!(b[4].1, b[3].1);
    assert_ne!(
        b[5].1, b[4].1,
        "after a 400 the next write is sent, not the refused one"
    );
    assert_eq!(counter(&pg, "samples_retried", &url), 9.0);
    assert_eq!(counter(&pg, "samples_failed", &url), 3.0);
    assert_eq!(counter(&pg, "samples", &url), 6.0);
}

#[test]
fn http_429_is_dropped_unless_retry_is_configured() {
    let (url, log) = receiver(vec![Answer::Status(429, Some(1))]);
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        &format!("remote_write:\n  - url: {url}\n    name: r\n"),
    );
    let t = now_ms();
    let requests = |want: usize| {
        eventually(Duration::from_secs(10), || {
            let n = log.lock().expect("lock").bodies.len();
            if n >= want {
                Ok(())
            } else {
                Err(format!("{n} requests"))
            }
        })
    };
    write(&pg, 1.0, t);
    requests(1);
    write(&pg, 2.0, t + 1000);
    requests(2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(log.lock().expect("lock").bodies.len(), 2);
    assert_eq!(counter(&pg, "samples_failed", &url), 3.0);
    assert_eq!(counter(&pg, "samples_retried", &url), 0.0);
}
