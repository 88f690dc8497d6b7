//! `gru-imdb serve`, the real binary on an ephemeral port: its answers are
//! `predict --json`'s bit for bit under concurrent clients (whatever the
//! batches they share), every bad request gets its status and a JSON error,
//! the body limit, slow-client timeout and connection limit hold, SIGTERM
//! drains, and a non-loopback address needs a key.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::runs::{fixture, Fixture};
use common::{run_cli, synthetic_reviews};
use gru_imdb::device::DeviceAndThreads;
use gru_imdb::run_dir::{RunDir, WeightsChoice};
use gru_imdb::trained::TrainedModel;
use serde_json::{json, Value};

/// A server process, killed when dropped; its stderr (the request log) is
/// kept.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// `gru-imdb serve RUN --port 0 EXTRA...`, once it listens.
    fn start(run: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gru-imdb"))
            .arg("serve")
            .arg(run)
            .args(["--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gru-imdb serve");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Some(at) = line.find("http://") else {
            let _ = child.wait();
            panic!("no address line: '{line}'\n{}", log.lock().unwrap());
        };
        let base = line[at..].trim().to_owned();
        Server { child, base, log }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn address(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid, with a valid signal.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// Waits for the process to exit, at most `limit`.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fixture with a small trained run, `run`.
fn trained() -> (Fixture, PathBuf) {
    let f = fixture();
    f.train("run", 2, &[]);
    let run = f.root.join("run");
    (f, run)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// POSTs `body` with `content_type`; returns the status and JSON body.
fn post(server: &Server, path: &str, content_type: &str, body: String) -> (u16, Value) {
    let response = client()
        .post(server.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, json_of(response))
}

/// A response's JSON body (null if it is not JSON).
fn json_of(response: reqwest::blocking::Response) -> Value {
    serde_json::from_str(&response.text().unwrap_or_default()).unwrap_or(Value::Null)
}

fn predict(server: &Server, name: &str, texts: &[String]) -> (u16, Value) {
    let path = format!("/v1/models/{name}:predict");
    post(
        server,
        &path,
        "application/json",
        json!({ "instances": texts }).to_string(),
    )
}

/// The shared mirror of the labelled reviews, beside the repository.
fn real_archive() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/aclImdb_labeled.tar.gz");
    path.exists().then_some(path)
}

/// `n` review texts, one line each: the real test reviews when the shared
/// archive is there, else synthetic ones.
fn reviews(n: usize) -> Vec<String> {
    let texts: Vec<String> = match real_archive() {
        Some(path) => real_reviews(&path, n),
        None => {
            eprintln!(
                "note: ../shared/data/aclImdb_labeled.tar.gz is absent; synthetic reviews instead"
            );
            synthetic_reviews(n / 4 + 1, 11)
                .into_iter()
                .map(|(_, _, _, text)| String::from_utf8(text).unwrap())
                .collect()
        }
    };
    texts
        .into_iter()
        .take(n)
        .map(|t| t.replace(['\n', '\r'], " "))
        .collect()
}

fn real_reviews(archive: &Path, n: usize) -> Vec<String> {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut texts = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path.starts_with("aclImdb/test/") && path.ends_with(".txt") {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            texts.push(text);
            if texts.len() == n {
                break;
            }
        }
    }
    texts
}

/// `predict --json` on `texts`: (probability, label) per text.
fn predict_command(run: &Path, texts: &[String]) -> Vec<(f64, String)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reviews.txt");
    std::fs::write(&file, texts.join("\n")).unwrap();
    let (code, stdout, stderr) = run_cli(&[
        "predict",
        "--run-dir",
        run.to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["probability"].as_f64().unwrap(),
                v["label"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn answers_equal_predict_on_1000_real_reviews_under_64_concurrent_clients() {
    let (_f, run) = trained();
    let texts = reviews(1000);
    assert_eq!(texts.len(), 1000);
    let expected = predict_command(&run, &texts);
    let server = Server::start(&run, &["--max-batch", "64", "--batch-timeout-ms", "5"]);
    // 64 clients; client c asks for its reviews in requests of 1 to 8.
    let answers: Vec<Vec<(usize, f64, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..64)
            .map(|c| {
                let (server, texts) = (&server, &texts);
                scope.spawn(move || client_answers(server, texts, c))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen = 0;
    for (i, probability, label) in answers.into_iter().flatten() {
        assert_eq!(probability.to_bits(), expected[i].0.to_bits(), "review {i}");
        assert_eq!(label, expected[i].1, "review {i}");
        seen += 1;
    }
    assert_eq!(seen, 1000);
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let small: f64 = metric(&metrics, "gru_imdb_batch_size_reviews_bucket{le=\"8\"}");
    let all: f64 = metric(&metrics, "gru_imdb_batch_size_reviews_count");
    assert!(
        small < all,
        "no forward pass gathered more than 8 reviews:\n{metrics}"
    );
}

#[test]
fn predict_gives_each_review_the_same_bits_alone_as_among_1000() {
    let (_f, run) = trained();
    let texts = reviews(1000);
    let trained = TrainedModel::load(
        &RunDir::open(&run),
        WeightsChoice::Last,
        &DeviceAndThreads::cpu(2),
    )
    .unwrap();
    let together = trained.predict(&texts);
    for (i, text) in texts.iter().enumerate() {
        let alone = trained.predict(std::slice::from_ref(text));
        let bits = |p: &[f64]| p.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&alone[0]), bits(&together[i]), "review {i}");
    }
}

#[test]
fn the_encoder_cuts_long_real_reviews_early_into_the_same_rows() {
    let (_f, run) = trained();
    let texts = reviews(1000);
    let trained = TrainedModel::load(
        &RunDir::open(&run),
        WeightsChoice::Last,
        &DeviceAndThreads::cpu(1),
    )
    .unwrap();
    let (tokenizer, maxlen) = (trained.tokenizer(), trained.config.maxlen);
    let full: Vec<Vec<i32>> = texts
        .iter()
        .map(|t| {
            trained
                .vocab
                .encode(tokenizer, t, trained.config.model.max_features)
        })
        .collect();
    assert_eq!(
        trained.encoder().rows(&texts),
        gru_imdb::data::pad_sequences(&full, maxlen)
    );
}

/// Client `c` of 64: reviews c, c+64, ..., in requests of 1 + c % 8.
fn client_answers(server: &Server, texts: &[String], c: usize) -> Vec<(usize, f64, String)> {
    let mine: Vec<usize> = (c..texts.len()).step_by(64).collect();
    let mut answers = Vec::new();
    for chunk in mine.chunks(1 + c % 8) {
        let batch: Vec<String> = chunk.iter().map(|&i| texts[i].clone()).collect();
        let (status, body) = predict(server, "run", &batch);
        assert_eq!(status, 200, "{body}");
        for (&i, p) in chunk.iter().zip(body["predictions"].as_array().unwrap()) {
            let label = p["label"].as_str().unwrap().to_owned();
            answers.push((i, p["probability"].as_f64().unwrap(), label));
        }
    }
    answers
}

fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{page}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn every_bad_request_gets_its_status_and_an_error_naming_the_problem() {
    let (_f, run) = trained();
    let server = Server::start(&run, &["--max-instances", "3", "--max-text-bytes", "50"]);
    let at = "/v1/models/run:predict";
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "malformed JSON",
            "application/json",
            "{\"instances\": [".into(),
            400,
            "malformed JSON",
        ),
        (
            "wrong content type",
            "text/plain",
            "{\"instances\": [\"a\"]}".into(),
            415,
            "Content-Type",
        ),
        (
            "non-string instance",
            "application/json",
            "{\"instances\": [\"a\", 3]}".into(),
            400,
            "instances[1] is a number",
        ),
        (
            "empty list",
            "application/json",
            "{\"instances\": []}".into(),
            400,
            "empty",
        ),
        (
            "no instances",
            "application/json",
            "{\"inputs\": [\"a\"]}".into(),
            400,
            "\"instances\"",
        ),
        (
            "too many",
            "application/json",
            json!({"instances": ["a", "b", "c", "d"]}).to_string(),
            400,
            "at most 3",
        ),
        (
            "too long",
            "application/json",
            json!({"instances": ["x".repeat(51)]}).to_string(),
            400,
            "at most 50",
        ),
    ];
    for (case, content_type, body, status, names) in cases {
        let (got, answer) = post(&server, at, content_type, body);
        assert_eq!(got, status, "{case}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: {answer}"));
        assert!(error.contains(names), "{case}: {error}");
    }
    let (got, answer) = predict(&server, "other", &["a".to_owned()]);
    assert_eq!(got, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("'other'"));
    let get = |path: &str| client().get(server.url(path)).send().unwrap();
    assert_eq!(get("/v2/nothing").status().as_u16(), 404);
    assert_eq!(get(at).status().as_u16(), 405);
    let delete = client().delete(server.url("/healthz")).send().unwrap();
    assert_eq!(delete.status().as_u16(), 405);
    assert!(json_of(delete)["error"].is_string());
    // The server is unhurt.
    assert_eq!(predict(&server, "run", &["a great film".to_owned()]).0, 200);
}

#[test]
fn status_metadata_page_health_and_metrics_answer() {
    let (_f, run) = trained();
    let server = Server::start(&run, &["--model-name", "sentiment"]);
    let get = |path: &str| client().get(server.url(path)).send().unwrap();
    let status = json_of(get("/v1/models/sentiment"));
    assert_eq!(status["model_version_status"][0]["state"], "AVAILABLE");
    let metadata = json_of(get("/v1/models/sentiment/metadata"));
    assert_eq!(metadata["model_spec"]["name"], "sentiment");
    assert_eq!(
        metadata["metadata"]["classes"],
        json!(["negative", "positive"])
    );
    assert_eq!(metadata["metadata"]["maxlen"], 40);
    assert_eq!(metadata["metadata"]["config"]["model"]["units"], 8);
    let page = get("/").text().unwrap();
    assert!(page.contains("<textarea") && page.contains("\"sentiment\""));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page links out"
    );
    assert_eq!(json_of(get("/healthz"))["status"], "ok");
    predict(&server, "sentiment", &["good".to_owned(), "bad".to_owned()]);
    let metrics = get("/metrics").text().unwrap();
    assert_eq!(metric(&metrics, "gru_imdb_reviews_total"), 2.0);
    assert!(metrics.contains("gru_imdb_requests_total{route=\"predict\",status=\"200\"} 1"));
    assert!(metrics.contains("gru_imdb_request_duration_seconds_bucket{le=\"+Inf\"}"));
}

#[test]
fn the_request_log_prints_review_texts_only_with_log_texts() {
    let (_f, run) = trained();
    let secret = "a very private review about a great film".to_owned();
    let quiet = Server::start(&run, &[]);
    assert_eq!(predict(&quiet, "run", std::slice::from_ref(&secret)).0, 200);
    let loud = Server::start(&run, &["--log-texts"]);
    assert_eq!(predict(&loud, "run", std::slice::from_ref(&secret)).0, 200);
    std::thread::sleep(Duration::from_millis(200));
    let line = "POST /v1/models/run:predict 200";
    assert!(quiet.log().contains(line), "{}", quiet.log());
    assert!(quiet.log().contains("1 instances"));
    assert!(!quiet.log().contains("private"), "{}", quiet.log());
    assert!(loud.log().contains(&secret), "{}", loud.log());
}

/// A raw connection to `server`, with a read timeout.
fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Everything the server sends until it closes (or the read times out).
fn read_all(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let (_f, run) = trained();
    let server = Server::start(&run, &["--max-body-bytes", "1000"]);
    // Declared too large: refused before the body is sent.
    let mut stream = connect(&server);
    write!(
        stream,
        "POST /v1/models/run:predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000000\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let answer = read_all(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    // Sent whole, chunked, without a length: refused once past the limit.
    let body = json!({ "instances": ["x".repeat(2000)] }).to_string();
    let response = client()
        .post(server.url("/v1/models/run:predict"))
        .header("content-type", "application/json")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(body)))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
}

#[test]
fn a_client_that_sends_too_slowly_is_cut_off() {
    let (_f, run) = trained();
    let server = Server::start(&run, &["--read-timeout-ms", "500"]);
    // Headers that never end: the connection is closed.
    let mut headers = connect(&server);
    let started = Instant::now();
    headers
        .write_all(b"POST /v1/models/run:predict HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let answer = read_all(&mut headers);
    let waited = started.elapsed();
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // A body that stops halfway: 408.
    let mut body = connect(&server);
    body.write_all(b"POST /v1/models/run:predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"instances\": [").unwrap();
    let answer = read_all(&mut body);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // An idle kept-alive connection is closed too.
    let mut idle = connect(&server);
    let started = Instant::now();
    assert_eq!(read_all(&mut idle), "");
    assert!(started.elapsed() < Duration::from_secs(10));
    // And the server still answers.
    assert_eq!(predict(&server, "run", &["fine".to_owned()]).0, 200);
}

#[test]
fn connections_over_the_limit_get_503() {
    let (_f, run) = trained();
    let server = Server::start(&run, &["--max-connections", "2"]);
    let held: Vec<TcpStream> = (0..2).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = connect(&server);
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let answer = read_all(&mut third);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many connections"), "{answer}");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let health = client().get(server.url("/healthz")).send().unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    let (_f, run) = trained();
    // A long batch timeout keeps the request in flight when SIGTERM comes.
    let mut server = Server::start(&run, &["--batch-timeout-ms", "1500"]);
    let (status, body) = std::thread::scope(|scope| {
        let request = scope.spawn(|| predict(&server, "run", &["a great film".to_owned()]));
        std::thread::sleep(Duration::from_millis(400));
        server.terminate();
        request.join().unwrap()
    });
    assert_eq!(status, 200, "{body}");
    assert!(body["predictions"][0]["probability"].is_f64());
    assert_eq!(
        server.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        server.log()
    );
    assert!(server.log().contains("Draining"), "{}", server.log());
}

#[test]
fn a_non_loopback_address_without_a_key_is_refused() {
    let (f, run) = trained();
    let run = run.to_str().unwrap();
    let (code, _, stderr) = run_cli(&["serve", run, "--host", "0.0.0.0", "--port", "0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--api-key-file") && stderr.contains("--no-auth"),
        "{stderr}"
    );
    let empty = f.root.join("empty-key");
    std::fs::write(&empty, "\n").unwrap();
    let (code, _, stderr) = run_cli(&[
        "serve",
        run,
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--api-key-file",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--api-key-file") && stderr.contains("empty"),
        "{stderr}"
    );
    let (code, _, stderr) = run_cli(&["serve", run, "--api-key-file", "/nonexistent/key"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot read --api-key-file"), "{stderr}");
    // A key no HTTP header can carry.
    let two_lines = f.root.join("two-line-key");
    std::fs::write(&two_lines, "first line\nsecond\n").unwrap();
    let (code, _, stderr) = run_cli(&["serve", run, "--api-key-file", two_lines.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("visible ASCII"), "{stderr}");
}

#[test]
fn a_port_in_use_is_refused_before_the_model_loads() {
    let (_f, run) = trained();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, stderr) = run_cli(&["serve", run.to_str().unwrap(), "--port", &port]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on 127.0.0.1:"), "{stderr}");
    assert!(
        !stderr.contains("Using the weights"),
        "loaded first: {stderr}"
    );
}

#[test]
fn with_a_key_only_callers_that_send_it_get_in() {
    let (f, run) = trained();
    let key_file = f.root.join("key");
    std::fs::write(&key_file, "s3cret-key\n").unwrap();
    let server = Server::start(
        &run,
        &[
            "--host",
            "0.0.0.0",
            "--api-key-file",
            key_file.to_str().unwrap(),
        ],
    );
    let server_url = server
        .url("/v1/models/run:predict")
        .replace("0.0.0.0", "127.0.0.1");
    let send = |key: Option<&str>| {
        let mut request = client()
            .post(&server_url)
            .header("content-type", "application/json")
            .body(json!({"instances": ["a great film"]}).to_string());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().unwrap().status().as_u16()
    };
    assert_eq!(send(None), 401);
    assert_eq!(send(Some("wrong")), 401);
    assert_eq!(send(Some("s3cret-key")), 200);
    // The scheme's name is case-insensitive.
    let lower = client()
        .post(&server_url)
        .header("content-type", "application/json")
        .header("authorization", "bearer s3cret-key")
        .body(json!({"instances": ["a great film"]}).to_string())
        .send()
        .unwrap();
    assert_eq!(lower.status().as_u16(), 200);
    let health = server.url("/healthz").replace("0.0.0.0", "127.0.0.1");
    assert_eq!(client().get(health).send().unwrap().status().as_u16(), 200);
}
