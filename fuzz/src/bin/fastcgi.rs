//! FastCGI records: any bytes, fed to one connection in pieces whose sizes come from
//! the input's first byte, must never panic; every request it hands over respects the
//! limits.
use getacert::web::fastcgi::{Connection, Event, Limits};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&step, rest)) = data.split_first() else {
            return;
        };
        let limits = Limits {
            max_params: 4096,
            max_body: 1024,
            max_conns: 8,
            max_reqs: 4,
        };
        let mut conn = Connection::new(limits);
        for chunk in rest.chunks(usize::from(step).max(1)) {
            for event in conn.feed(chunk) {
                if let Event::Request { request, .. } = event {
                    assert!(request.body.len() <= limits.max_body);
                    conn.answered();
                }
            }
        }
    });
}
