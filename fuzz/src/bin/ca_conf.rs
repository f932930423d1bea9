//! ca.conf values: the text of a `getacert init` ca.conf with the input appended (which
//! may set any [ getacert ] key, open another section again, or break the syntax) is
//! loaded with the real loader. A bad file is an error naming the file, never a panic.
use std::path::PathBuf;
use std::sync::OnceLock;

use getacert::config::Config;

struct Base {
    _dir: tempfile::TempDir,
    conf: PathBuf,
    text: Vec<u8>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let (dir, conf) = getacert_fuzz::throwaway_ca();
        let text = std::fs::read(&conf).expect("read ca.conf");
        Base {
            _dir: dir,
            conf: conf.with_file_name("fuzz.conf"),
            text,
        }
    })
}

fn main() {
    let base = base();
    afl::fuzz!(|data: &[u8]| {
        let mut text = base.text.clone();
        text.push(b'\n');
        text.extend_from_slice(data);
        std::fs::write(&base.conf, &text).expect("write fuzz.conf");
        if let Err(e) = Config::load(&base.conf) {
            assert!(!e.to_string().is_empty());
        }
    });
}
