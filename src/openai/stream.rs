//! Streaming chat completions: server-sent events parsed in Rust (eventsource-stream), handed to
//! JS one chunk at a time.
//!
//! A stream holds its queue slot until it ends: `[DONE]`, an error, or the JS side leaving the
//! loop early (which drops the stream here, aborting the HTTP request and freeing the slot at
//! once). Retries happen only before the first byte, in `send_with_retries`. Each wait for the
//! next chunk is bounded by `requestTimeout`. The usage chunk (`stream_options.include_usage`)
//! feeds the token counts; the call is counted once, when the stream ends.

// ApiError travels only on the failure path, where its size costs nothing worth a Box.
#![allow(clippy::result_large_err)]

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use http_body_util::BodyDataStream;
use serde_json::Value;

use super::accounting::total_tokens;
use super::client::{connection_error, ApiError, OpenAiPool};

type Events = Pin<
    Box<
        dyn Stream<Item = Result<eventsource_stream::Event, EventStreamError<hyper::Error>>> + Send,
    >,
>;

pub struct ChatStream {
    pool: Arc<OpenAiPool>,
    events: Events,
    _held: super::client::Held,
    started: Instant,
    /// Set once the outcome has been counted.
    counted: bool,
}

impl ChatStream {
    pub async fn open(
        pool: Arc<OpenAiPool>,
        path: &str,
        body: String,
        model: Option<String>,
        held_slot: Option<u32>,
        place: Option<super::client::Place>,
    ) -> Result<ChatStream, ApiError> {
        let started = Instant::now();
        let (deadline, held_model) = pool.call_bounds(started, held_slot)?;
        pool.count_model(Some(&body), model, held_model);
        match pool
            .send_with_retries(
                crate::http::Method::POST,
                path,
                Some(&body),
                held_slot,
                place,
                deadline,
            )
            .await
        {
            Ok((response, held)) => Ok(ChatStream {
                events: Box::pin(
                    without_bom(BodyDataStream::new(response.into_body())).eventsource(),
                ),
                pool,
                _held: held,
                started,
                counted: false,
            }),
            Err(error) => {
                pool.accounting
                    .outcomes
                    .record(false, started.elapsed().as_secs_f64() * 1000.0);
                Err(error)
            }
        }
    }

    fn finish(&mut self, succeeded: bool) {
        if !self.counted {
            self.counted = true;
            self.pool
                .accounting
                .outcomes
                .record(succeeded, self.started.elapsed().as_secs_f64() * 1000.0);
        }
    }

    /// The next chunk's JSON text, or `None` once the stream has ended.
    pub async fn next(&mut self) -> Result<Option<String>, ApiError> {
        crate::faults::trip(crate::faults::Fault::StreamRead);
        let idle = self.pool.config.request_timeout;
        loop {
            let event = match tokio::time::timeout(idle, self.events.next()).await {
                Err(_) => {
                    self.finish(false);
                    return Err(ApiError::timeout(format!(
                        "no stream data for {} ms",
                        idle.as_millis()
                    )));
                }
                Ok(None) => {
                    self.finish(true);
                    return Ok(None);
                }
                Ok(Some(Err(EventStreamError::Transport(err)))) => {
                    self.finish(false);
                    return Err(connection_error(&crate::http::describe(&err)));
                }
                Ok(Some(Err(err))) => {
                    self.finish(false);
                    return Err(ApiError::local(
                        "APIError",
                        "STREAM_ERROR",
                        format!("malformed event stream: {err}"),
                    ));
                }
                Ok(Some(Ok(event))) => event,
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                self.finish(true);
                return Ok(None);
            }
            let parsed: Value = match serde_json::from_str(data) {
                Ok(value) => value,
                Err(_) => {
                    self.finish(false);
                    return Err(ApiError::local(
                        "APIError",
                        "STREAM_ERROR",
                        "a stream event is not JSON",
                    ));
                }
            };
            if let Some(error) = parsed.get("error") {
                self.finish(false);
                return Err(ApiError::from_stream_error(error));
            }
            if let Some(tokens) = total_tokens(&parsed) {
                self.pool.accounting.add_tokens(tokens);
            }
            return Ok(Some(data.to_string()));
        }
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The body with a leading UTF-8 byte order mark taken off (the SSE grammar allows one), even
/// when it arrives split across chunks: eventsource-stream 0.2.3 slices a BOM it sees at byte 1
/// of its 3, and panics.
fn without_bom<S, E>(body: S) -> impl Stream<Item = Result<bytes::Bytes, E>> + Send
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send + Unpin,
    E: Send,
{
    futures::stream::unfold(
        (body, Some(Vec::new())),
        |(mut body, mut head)| async move {
            loop {
                let Some(pending) = head.as_mut() else {
                    let next = body.next().await?;
                    return Some((next, (body, None)));
                };
                let chunk = match body.next().await {
                    Some(Ok(chunk)) => Some(chunk),
                    Some(Err(err)) => return Some((Err(err), (body, None))),
                    None => None,
                };
                let ended = chunk.is_none();
                if let Some(chunk) = chunk {
                    pending.extend_from_slice(&chunk);
                }
                let undecided = pending.len() < BOM.len() && BOM.starts_with(pending) && !ended;
                if undecided {
                    continue;
                }
                let bytes = std::mem::take(pending);
                let rest = bytes.strip_prefix(BOM).unwrap_or(&bytes).to_vec();
                if rest.is_empty() && ended {
                    return None;
                }
                return Some((Ok(bytes::Bytes::from(rest)), (body, None)));
            }
        },
    )
}

impl Drop for ChatStream {
    /// Left early: the client chose to stop; the call still counts, as a success.
    fn drop(&mut self) {
        self.finish(true);
    }
}

/// Reads every event of `body` as a stream is read (for the fuzz tests).
#[cfg(test)]
pub(crate) fn read_all_events<S>(body: S) -> usize
where
    S: Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Unpin,
{
    use eventsource_stream::Eventsource;
    futures::executor::block_on(without_bom(body).eventsource().count())
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    fn read(chunks: &[&'static [u8]]) -> Vec<u8> {
        let body = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, ()>(bytes::Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        );
        futures::executor::block_on(
            super::without_bom(body)
                .map(|chunk| chunk.unwrap().to_vec())
                .concat(),
        )
    }

    #[test]
    fn a_byte_order_mark_is_taken_off_however_it_is_split() {
        assert_eq!(read(&[b"\xEF\xBB\xBFdata: 1\n\n"]), b"data: 1\n\n");
        assert_eq!(read(&[b"\xEF", b"\xBB", b"\xBFdata: 1"]), b"data: 1");
        assert_eq!(read(&[b"", b"\xEF\xBB", b"\xBF", b"x"]), b"x");
        assert_eq!(read(&[b"data: \xEF\xBB\xBF"]), b"data: \xEF\xBB\xBF");
        assert_eq!(read(&[b"\xEF"]), b"\xEF");
        assert_eq!(read(&[]), b"");
    }

    #[test]
    fn the_event_reader_takes_a_stream_that_began_with_one() {
        let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from_static(
            b"\xEF\xBB\xBFdata: {\"a\":1}\n\n",
        ))]);
        use eventsource_stream::Eventsource;
        let events: Vec<_> =
            futures::executor::block_on(super::without_bom(body).eventsource().collect());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].as_ref().unwrap().data, "{\"a\":1}");
    }
}
