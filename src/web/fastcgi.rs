//! The FastCGI 1.0 record layer for a RESPONDER: decoding records and name-value pairs,
//! encoding the records an application sends, and [`Connection`], a per-connection state
//! machine that is fed bytes and says what happened ([`Event`]).
//!
//! This module is pure: it never touches a socket, a clock or a thread, and never calls
//! the [`Handler`](super::Handler); `server.rs` does that. Nothing here panics on input:
//! a malformed stream becomes [`Event::Violation`] and the connection is closed.
//!
//! Rules (FastCGI 1.0, with getacert's choices):
//! - only the RESPONDER role is served; any other role gets `FCGI_UNKNOWN_ROLE`;
//! - one request at a time per connection (`FCGI_MPXS_CONNS = 0`): a second
//!   `BEGIN_REQUEST` while one is being read gets `FCGI_CANT_MPX_CONN`;
//! - `ABORT_REQUEST` ends the request at once, the handler is never asked; one for the
//!   request already handed over (and not yet [`Connection::answered`]) becomes
//!   [`Event::Abort`], so the caller can drop it before anything is signed;
//! - records for a request id that is not being read are ignored;
//! - the encoded parameters of one request may take at most [`Limits::max_params`]
//!   bytes; more closes the connection (the web server answers 502): a web server that
//!   sends that much is misconfigured or hostile, and no handler could answer it usefully;
//! - a body over [`Limits::max_body`] is not read further: the request is handed over at
//!   once as `body_too_large` (the handler answers 413) with `keep_conn` cleared, and the
//!   connection is finished, so the rest of the body is never waited for.

use super::{Request, Response};

pub const VERSION_1: u8 = 1;
pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;
pub const DATA: u8 = 8;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;
const MAX_TYPE: u8 = UNKNOWN_TYPE;

pub const ROLE_RESPONDER: u16 = 1;
pub const FLAG_KEEP_CONN: u8 = 1;

pub const REQUEST_COMPLETE: u8 = 0;
pub const CANT_MPX_CONN: u8 = 1;
pub const UNKNOWN_ROLE: u8 = 3;

pub const HEADER_LEN: usize = 8;
/// The largest content one record can carry.
pub const MAX_CONTENT: usize = 0xffff;
/// The default cap on the encoded parameters of one request.
pub const DEFAULT_MAX_PARAMS: usize = 64 * 1024;

/// One record as it appears on the wire; `content` excludes the padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub version: u8,
    pub kind: u8,
    pub request_id: u16,
    pub content: &'a [u8],
}

/// What made the connection unusable. The connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    UnsupportedVersion(u8),
    ShortBeginRequest { request_id: u16, len: usize },
    MalformedNameValuePairs { request_id: u16 },
    ParamsTooLarge { request_id: u16, limit: usize },
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::UnsupportedVersion(v) => {
                write!(f, "FastCGI record with version {v} (only 1 exists)")
            }
            ProtocolError::ShortBeginRequest { request_id, len } => write!(
                f,
                "BEGIN_REQUEST for request {request_id} has {len} content bytes, expected 8"
            ),
            ProtocolError::MalformedNameValuePairs { request_id } => {
                write!(f, "malformed name-value pairs in request {request_id}")
            }
            ProtocolError::ParamsTooLarge { request_id, limit } => {
                write!(f, "parameters of request {request_id} exceed {limit} bytes")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Splits the first record off `buf`. `Ok(None)`: not all of it has arrived yet.
/// Returns the record and the number of bytes it took, padding included.
pub fn parse_record(buf: &[u8]) -> Result<Option<(Record<'_>, usize)>, ProtocolError> {
    let Some(&[version, kind, id1, id0, len1, len0, padding, _reserved]) = buf.first_chunk() else {
        return Ok(None);
    };
    if version != VERSION_1 {
        return Err(ProtocolError::UnsupportedVersion(version));
    }
    let len = usize::from(u16::from_be_bytes([len1, len0]));
    let total = HEADER_LEN + len + usize::from(padding);
    let Some(content) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    if buf.len() < total {
        return Ok(None);
    }
    let request_id = u16::from_be_bytes([id1, id0]);
    Ok(Some((
        Record {
            version,
            kind,
            request_id,
            content,
        },
        total,
    )))
}

/// Decodes a complete name-value pair stream (1- or 4-byte lengths). Names and values are
/// kept as bytes. `None` when a length runs past the end.
pub fn decode_pairs(mut input: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    fn length(input: &mut &[u8]) -> Option<usize> {
        let (&first, rest) = input.split_first()?;
        if first & 0x80 == 0 {
            *input = rest;
            return Some(usize::from(first));
        }
        let (&[b0, b1, b2, b3], rest) = input.split_first_chunk()?;
        *input = rest;
        usize::try_from(u32::from_be_bytes([b0 & 0x7f, b1, b2, b3])).ok()
    }
    fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = input.split_at_checked(n)?;
        *input = rest;
        Some(head)
    }
    let mut pairs = Vec::new();
    while !input.is_empty() {
        let name_len = length(&mut input)?;
        let value_len = length(&mut input)?;
        let name = take(&mut input, name_len)?;
        let value = take(&mut input, value_len)?;
        pairs.push((name.to_vec(), value.to_vec()));
    }
    Some(pairs)
}

/// Encodes name-value pairs (the inverse of [`decode_pairs`]).
pub fn encode_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    fn length(out: &mut Vec<u8>, n: usize) {
        match u8::try_from(n) {
            Ok(short) if short < 0x80 => out.push(short),
            // Longer than 2^31 - 1 cannot be encoded; such pairs never occur here.
            _ => out.extend_from_slice(&(n as u32 | 0x8000_0000).to_be_bytes()),
        }
    }
    let mut out = Vec::new();
    for (name, value) in pairs {
        length(&mut out, name.len());
        length(&mut out, value.len());
        out.extend_from_slice(name);
        out.extend_from_slice(value);
    }
    out
}

/// Appends one record, padded to a multiple of 8 bytes. `content` must fit one record;
/// longer content is cut at [`MAX_CONTENT`] (use [`encode_stream`] for that).
pub fn encode_record(out: &mut Vec<u8>, kind: u8, request_id: u16, content: &[u8]) {
    let content = content.get(..MAX_CONTENT).unwrap_or(content);
    let len = u16::try_from(content.len()).unwrap_or(u16::MAX);
    let padding = (8 - content.len() % 8) % 8;
    let [id1, id0] = request_id.to_be_bytes();
    let [len1, len0] = len.to_be_bytes();
    out.extend_from_slice(&[VERSION_1, kind, id1, id0, len1, len0, padding as u8, 0]);
    out.extend_from_slice(content);
    out.resize(out.len() + padding, 0);
}

/// Appends a whole stream (STDOUT or STDERR): as many records as needed, each at most
/// [`MAX_CONTENT`] bytes, then the empty record that ends the stream.
pub fn encode_stream(out: &mut Vec<u8>, kind: u8, request_id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT) {
        encode_record(out, kind, request_id, chunk);
    }
    encode_record(out, kind, request_id, &[]);
}

/// Appends an END_REQUEST record.
pub fn encode_end_request(out: &mut Vec<u8>, request_id: u16, app_status: u32, protocol_status: u8) {
    let [a3, a2, a1, a0] = app_status.to_be_bytes();
    encode_record(
        out,
        END_REQUEST,
        request_id,
        &[a3, a2, a1, a0, protocol_status, 0, 0, 0],
    );
}

/// The bytes that answer request `request_id`: the response on STDOUT, then END_REQUEST.
pub fn encode_response(request_id: u16, response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    encode_stream(&mut out, STDOUT, request_id, &response.to_cgi_bytes());
    encode_end_request(&mut out, request_id, 0, REQUEST_COMPLETE);
    out
}

/// Caps and advertised values for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded parameter stream of one request.
    pub max_params: usize,
    /// Largest body handed to the handler.
    pub max_body: usize,
    /// Answered for `FCGI_MAX_CONNS`: the connections the daemon holds open at once.
    pub max_conns: usize,
    /// Answered for `FCGI_MAX_REQS`: the requests it answers at once (workers + queue).
    pub max_reqs: usize,
}

/// What the caller must do, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// Send these bytes to the web server now.
    Write(Vec<u8>),
    /// A request has arrived whole: answer it with [`encode_response`], then close the
    /// connection when `keep_conn` is false.
    Request {
        id: u16,
        keep_conn: bool,
        request: Request,
    },
    /// The web server asked to close the connection once a request ended (after
    /// ABORT_REQUEST or a refused role). Close it after sending what came before.
    Close,
    /// ABORT_REQUEST for the request handed over in [`Event::Request`] and not yet
    /// answered: drop it if it has not been acted on, and answer END_REQUEST.
    Abort { id: u16 },
    /// The web server broke the protocol: close the connection.
    Violation(ProtocolError),
}

/// The request being read.
#[derive(Debug)]
struct Active {
    id: u16,
    keep_conn: bool,
    params: Vec<u8>,
    params_done: bool,
    body: Vec<u8>,
    body_too_large: bool,
    stdin_done: bool,
}

/// One FastCGI connection, as seen from the application. Feed it what the socket reads.
#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    buf: Vec<u8>,
    active: Option<Active>,
    /// The request handed over and not yet answered.
    answering: Option<u16>,
    /// Nothing more is accepted: a close is due.
    finished: bool,
}

impl Connection {
    pub fn new(limits: Limits) -> Connection {
        Connection {
            limits,
            buf: Vec::new(),
            active: None,
            answering: None,
            finished: false,
        }
    }

    /// The caller has answered (or dropped) the request handed over last: a later
    /// ABORT_REQUEST for its id is ignored.
    pub fn answered(&mut self) {
        self.answering = None;
    }

    /// True while a request is partly read or bytes of a record are pending: an end of
    /// stream now would cut something off.
    pub fn mid_request(&self) -> bool {
        self.active.is_some() || !self.buf.is_empty()
    }

    /// True once the connection must be closed; later input is ignored.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Takes bytes read from the web server and returns what to do about them.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        if self.finished {
            return events;
        }
        // Work on the buffer outside `self` so records can borrow it.
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(data);
        let mut used = 0;
        while !self.finished {
            match parse_record(buf.get(used..).unwrap_or_default()) {
                Ok(None) => break,
                Ok(Some((record, len))) => {
                    used += len;
                    self.on_record(record, &mut events);
                }
                Err(e) => self.fail(e, &mut events),
            }
        }
        if !self.finished {
            buf.drain(..used.min(buf.len()));
            self.buf = buf;
        }
        events
    }

    fn fail(&mut self, error: ProtocolError, events: &mut Vec<Event>) {
        self.finished = true;
        self.active = None;
        events.push(Event::Violation(error));
    }

    fn on_record(&mut self, record: Record<'_>, events: &mut Vec<Event>) {
        let Record {
            kind,
            request_id: id,
            content,
            ..
        } = record;
        if id == 0 || kind == 0 || kind > MAX_TYPE {
            return self.on_management(kind, content, events);
        }
        let active_id = self.active.as_ref().map(|a| a.id);
        match kind {
            BEGIN_REQUEST => self.on_begin(id, content, events),
            ABORT_REQUEST if active_id == Some(id) => {
                let keep_conn = self.active.take().is_some_and(|a| a.keep_conn);
                self.end(id, REQUEST_COMPLETE, keep_conn, events);
            }
            ABORT_REQUEST if self.answering == Some(id) => {
                self.answering = None;
                events.push(Event::Abort { id });
            }
            PARAMS if active_id == Some(id) => self.on_params(content, events),
            STDIN if active_id == Some(id) => self.on_stdin(content, events),
            // DATA (FILTER role only), application-to-server types and records for a
            // request that is not being read: ignored.
            _ => {}
        }
    }

    fn on_management(&mut self, kind: u8, content: &[u8], events: &mut Vec<Event>) {
        let mut out = Vec::new();
        if kind != GET_VALUES {
            encode_record(&mut out, UNKNOWN_TYPE, 0, &[kind, 0, 0, 0, 0, 0, 0, 0]);
            return events.push(Event::Write(out));
        }
        let Some(asked) = decode_pairs(content) else {
            return self.fail(ProtocolError::MalformedNameValuePairs { request_id: 0 }, events);
        };
        let conns = self.limits.max_conns.to_string();
        let reqs = self.limits.max_reqs.to_string();
        let answers: Vec<(&[u8], &[u8])> = asked
            .iter()
            .filter_map(|(name, _)| {
                let value: &[u8] = match name.as_slice() {
                    b"FCGI_MAX_CONNS" => conns.as_bytes(),
                    b"FCGI_MAX_REQS" => reqs.as_bytes(),
                    b"FCGI_MPXS_CONNS" => b"0",
                    _ => return None,
                };
                Some((name.as_slice(), value))
            })
            .collect();
        encode_record(&mut out, GET_VALUES_RESULT, 0, &encode_pairs(answers));
        events.push(Event::Write(out));
    }

    fn on_begin(&mut self, id: u16, content: &[u8], events: &mut Vec<Event>) {
        let Some(&[r1, r0, flags, ..]) = content.first_chunk::<8>() else {
            let len = content.len();
            return self.fail(ProtocolError::ShortBeginRequest { request_id: id, len }, events);
        };
        let keep_conn = flags & FLAG_KEEP_CONN != 0;
        if self.active.is_some() {
            // Closing would cut off the request being read: refuse this one only.
            return self.end(id, CANT_MPX_CONN, true, events);
        }
        if u16::from_be_bytes([r1, r0]) != ROLE_RESPONDER {
            return self.end(id, UNKNOWN_ROLE, keep_conn, events);
        }
        self.active = Some(Active {
            id,
            keep_conn,
            params: Vec::new(),
            params_done: false,
            body: Vec::new(),
            body_too_large: false,
            stdin_done: false,
        });
    }

    fn on_params(&mut self, content: &[u8], events: &mut Vec<Event>) {
        let limit = self.limits.max_params;
        let Some(active) = self.active.as_mut().filter(|a| !a.params_done) else {
            return;
        };
        if content.is_empty() {
            active.params_done = true;
        } else if active.params.len() + content.len() > limit {
            let request_id = active.id;
            return self.fail(ProtocolError::ParamsTooLarge { request_id, limit }, events);
        } else {
            active.params.extend_from_slice(content);
        }
        self.maybe_complete(events);
    }

    fn on_stdin(&mut self, content: &[u8], events: &mut Vec<Event>) {
        let max_body = self.limits.max_body;
        let Some(active) = self.active.as_mut().filter(|a| !a.stdin_done) else {
            return;
        };
        if content.is_empty() {
            active.stdin_done = true;
        } else if active.body.len() + content.len() > max_body {
            // Refused as it arrives: the rest is never read, so the connection ends
            // with the answer.
            active.body_too_large = true;
            active.body = Vec::new();
            active.stdin_done = true;
            active.keep_conn = false;
        } else {
            active.body.extend_from_slice(content);
        }
        self.maybe_complete(events);
    }

    fn maybe_complete(&mut self, events: &mut Vec<Event>) {
        if !self
            .active
            .as_ref()
            .is_some_and(|a| a.params_done && a.stdin_done)
        {
            return;
        }
        let Some(active) = self.active.take() else {
            return;
        };
        let Some(params) = decode_pairs(&active.params) else {
            let request_id = active.id;
            return self.fail(ProtocolError::MalformedNameValuePairs { request_id }, events);
        };
        // After a request that closes the connection nothing more may come.
        self.finished = !active.keep_conn;
        self.answering = Some(active.id);
        events.push(Event::Request {
            id: active.id,
            keep_conn: active.keep_conn,
            request: Request {
                params,
                body: active.body,
                body_too_large: active.body_too_large,
                abandoned: super::Abandoned::default(),
            },
        });
    }

    fn end(&mut self, id: u16, protocol_status: u8, keep_conn: bool, events: &mut Vec<Event>) {
        let mut out = Vec::new();
        encode_end_request(&mut out, id, 0, protocol_status);
        events.push(Event::Write(out));
        if !keep_conn {
            self.finished = true;
            self.active = None;
            events.push(Event::Close);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_params: 1024,
        max_body: 16,
        max_conns: 4,
        max_reqs: 3,
    };

    fn record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(&mut out, kind, id, content);
        out
    }

    fn begin(id: u16, role: u16, flags: u8) -> Vec<u8> {
        let [r1, r0] = role.to_be_bytes();
        record(BEGIN_REQUEST, id, &[r1, r0, flags, 0, 0, 0, 0, 0])
    }

    fn params(id: u16, pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        [
            record(PARAMS, id, &encode_pairs(pairs.iter().copied())),
            record(PARAMS, id, &[]),
        ]
        .concat()
    }

    fn stdin(id: u16, body: &[u8]) -> Vec<u8> {
        [record(STDIN, id, body), record(STDIN, id, &[])].concat()
    }

    /// A whole request: BEGIN, one param, body, stream ends.
    fn request(id: u16, keep_conn: bool, body: &[u8]) -> Vec<u8> {
        let flags = if keep_conn { FLAG_KEEP_CONN } else { 0 };
        [
            begin(id, ROLE_RESPONDER, flags),
            params(id, &[(b"REQUEST_METHOD", b"POST")]),
            stdin(id, body),
        ]
        .concat()
    }

    fn feed(bytes: &[u8]) -> (Connection, Vec<Event>) {
        let mut conn = Connection::new(LIMITS);
        let events = conn.feed(bytes);
        (conn, events)
    }

    fn end_request(id: u16, protocol_status: u8) -> Vec<u8> {
        let mut out = Vec::new();
        encode_end_request(&mut out, id, 0, protocol_status);
        out
    }

    /// The request in `event`, or a panic naming what came instead.
    fn request_of(event: &Event) -> (u16, bool, &Request) {
        match event {
            Event::Request {
                id,
                keep_conn,
                request,
            } => (*id, *keep_conn, request),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn write_of(event: &Event) -> &[u8] {
        match event {
            Event::Write(bytes) => bytes,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn a_request_written_by_hand_is_decoded() {
        let bytes = [
            &[1, BEGIN_REQUEST, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0][..],
            &[1, PARAMS, 0, 1, 0, 19, 5, 0, 14, 3],
            b"REQUEST_METHODGET\0\0\0\0\0",
            &[1, PARAMS, 0, 1, 0, 0, 0, 0],
            &[1, STDIN, 0, 1, 0, 2, 0, 0],
            b"hi",
            &[1, STDIN, 0, 1, 0, 0, 0, 0],
        ]
        .concat();
        let (conn, events) = feed(&bytes);
        assert_eq!(events.len(), 1);
        let (id, keep_conn, req) = request_of(&events[0]);
        assert_eq!((id, keep_conn), (1, false));
        assert_eq!(req.params, vec![(b"REQUEST_METHOD".to_vec(), b"GET".to_vec())]);
        assert_eq!(req.body, b"hi");
        assert!(!req.body_too_large);
        assert!(conn.is_finished(), "keep_conn = 0: nothing more is read");
    }

    #[test]
    fn keep_alive_serves_two_sequential_requests_even_byte_by_byte() {
        let bytes = [request(1, true, b"first"), request(2, true, b"second")].concat();
        let (conn, events) = feed(&bytes);
        let bodies: Vec<_> = events.iter().map(|e| request_of(e).2.body.clone()).collect();
        assert_eq!(bodies, [b"first".to_vec(), b"second".to_vec()]);
        assert!(!conn.is_finished() && !conn.mid_request());

        let mut conn = Connection::new(LIMITS);
        let events: Vec<_> = bytes.iter().flat_map(|b| conn.feed(&[*b])).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(request_of(&events[1]).0, 2);
    }

    #[test]
    fn after_a_request_without_keep_conn_nothing_more_is_read() {
        let bytes = [request(1, false, b""), request(2, true, b"")].concat();
        let (_, events) = feed(&bytes);
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn params_split_inside_a_pair_across_records() {
        let encoded = encode_pairs([(&b"HTTP_HOST"[..], &b"example.org"[..]), (b"A", b"")]);
        let (head, tail) = encoded.split_at(5);
        let bytes = [
            begin(7, ROLE_RESPONDER, 0),
            record(PARAMS, 7, head),
            record(PARAMS, 7, tail),
            record(PARAMS, 7, &[]),
            stdin(7, b""),
        ]
        .concat();
        let (_, events) = feed(&bytes);
        let req = request_of(&events[0]).2;
        assert_eq!(req.param("HTTP_HOST"), Some(&b"example.org"[..]));
        assert_eq!(req.param("A"), Some(&b""[..]));
    }

    #[test]
    fn four_byte_lengths() {
        // name 3 bytes with a 4-byte length, value 200 bytes (needs a 4-byte length).
        let value = vec![b'v'; 200];
        let content = [&[0x80, 0, 0, 3, 0x80, 0, 0, 200][..], b"KEY", &value].concat();
        assert_eq!(
            decode_pairs(&content),
            Some(vec![(b"KEY".to_vec(), value.clone())])
        );
        assert_eq!(encode_pairs([(&b"KEY"[..], &value[..])])[..2], [3, 0x80]);
        let bytes = [
            begin(1, ROLE_RESPONDER, 0),
            record(PARAMS, 1, &content),
            record(PARAMS, 1, &[]),
            stdin(1, b""),
        ]
        .concat();
        let (_, events) = feed(&bytes);
        assert_eq!(request_of(&events[0]).2.param("KEY"), Some(&value[..]));
    }

    #[test]
    fn non_utf8_names_and_values_are_kept_with_the_others() {
        let pairs: [(&[u8], &[u8]); 3] = [
            (b"A", b"1"),
            (b"HTTP_X_\xff", b"\xfe\xfd"),
            (b"SSL_CLIENT_S_DN", b"CN=\xe9"),
        ];
        let bytes = [begin(1, ROLE_RESPONDER, 0), params(1, &pairs), stdin(1, b"")].concat();
        let (_, events) = feed(&bytes);
        let req = request_of(&events[0]).2;
        let expected: Vec<_> = pairs.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        assert_eq!(req.params, expected);
        assert_eq!(req.param_str("A"), Some("1"));
        assert_eq!(req.param_str("SSL_CLIENT_S_DN"), None);
    }

    #[test]
    fn get_values_is_answered_with_known_names_only() {
        let asked = encode_pairs([
            (&b"FCGI_MAX_CONNS"[..], &b""[..]),
            (b"FCGI_MAX_REQS", b""),
            (b"FCGI_MPXS_CONNS", b""),
            (b"SOMETHING_ELSE", b""),
        ]);
        let (conn, events) = feed(&record(GET_VALUES, 0, &asked));
        let answer = encode_pairs([
            (&b"FCGI_MAX_CONNS"[..], &b"4"[..]),
            (b"FCGI_MAX_REQS", b"3"),
            (b"FCGI_MPXS_CONNS", b"0"),
        ]);
        assert_eq!(write_of(&events[0]), record(GET_VALUES_RESULT, 0, &answer));
        assert_eq!(events.len(), 1);
        assert!(!conn.is_finished());
    }

    #[test]
    fn unknown_types_are_answered_with_unknown_type() {
        let cases: [(&str, u8, u16); 4] = [
            ("type above 11, management", 42, 0),
            ("type above 11, in a request", 200, 5),
            ("type 0", 0, 1),
            ("a request type sent as management", BEGIN_REQUEST, 0),
        ];
        for (name, kind, id) in cases {
            let (_, events) = feed(&record(kind, id, b"xyz"));
            let expected = record(UNKNOWN_TYPE, 0, &[kind, 0, 0, 0, 0, 0, 0, 0]);
            assert_eq!(events.len(), 1, "{name}");
            assert_eq!(write_of(&events[0]), expected, "{name}");
        }
    }

    #[test]
    fn other_roles_get_unknown_role() {
        for (role, flags) in [(2, 0), (3, FLAG_KEEP_CONN)] {
            let bytes = [begin(9, role, flags), params(9, &[]), stdin(9, b"")].concat();
            let (conn, events) = feed(&bytes);
            assert_eq!(write_of(&events[0]), end_request(9, UNKNOWN_ROLE));
            if flags == 0 {
                assert!(matches!(events[1], Event::Close) && events.len() == 2);
                assert!(conn.is_finished());
            } else {
                assert_eq!(events.len(), 1, "the refused request's records are ignored");
            }
        }
    }

    #[test]
    fn abort_ends_the_request_without_the_handler() {
        let bytes = [
            begin(3, ROLE_RESPONDER, FLAG_KEEP_CONN),
            params(3, &[(b"A", b"B")]),
            record(ABORT_REQUEST, 3, &[]),
            stdin(3, b"late"),
            request(4, false, b"next"),
        ]
        .concat();
        let (_, events) = feed(&bytes);
        assert_eq!(write_of(&events[0]), end_request(3, REQUEST_COMPLETE));
        assert_eq!(request_of(&events[1]).2.body, b"next");
        assert_eq!(events.len(), 2);

        let bytes = [begin(3, ROLE_RESPONDER, 0), record(ABORT_REQUEST, 3, &[])].concat();
        let (conn, events) = feed(&bytes);
        assert_eq!(write_of(&events[0]), end_request(3, REQUEST_COMPLETE));
        assert!(matches!(events[1], Event::Close) && conn.is_finished());
    }

    #[test]
    fn a_second_request_on_the_connection_is_refused_with_cant_mpx_conn() {
        let bytes = [
            begin(1, ROLE_RESPONDER, FLAG_KEEP_CONN),
            begin(2, ROLE_RESPONDER, 0),
            params(2, &[(b"X", b"2")]),
            params(1, &[(b"X", b"1")]),
            stdin(2, b"two"),
            stdin(1, b"one"),
        ]
        .concat();
        let (conn, events) = feed(&bytes);
        assert_eq!(write_of(&events[0]), end_request(2, CANT_MPX_CONN));
        let (id, _, req) = request_of(&events[1]);
        assert_eq!(
            (id, req.param("X"), &req.body[..]),
            (1, Some(&b"1"[..]), &b"one"[..])
        );
        assert_eq!(events.len(), 2);
        assert!(!conn.is_finished());
    }

    #[test]
    fn records_for_unknown_ids_are_ignored() {
        let bytes = [
            params(5, &[(b"A", b"B")]),
            stdin(5, b"x"),
            record(ABORT_REQUEST, 5, &[]),
            record(DATA, 5, b"d"),
        ]
        .concat();
        let (conn, events) = feed(&bytes);
        assert!(events.is_empty() && !conn.is_finished() && !conn.mid_request());
    }

    #[test]
    fn a_truncated_record_waits_for_the_rest() {
        let bytes = request(1, false, b"body");
        for cut in [1, 5, 8, 12, bytes.len() - 1] {
            let (mut conn, events) = feed(&bytes[..cut]);
            assert!(events.is_empty() && conn.mid_request(), "cut at {cut}");
            let events = conn.feed(&bytes[cut..]);
            assert_eq!(request_of(&events[0]).2.body, b"body", "cut at {cut}");
        }
    }

    #[test]
    fn protocol_violations_close_the_connection() {
        let cases: [(&str, Vec<u8>, ProtocolError); 4] = [
            (
                "version 0",
                vec![0, 1, 0, 1, 0, 0, 0, 0],
                ProtocolError::UnsupportedVersion(0),
            ),
            (
                "version 2",
                vec![2, 1, 0, 1, 0, 0, 0, 0],
                ProtocolError::UnsupportedVersion(2),
            ),
            (
                "short BEGIN_REQUEST",
                record(BEGIN_REQUEST, 1, &[0, 1, 0]),
                ProtocolError::ShortBeginRequest {
                    request_id: 1,
                    len: 3,
                },
            ),
            (
                "pair length past the end",
                [
                    begin(1, ROLE_RESPONDER, 0),
                    record(PARAMS, 1, &[5, 1, b'A']),
                    record(PARAMS, 1, &[]),
                    stdin(1, b""),
                ]
                .concat(),
                ProtocolError::MalformedNameValuePairs { request_id: 1 },
            ),
        ];
        for (name, bytes, error) in cases {
            let (mut conn, events) = feed(&[&bytes[..], &request(2, true, b"")].concat());
            assert_eq!(events.len(), 1, "{name}");
            assert!(
                matches!(&events[0], Event::Violation(e) if *e == error),
                "{name}: {events:?}"
            );
            assert!(
                conn.is_finished() && conn.feed(&request(3, true, b"")).is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn oversize_params_close_the_connection() {
        let big = vec![b'x'; 600];
        let bytes = [
            begin(1, ROLE_RESPONDER, 0),
            record(PARAMS, 1, &encode_pairs([(&b"A"[..], &big[..])])),
            record(PARAMS, 1, &encode_pairs([(&b"B"[..], &big[..])])),
        ]
        .concat();
        let (_, events) = feed(&bytes);
        let expected = ProtocolError::ParamsTooLarge {
            request_id: 1,
            limit: 1024,
        };
        assert!(
            matches!(&events[..], [Event::Violation(e)] if *e == expected),
            "{events:?}"
        );
    }

    #[test]
    fn oversize_body_is_refused_as_it_arrives_and_the_connection_ends() {
        let at_limit = vec![b'a'; 16];
        let (_, events) = feed(&request(1, false, &at_limit));
        let req = request_of(&events[0]).2;
        assert_eq!((req.body.len(), req.body_too_large), (16, false));

        // The third record crosses the limit: the request is handed over then, without
        // waiting for the end of STDIN, and nothing after it is read.
        let head = [
            begin(1, ROLE_RESPONDER, FLAG_KEEP_CONN),
            params(1, &[]),
            record(STDIN, 1, &[b'a'; 10]),
        ]
        .concat();
        let mut conn = Connection::new(LIMITS);
        assert!(conn.feed(&head).is_empty());
        let events = conn.feed(&record(STDIN, 1, &[b'b'; 10]));
        assert_eq!(events.len(), 1, "{events:?}");
        let (id, keep_conn, req) = request_of(&events[0]);
        assert_eq!((id, keep_conn), (1, false), "the connection ends with the 413");
        assert!(req.body_too_large && req.body.is_empty());
        assert!(conn.is_finished());
        let rest = [
            record(STDIN, 1, &[b'c'; 10]),
            record(STDIN, 1, &[]),
            request(2, false, b"ok"),
        ]
        .concat();
        assert!(conn.feed(&rest).is_empty());
    }

    #[test]
    fn abort_for_the_request_being_answered_is_reported_once() {
        let mut conn = Connection::new(LIMITS);
        let events = conn.feed(&request(1, true, b"x"));
        assert_eq!(request_of(&events[0]).0, 1);
        let events = conn.feed(&record(ABORT_REQUEST, 1, &[]));
        assert!(matches!(events[..], [Event::Abort { id: 1 }]), "{events:?}");
        assert!(conn.feed(&record(ABORT_REQUEST, 1, &[])).is_empty(), "only once");

        let events = conn.feed(&request(2, true, b"y"));
        assert_eq!(request_of(&events[0]).0, 2);
        conn.answered();
        assert!(
            conn.feed(&record(ABORT_REQUEST, 2, &[])).is_empty(),
            "after the answer"
        );
    }

    #[test]
    fn zero_length_records_and_stdin_before_params() {
        let bytes = [
            begin(1, ROLE_RESPONDER, 0),
            record(STDIN, 1, &[]),
            record(PARAMS, 1, &[]),
        ]
        .concat();
        let (_, events) = feed(&bytes);
        let req = request_of(&events[0]).2;
        assert!(req.params.is_empty() && req.body.is_empty());

        let (_, events) = feed(&record(GET_VALUES, 0, &[]));
        assert_eq!(write_of(&events[0]), record(GET_VALUES_RESULT, 0, &[]));
    }

    #[test]
    fn padding_up_to_255_bytes_is_skipped() {
        let mut bytes = begin(1, ROLE_RESPONDER, 0);
        bytes.extend_from_slice(&[1, PARAMS, 0, 1, 0, 0, 255, 0]);
        bytes.extend_from_slice(&[0xaa; 255]);
        bytes.extend(stdin(1, b"z"));
        let (_, events) = feed(&bytes);
        assert_eq!(request_of(&events[0]).2.body, b"z");
    }

    #[test]
    fn streams_are_cut_into_records_of_at_most_65535_bytes() {
        let data: Vec<u8> = (0..150_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        encode_stream(&mut out, STDOUT, 300, &data);
        let (mut rest, mut joined, mut lens) = (&out[..], Vec::new(), Vec::new());
        while let Some((record, used)) = parse_record(rest).unwrap() {
            assert_eq!((record.kind, record.request_id, used % 8), (STDOUT, 300, 0));
            joined.extend_from_slice(record.content);
            lens.push(record.content.len());
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        assert_eq!(lens, [65535, 65535, 150_000 - 2 * 65535, 0]);
        assert_eq!(joined, data);
    }

    #[test]
    fn a_response_is_stdout_then_end_request() {
        let response = Response::new(200, "text/plain", b"hello".to_vec());
        let out = encode_response(1, &response);
        let mut expected = Vec::new();
        encode_stream(&mut expected, STDOUT, 1, &response.to_cgi_bytes());
        expected.extend(end_request(1, REQUEST_COMPLETE));
        assert_eq!(out, expected);
        assert!(out.ends_with(&[
            1,
            END_REQUEST,
            0,
            1,
            0,
            8,
            0,
            0,
            0,
            0,
            0,
            0,
            REQUEST_COMPLETE,
            0,
            0,
            0
        ]));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..32)) {
                let mut conn = Connection::new(LIMITS);
                for chunk in &chunks {
                    conn.feed(chunk);
                }
            }

            #[test]
            fn mutated_valid_streams_never_panic(
                flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
                cut in any::<prop::sample::Index>(),
            ) {
                let mut bytes = [request(1, true, b"body"), record(GET_VALUES, 0, &encode_pairs([(&b"FCGI_MAX_REQS"[..], &b""[..])])), request(2, false, b"")].concat();
                for (at, value) in flips {
                    let i = at.index(bytes.len());
                    bytes[i] = value;
                }
                let (head, tail) = bytes.split_at(cut.index(bytes.len()));
                let mut conn = Connection::new(LIMITS);
                conn.feed(head);
                conn.feed(tail);
            }

            #[test]
            fn any_split_of_a_valid_stream_gives_the_same_requests(cut in any::<prop::sample::Index>()) {
                let bytes = [request(1, true, b"one"), request(2, true, b"two")].concat();
                let (head, tail) = bytes.split_at(cut.index(bytes.len()));
                let mut conn = Connection::new(LIMITS);
                let mut events = conn.feed(head);
                events.extend(conn.feed(tail));
                let bodies: Vec<_> = events.iter().map(|e| request_of(e).2.body.clone()).collect();
                prop_assert_eq!(bodies, vec![b"one".to_vec(), b"two".to_vec()]);
            }
        }
    }
}
