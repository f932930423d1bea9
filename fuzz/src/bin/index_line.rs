//! index.txt lines: whatever parses must print back to a line that parses to the same
//! record.
use getacert::ca::index::Record;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        for line in text.lines() {
            if let Ok(record) = Record::parse(line) {
                let printed = record.to_line();
                let printed = printed.strip_suffix('\n').expect("to_line ends the line");
                let again = Record::parse(printed).expect("a printed record parses");
                assert_eq!(again.to_line(), record.to_line());
                let _ = record.common_name();
                let _ = record.revocation_reason();
                let _ = record.effective_status(0);
            }
        }
    });
}
