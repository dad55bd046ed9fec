//! A real SMTP server inside the test process: the services deliver to it
//! over TCP exactly as to a production relay, and tests read what arrived.
//!
//! The protocol (EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP,
//! QUIT, and the reply codes) is the `mailin` crate's state machine; this
//! module runs it on a tokio listener on `127.0.0.1:0` and keeps each
//! accepted message in memory.
//!
//! ```ignore
//! let sink = SmtpSink::start().await;
//! // point the service at sink.addr, invite someone ...
//! let mails = sink.wait_for(1, Duration::from_secs(10)).await;
//! let link = mails[0].text_body().unwrap();
//! ```

use std::{
    collections::VecDeque,
    io,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use base64::Engine;
use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::{oneshot, watch},
    task::{JoinHandle, JoinSet},
};

/// The longest command or data line read (RFC 5321 allows 1000 bytes).
const MAX_LINE: u64 = 64 * 1024;

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message as transmitted (headers and body, CRLF line ends), after
    /// dot-unstuffing.
    pub data: String,
}

/// An SMTP server on a local port until stopped or dropped.
pub struct SmtpSink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    count: watch::Receiver<usize>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    count: watch::Sender<usize>,
}

#[derive(Default)]
struct State {
    messages: Vec<ReceivedMail>,
    /// Reply codes for the next messages' `MAIL FROM`, instead of 250.
    rejections: VecDeque<u16>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves it poisoned;
        // the data is still fine to read.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> SmtpSink {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Listens on `addr`, for example the port of a sink that was stopped
    /// (SMTP down, then back). The new sink starts empty.
    pub async fn start_on(addr: SocketAddr) -> SmtpSink {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("binding the SMTP sink to {addr}: {e}"));
        let addr = listener.local_addr().expect("the SMTP sink's address");
        let (count_tx, count) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            count: count_tx,
        });
        let (shutdown, stopped) = oneshot::channel();
        let task = tokio::spawn(accept(listener, shared.clone(), stopped));
        SmtpSink {
            addr,
            shared,
            count,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.shared.state().messages.clone()
    }

    /// Waits until at least `n` messages arrived or `timeout` passed, and
    /// returns the messages (fewer than `n` on timeout: assert the length).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut count = self.count.clone();
        let _ = tokio::time::timeout(timeout, count.wait_for(|c| *c >= n)).await;
        self.messages()
    }

    /// Answers the next `n` messages with `code` (451: try again later; 550:
    /// mailbox unavailable) to their `MAIL FROM`, so they are not kept.
    pub fn reject_next(&self, n: usize, code: u16) {
        let mut state = self.shared.state();
        state.rejections.extend(std::iter::repeat_n(code, n));
    }

    /// Closes the port and every open connection; new connections are then
    /// refused. Returns once the port is free again.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                if let Ok((stream, peer)) = accepted {
                    // Replies go out in several small writes: without this,
                    // Nagle's algorithm and the client's delayed ACK add
                    // ~40 ms to every exchange.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(stream, peer.ip(), shared.clone()));
                }
            }
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve(stream: TcpStream, peer: IpAddr, shared: Arc<Shared>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut session = SessionBuilder::new("recapp-smtp-sink").build(peer, Collector::new(shared));
    write.write_all(&session.greeting().buffer()?).await?;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if (&mut read)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await?
            == 0
        {
            return Ok(());
        }
        let response: Response = session.process(&line);
        match response.action {
            Action::NoReply => {}
            Action::Reply | Action::UpgradeTls => write.write_all(&response.buffer()?).await?,
            Action::Close => {
                write.write_all(&response.buffer()?).await?;
                return write.shutdown().await;
            }
        }
    }
}

/// Gathers one connection's messages into the shared state.
struct Collector {
    shared: Arc<Shared>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Collector {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl Handler for Collector {
    // Refusals are answered here: mailin keeps a session in the DATA state
    // after a refused end of data, so that would desynchronise the client.
    fn mail(&mut self, _ip: IpAddr, _domain: &str, _from: &str) -> Response {
        match self.shared.state().rejections.pop_front() {
            Some(code) if code < 500 => {
                Response::custom(code, "Temporary failure, try again later".to_owned())
            }
            Some(code) => Response::custom(code, "Mailbox unavailable".to_owned()),
            None => mailin::response::OK,
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let data = String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned();
        let mut state = self.shared.state();
        state.messages.push(ReceivedMail {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data,
        });
        let count = state.messages.len();
        drop(state);
        self.shared.count.send_replace(count);
        mailin::response::OK
    }
}

impl ReceivedMail {
    /// The first header `name` (case-insensitive), unfolded. Encoded words
    /// (`=?utf-8?...`) are left as they are.
    pub fn header(&self, name: &str) -> Option<String> {
        header(split_head(&self.data).0, name)
    }

    /// The decoded `text/plain` part (or the whole body of a plain message).
    pub fn text_body(&self) -> Option<String> {
        find_part(&self.data, "text/plain")
    }

    /// The decoded `text/html` part.
    pub fn html_body(&self) -> Option<String> {
        find_part(&self.data, "text/html")
    }
}

/// `(headers, body)` of an entity.
fn split_head(entity: &str) -> (&str, &str) {
    entity
        .split_once("\r\n\r\n")
        .or_else(|| entity.split_once("\n\n"))
        .unwrap_or((entity, ""))
}

fn header(head: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in head.lines() {
        let continues = line.starts_with(' ') || line.starts_with('\t');
        match (&mut found, continues) {
            (Some(value), true) => {
                value.push(' ');
                value.push_str(line.trim());
            }
            (Some(_), false) => break,
            (None, false) => {
                if let Some((key, value)) = line.split_once(':')
                    && key.trim().eq_ignore_ascii_case(name)
                {
                    found = Some(value.trim().to_owned());
                }
            }
            (None, true) => {}
        }
    }
    found
}

/// A parameter of a header value: `boundary` in `multipart/alternative;
/// boundary="abc"`.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (key, v) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn find_part(entity: &str, mime: &str) -> Option<String> {
    let (head, body) = split_head(entity);
    let content_type = header(head, "Content-Type").unwrap_or_else(|| "text/plain".into());
    let kind = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if kind.starts_with("multipart/") {
        let boundary = parameter(&content_type, "boundary")?;
        let delimiter = format!("--{boundary}");
        return body
            .split(delimiter.as_str())
            .skip(1)
            .take_while(|part| !part.starts_with("--"))
            .find_map(|part| find_part(part.trim_start_matches(['\r', '\n']), mime));
    }
    if kind != mime {
        return None;
    }
    let encoding = header(head, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = body.strip_suffix("\r\n").unwrap_or(body);
    match encoding.as_str() {
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .ok()?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        "quoted-printable" => Some(decode_quoted_printable(body)),
        _ => Some(body.to_owned()),
    }
}

/// RFC 2045 quoted-printable: `=XX` bytes and `=` soft line breaks.
fn decode_quoted_printable(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if bytes[i + 1..].starts_with(b"\n") => i += 2,
            b'=' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_soft_breaks_and_escapes_are_decoded() {
        assert_eq!(
            decode_quoted_printable("https://x.test/accept?token=3Dab=\r\ncd caf=C3=A9"),
            "https://x.test/accept?token=abcd café"
        );
    }

    #[test]
    fn parts_of_a_multipart_message_are_found_and_decoded() {
        let mail = ReceivedMail {
            from: "a@x".into(),
            to: vec!["b@x".into()],
            data: "Subject: Hi\r\n there\r\nContent-Type: multipart/alternative;\r\n \
                   boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\nli=\r\nnk\r\n--b1\r\n\
                   Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                   PHA+aGk8L3A+\r\n--b1--\r\n"
                .into(),
        };
        assert_eq!(mail.header("subject").as_deref(), Some("Hi there"));
        assert_eq!(mail.text_body().as_deref(), Some("link"));
        assert_eq!(mail.html_body().as_deref(), Some("<p>hi</p>"));
    }
}
