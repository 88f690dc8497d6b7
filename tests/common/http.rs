//! A small HTTP/1.1 file server on 127.0.0.1 for download tests: it honours
//! `Range: bytes=N-` with 206, and can answer with an error status, ignore
//! ranges, lie about the total size, drop connections mid-body, or hold an
//! answer back until the test lets it go. It counts and logs requests with
//! their times, so tests can assert that a run used no network, or how long
//! it waited between attempts.
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How the server answers requests for one path.
#[derive(Clone)]
pub enum Reply {
    /// The bytes, with range support.
    File(Vec<u8>),
    /// The bytes, always whole with 200, whatever the Range header says.
    IgnoreRange(Vec<u8>),
    /// Like `File`, but 206 answers claim this total size.
    WrongTotal(Vec<u8>, u64),
    /// The first request gets a full-length header but only `cut` bytes
    /// before the connection drops; later ones are served like `File`.
    CutFirst(Vec<u8>, usize),
    /// Every request gets a full-length header but at most this many bytes
    /// of the body.
    CutAlways(Vec<u8>, usize),
    /// Just this status, with a short text body.
    Status(u16),
    /// Like `File`, but only once the gate is open (or a minute has passed,
    /// so that a failing test does not hang its runs).
    Gated(Vec<u8>, Gate),
}

/// Holds back `Reply::Gated` answers until the test opens it.
#[derive(Clone, Default)]
pub struct Gate(Arc<AtomicBool>);

impl Gate {
    pub fn open(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wait(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.0.load(Ordering::SeqCst) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub range: Option<String>,
    /// When its headers had arrived.
    pub at: Instant,
}

pub struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serves `routes` (path -> reply) until dropped; other paths get 404.
    pub fn start(routes: Vec<(&str, Reply)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let routes: HashMap<String, Reply> =
            routes.into_iter().map(|(p, r)| (p.to_owned(), r)).collect();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_log, thread_stop) = (log.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    handle(stream, &routes, &thread_log);
                }
            }
        });
        Server { addr, log, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests seen so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("request log").clone()
    }

    pub fn hits(&self) -> usize {
        self.requests().len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Wake the accept loop so its thread ends with the test.
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn handle(stream: TcpStream, routes: &HashMap<String, Reply>, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return; // the Drop wake-up, or a client that gave up
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_owned());
            }
        }
    }
    let earlier = {
        let mut log = log.lock().expect("request log");
        let earlier = log.iter().filter(|r| r.path == path).count();
        log.push(Request {
            path: path.clone(),
            range: range.clone(),
            at: Instant::now(),
        });
        earlier
    };
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    let mut out = stream;
    match routes.get(&path) {
        None => status(&mut out, 404),
        Some(Reply::Status(code)) => status(&mut out, *code),
        Some(Reply::IgnoreRange(body)) => send(&mut out, body, None, None, usize::MAX),
        Some(Reply::File(body)) => send(&mut out, body, start, None, usize::MAX),
        Some(Reply::WrongTotal(body, total)) => {
            send(&mut out, body, start, Some(*total), usize::MAX)
        }
        Some(Reply::CutFirst(body, cut)) => {
            let cut = if earlier == 0 { *cut } else { usize::MAX };
            send(&mut out, body, start, None, cut)
        }
        Some(Reply::CutAlways(body, cut)) => send(&mut out, body, start, None, *cut),
        Some(Reply::Gated(body, gate)) => {
            gate.wait();
            send(&mut out, body, start, None, usize::MAX)
        }
    }
    let _ = out.flush();
    let _ = out.shutdown(Shutdown::Both);
}

fn status(out: &mut TcpStream, code: u16) {
    let body = format!("status {code}\n");
    let _ = write!(
        out,
        "HTTP/1.1 {code} Test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Sends `body` from byte `start` (206) or whole (200), but at most `max`
/// bytes of it, after a header that promises all of it.
fn send(out: &mut TcpStream, body: &[u8], start: Option<usize>, total: Option<u64>, max: usize) {
    let head = match start {
        Some(s) if s >= body.len() => {
            let _ = write!(
                out,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                body.len()
            );
            return;
        }
        Some(s) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{}\r\nContent-Length: {}\r\n",
            body.len() - 1,
            total.unwrap_or(body.len() as u64),
            body.len() - s
        ),
        None => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len()),
    };
    let from = start.unwrap_or(0);
    let to = from.saturating_add(max).min(body.len());
    let _ = write!(
        out,
        "{head}Content-Type: application/gzip\r\nConnection: close\r\n\r\n"
    );
    let _ = out.write_all(&body[from..to]);
}
