//! A scripted model server on 127.0.0.1 for end-to-end tests of real agent
//! CLIs. Each POST takes the next reply of the script: a server-sent-event
//! stream (the Responses API), a JSON body (Chat Completions), an HTTP
//! error, or a connection that is accepted and never answered. Every
//! request is recorded for assertions. Other methods (codex's WebSocket
//! probe) get 404, which makes the client fall back to plain POST.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A base URL where nothing listens: a port that was free a moment ago.
pub fn unreachable_base_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    format!("http://127.0.0.1:{port}/v1")
}

#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with `text/event-stream`: each (event, data JSON) in order.
    Sse(Vec<(String, String)>),
    /// A status and a JSON body.
    Json(u16, String),
    /// Accept the request and never answer.
    Hang,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
}

pub struct ModelServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl ModelServer {
    /// Serve `script` in order; when it runs out, the last reply repeats.
    pub fn start(script: Vec<Reply>) -> ModelServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(
            script
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        ));
        {
            let requests = requests.clone();
            let held = held.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let requests = requests.clone();
                    let held = held.clone();
                    let script = script.clone();
                    std::thread::spawn(move || serve(stream, &script, &requests, &held));
                }
            });
        }
        ModelServer {
            port,
            requests,
            held,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn posts(&self) -> Vec<Request> {
        self.requests
            .lock()
            .map(|r| r.iter().filter(|q| q.method == "POST").cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        if let Ok(mut held) = self.held.lock() {
            for s in held.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

fn serve(
    stream: TcpStream,
    script: &Mutex<std::collections::VecDeque<Reply>>,
    requests: &Mutex<Vec<Request>>,
    held: &Mutex<Vec<TcpStream>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    // Keep-alive: serve requests on this connection until it closes.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let body = if chunked {
            read_chunked(&mut reader)
        } else {
            let mut buf = vec![0u8; length];
            if reader.read_exact(&mut buf).is_err() {
                return;
            }
            buf
        };
        let body = String::from_utf8_lossy(&body).into_owned();
        if let Ok(mut r) = requests.lock() {
            r.push(Request {
                method: method.clone(),
                path: path.clone(),
                body,
            });
        }
        if method != "POST" {
            let _ = writer.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
            return;
        }
        let reply = {
            let mut s = script.lock().expect("script");
            if s.len() > 1 {
                s.pop_front()
            } else {
                s.front().cloned()
            }
        };
        match reply {
            Some(Reply::Sse(events)) => {
                let mut out = String::from(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
                );
                for (event, data) in events {
                    out.push_str(&format!("event: {event}\ndata: {data}\n\n"));
                }
                let _ = writer.write_all(out.as_bytes());
                return;
            }
            Some(Reply::Json(status, body)) => {
                let reason = if status == 200 { "OK" } else { "Error" };
                let out = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if writer.write_all(out.as_bytes()).is_err() {
                    return;
                }
            }
            Some(Reply::Hang) | None => {
                if let (Ok(mut h), Ok(s)) = (held.lock(), writer.try_clone()) {
                    h.push(s);
                }
                // Never answer; the test's drop closes the socket.
                let mut sink = [0u8; 1024];
                while reader.read(&mut sink).unwrap_or(0) > 0 {}
                return;
            }
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return body;
        }
        let n =
            usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if n == 0 {
            let mut end = String::new();
            let _ = reader.read_line(&mut end);
            return body;
        }
        let mut chunk = vec![0u8; n + 2];
        if reader.read_exact(&mut chunk).is_err() {
            return body;
        }
        body.extend_from_slice(&chunk[..n]);
    }
}
