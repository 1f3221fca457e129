//! A scripted server for the driver's unit tests: it reads frontend messages and, at each Sync or
//! simple Query, answers what the test's script says (backend messages, or the end of the
//! connection). No Postgres needed.

use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::socket::Stream;

/// What the server does at a request's end (its Sync, or a simple Query).
pub enum Reply {
    Send(Vec<u8>),
    /// Send these, then close the connection.
    SendThenClose(Vec<u8>),
    /// Answer nothing (a server that stopped answering).
    Silence,
}

/// Requests seen so far, by their closing message's tag (b'S' or b'Q'), and Terminate.
#[derive(Default, Clone)]
pub struct Seen(pub Arc<Mutex<Vec<u8>>>);

impl Seen {
    pub fn tags(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

/// A connected client stream, and the scripted server at its other end.
pub async fn serve(script: impl FnMut(usize, u8) -> Reply + Send + 'static) -> (Stream, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Seen::default();
    let server_seen = seen.clone();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        run(socket, script, server_seen).await;
    });
    let client = TcpStream::connect(address).await.unwrap();
    (Stream::Tcp(Arc::new(client)), seen)
}

async fn run(mut socket: TcpStream, mut script: impl FnMut(usize, u8) -> Reply, seen: Seen) {
    let mut buf = BytesMut::new();
    let mut requests = 0;
    loop {
        while buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() < len + 1 {
                break;
            }
            let tag = buf[0];
            let _ = buf.split_to(len + 1);
            if !matches!(tag, b'S' | b'Q' | b'X') {
                continue;
            }
            seen.0.lock().unwrap().push(tag);
            if tag == b'X' {
                return;
            }
            let reply = script(requests, tag);
            requests += 1;
            match reply {
                Reply::Send(bytes) => socket.write_all(&bytes).await.unwrap(),
                Reply::SendThenClose(bytes) => {
                    let _ = socket.write_all(&bytes).await;
                    return;
                }
                Reply::Silence => {}
            }
        }
        if socket.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
    }
}

/// One backend message.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn ready(status: u8) -> Vec<u8> {
    message(b'Z', &[status])
}

pub fn bind_complete() -> Vec<u8> {
    message(b'2', &[])
}

pub fn command_complete(tag: &str) -> Vec<u8> {
    let mut body = tag.as_bytes().to_vec();
    body.push(0);
    message(b'C', &body)
}

/// An ErrorResponse with its severity, SQLSTATE and message.
pub fn error(severity: &str, code: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (tag, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', text),
    ] {
        body.push(tag);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    message(b'E', &body)
}

/// The answer of one Bind/Execute that returns no rows, then ReadyForQuery with `status`.
pub fn executed(status: u8) -> Vec<u8> {
    [bind_complete(), command_complete("SELECT 0"), ready(status)].concat()
}

/// A DataRow of text values.
pub fn data_row(values: &[&str]) -> Vec<u8> {
    let mut body = (values.len() as u16).to_be_bytes().to_vec();
    for value in values {
        body.extend_from_slice(&(value.len() as i32).to_be_bytes());
        body.extend_from_slice(value.as_bytes());
    }
    message(b'D', &body)
}

/// CopyInResponse: the server waits for COPY data (text format, no columns).
pub fn copy_in() -> Vec<u8> {
    message(b'G', &[0, 0, 0])
}
