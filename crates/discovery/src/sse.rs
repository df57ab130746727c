//! Server-sent events read from a response body as it arrives in pieces: the answers to MCP
//! requests on kept connections (`direct`, `kept_post`).

/// An event, or the bytes before its end, that is larger than the reader's limit.
#[derive(Debug, thiserror::Error)]
#[error("an event of the answer is larger than {0} bytes")]
pub(crate) struct EventTooLarge(pub(crate) usize);

/// The events of a stream, as its bytes arrive.
pub(crate) struct SseBuffer {
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no event end, so that a large event arriving in
    /// many pieces is scanned once, not once per piece.
    scanned: usize,
    /// Most bytes held before an event ends.
    limit: usize,
}

/// The fields of one event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) event: Option<String>,
    pub(crate) data: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) retry: Option<u64>,
}

impl SseBuffer {
    /// A reader that holds at most `limit` bytes of an unfinished event.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            pending: Vec::new(),
            scanned: 0,
            limit,
        }
    }

    /// Adds the next piece of the stream.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), EventTooLarge> {
        if self.pending.len() + chunk.len() > self.limit {
            return Err(EventTooLarge(self.limit));
        }
        self.pending.extend_from_slice(chunk);
        Ok(())
    }

    /// The next complete event (comments and blank blocks skipped).
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        loop {
            // An end (at most 4 bytes) may straddle the scanned part and the new bytes.
            let from = self.scanned.saturating_sub(3);
            let Some((end, skip)) = event_end(&self.pending[from..]) else {
                self.scanned = self.pending.len();
                return None;
            };
            let end = from + end;
            self.scanned = 0;
            let block: Vec<u8> = self.pending.drain(..end + skip).take(end).collect();
            let event = parse(&String::from_utf8_lossy(&block));
            if event != Event::default() {
                return Some(event);
            }
        }
    }

    /// The data of the next complete event that has any.
    pub(crate) fn next_data(&mut self) -> Option<String> {
        loop {
            let event = self.next_event()?;
            if let Some(data) = event.data.filter(|d| !d.is_empty()) {
                return Some(data);
            }
        }
    }
}

/// The fields of one event's lines (the SSE format: `field: value`, `:` starts a comment).
fn parse(text: &str) -> Event {
    let mut event = Event::default();
    for line in text.lines() {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut event.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => event.data = Some(value.to_owned()),
            },
            "event" => event.event = Some(value.to_owned()),
            "id" => event.id = Some(value.to_owned()),
            "retry" => event.retry = value.parse().ok().or(event.retry),
            _ => {}
        }
    }
    event
}

/// Where the first event in `buf` ends, and the length of the blank line that ends it.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datas(pieces: &[&str]) -> Vec<String> {
        let mut buffer = SseBuffer::new(1 << 20);
        let mut out = Vec::new();
        for piece in pieces {
            buffer.push(piece.as_bytes()).expect("fits");
            while let Some(data) = buffer.next_data() {
                out.push(data);
            }
        }
        out
    }

    #[test]
    fn events_are_read_whatever_the_pieces() {
        let stream =
            "id: 0\nretry: 3000\ndata:\n\ndata: {\"a\":1}\n\nevent: message\ndata: x\ndata: y\n\n";
        let whole = datas(&[stream]);
        assert_eq!(whole, ["{\"a\":1}", "x\ny"]);
        // Cut at every byte: the same events.
        let bytes: Vec<String> = stream.chars().map(String::from).collect();
        let pieces: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(datas(&pieces), whole);
    }

    #[test]
    fn every_field_is_read() {
        let mut buffer = SseBuffer::new(1024);
        buffer
            .push(b": a comment\n\nid: 7\nretry: 3000\ndata:\n\nevent: message\ndata: x\n\n")
            .expect("fits");
        assert_eq!(
            buffer.next_event(),
            Some(Event {
                id: Some("7".into()),
                retry: Some(3000),
                data: Some(String::new()),
                ..Event::default()
            })
        );
        assert_eq!(
            buffer.next_event(),
            Some(Event {
                event: Some("message".into()),
                data: Some("x".into()),
                ..Event::default()
            })
        );
        assert_eq!(buffer.next_event(), None);
    }

    #[test]
    fn crlf_line_ends_and_unfinished_events() {
        assert_eq!(datas(&["data: a\r\n\r\ndata: b"]), ["a"]);
        assert_eq!(datas(&["data: a\r\n\r", "\n", "data: b\n\n"]), ["a", "b"]);
    }

    #[test]
    fn an_oversized_event_is_refused() {
        let mut buffer = SseBuffer::new(64);
        buffer.push(&[b'x'; 64]).expect("exactly the limit fits");
        assert!(buffer.push(b"x").is_err());
    }
}
