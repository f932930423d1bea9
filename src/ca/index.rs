//! The `openssl ca` database line format (index.txt), serial numbers as upper-case hex,
//! and ASN.1 time strings. Pure: formats and parses text, never touches the filesystem.
//!
//! A line has six tab-separated fields: status (`V`, `R`, `E`), notAfter as the raw
//! ASN.1 time, revocation `time[,reason]` (empty unless `R`), serial in upper-case hex of
//! even length, file name (`unknown`), and the subject as `X509_NAME_oneline` writes it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Valid,
    Revoked,
    Expired,
}

impl Status {
    pub fn letter(self) -> char {
        match self {
            Status::Valid => 'V',
            Status::Revoked => 'R',
            Status::Expired => 'E',
        }
    }
}

/// One index.txt record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub status: Status,
    /// notAfter exactly as written (`YYMMDDHHMMSSZ` or `YYYYMMDDHHMMSSZ`).
    pub expires: String,
    /// Revocation time and optional reason, exactly as written; empty unless revoked.
    pub revoked: String,
    /// Upper-case hex, even length.
    pub serial: String,
    pub file: String,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    FieldCount(usize),
    Status(String),
    Expires(String),
    Serial(String),
    RevokedWithoutTime,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::FieldCount(n) => write!(f, "{n} tab-separated fields instead of 6"),
            LineError::Status(s) => write!(f, "status {s:?} is not V, R or E"),
            LineError::Expires(s) => write!(f, "expiry {s:?} is not an ASN.1 time"),
            LineError::Serial(s) => write!(f, "serial {s:?} is not hexadecimal"),
            LineError::RevokedWithoutTime => write!(f, "status R without a revocation time"),
        }
    }
}

impl std::error::Error for LineError {}

/// One index.txt line, borrowed: what the in-memory view needs, with the same checks
/// as [`Record::parse`] and no allocation (a million lines load in a fraction of a
/// second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub status: Status,
    pub expires_unix: i64,
    /// As written (hex; case and leading zeros not normalized).
    pub serial: &'a str,
    pub subject: &'a str,
}

impl<'a> Line<'a> {
    pub fn parse(line: &'a str) -> Result<Line<'a>, LineError> {
        let mut fields = line.split('\t');
        let (Some(status), Some(expires), Some(revoked), Some(serial), Some(_file), Some(subject), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(LineError::FieldCount(line.split('\t').count()));
        };
        let status = match status {
            "V" => Status::Valid,
            "R" => Status::Revoked,
            "E" => Status::Expired,
            other => return Err(LineError::Status(other.to_string())),
        };
        let expires_unix = parse_asn1_time(expires).ok_or_else(|| LineError::Expires(expires.to_string()))?;
        if status == Status::Revoked && revoked.is_empty() {
            return Err(LineError::RevokedWithoutTime);
        }
        let hex = serial.trim();
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LineError::Serial(serial.to_string()));
        }
        Ok(Line {
            status,
            expires_unix,
            serial: hex,
            subject,
        })
    }

    /// The last commonName of the subject, as written.
    pub fn common_name(&self) -> Option<&'a str> {
        subject_field(self.subject, "CN")
    }
}

impl Record {
    /// Parses one line (without its newline).
    pub fn parse(line: &str) -> Result<Record, LineError> {
        let checked = Line::parse(line)?;
        let mut fields = line.split('\t');
        let (_, expires, revoked, _, file) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        );
        Ok(Record {
            status: checked.status,
            expires: expires.unwrap_or_default().to_string(),
            revoked: revoked.unwrap_or_default().to_string(),
            serial: normalize_serial(checked.serial)
                .ok_or_else(|| LineError::Serial(checked.serial.into()))?,
            file: file.unwrap_or_default().to_string(),
            subject: checked.subject.to_string(),
        })
    }

    /// The line as `openssl ca` writes it, newline included.
    pub fn to_line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            self.status.letter(),
            self.expires,
            self.revoked,
            self.serial,
            self.file,
            self.subject
        )
    }

    /// notAfter as seconds since the epoch (0 if unreadable, which parse rules out).
    pub fn expires_unix(&self) -> i64 {
        parse_asn1_time(&self.expires).unwrap_or(0)
    }

    /// The status as of `now`: a `V` record past its notAfter counts as expired, as
    /// `openssl ca -status` reports it.
    pub fn effective_status(&self, now: i64) -> Status {
        match self.status {
            Status::Valid if self.expires_unix() <= now => Status::Expired,
            s => s,
        }
    }

    /// The revocation reason, if one was recorded.
    pub fn revocation_reason(&self) -> Option<&str> {
        self.revoked.split_once(',').map(|(_, r)| r)
    }

    /// The last commonName of the subject, as written (non-ASCII escaped as `\xHH`).
    pub fn common_name(&self) -> Option<&str> {
        subject_field(&self.subject, "CN")
    }
}

/// The value of the last `/KEY=value` component of a oneline subject.
pub fn subject_field<'a>(subject: &'a str, key: &str) -> Option<&'a str> {
    subject
        .split('/')
        .rev()
        .find_map(|part| part.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Escapes a value as `X509_NAME_oneline` does for UTF8String values: bytes outside
/// printable ASCII become `\xHH`. Used to compare a username with index.txt subjects.
pub fn oneline_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b' '..=b'~').contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// The value [`oneline_escape`] (or `X509_NAME_oneline`) wrote, with `\xHH` turned back
/// into bytes; bytes that are not UTF-8 become U+FFFD (no username has one).
pub fn oneline_unescape(value: &str) -> String {
    if !value.contains("\\x") {
        return value.to_string();
    }
    let b = value.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 2..i + 4).and_then(|h| std::str::from_utf8(h).ok());
        match (
            b[i],
            b.get(i + 1),
            hex.and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'\\', Some(b'x'), Some(v)) => {
                out.push(v);
                i += 4;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A certificate serial, parsed once from hexadecimal ([`Serial::parse`]) and kept as
/// index.txt writes it ([`normalize_serial`]: upper case, no leading zeros, even length).
/// One number has one spelling, so equality is numeric equality, and the order is
/// numeric too. Displays (and derefs to) that spelling.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Serial(String);

impl Serial {
    /// `None` unless `s` is hexadecimal (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Option<Serial> {
        normalize_serial(s).map(Serial)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This serial plus one.
    pub fn next(&self) -> Serial {
        Serial(serial_next(&self.0))
    }
}

impl Ord for Serial {
    fn cmp(&self, other: &Serial) -> std::cmp::Ordering {
        serial_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for Serial {
    fn partial_cmp(&self, other: &Serial) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Serial {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A record's serial (as read from index.txt, any spelling) against a parsed one.
impl PartialEq<Serial> for String {
    fn eq(&self, other: &Serial) -> bool {
        normalize_serial(self).is_some_and(|s| s == other.0)
    }
}

/// Upper-case hex without leading zeros (but at least two digits), padded to even
/// length as OpenSSL's `i2a_ASN1_INTEGER` writes serials. `None` unless hex.
pub fn normalize_serial(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digits = s.trim_start_matches('0').to_ascii_uppercase();
    Some(even_hex(&digits))
}

fn even_hex(digits: &str) -> String {
    match digits.len() {
        0 => "00".to_string(),
        n if n % 2 == 1 => format!("0{digits}"),
        _ => digits.to_string(),
    }
}

/// Compares two hex serials numerically (case and leading zeros ignored).
pub fn serial_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| {
        a.bytes()
            .map(|c| c.to_ascii_uppercase())
            .cmp(b.bytes().map(|c| c.to_ascii_uppercase()))
    })
}

/// The next serial: `s + 1`, normalized.
pub fn serial_next(s: &str) -> String {
    let mut digits: Vec<u8> = s.trim_start_matches('0').bytes().collect();
    let mut i = digits.len();
    loop {
        if i == 0 {
            digits.insert(0, b'1');
            break;
        }
        i -= 1;
        match digits[i] {
            b'9' => {
                digits[i] = b'A';
                break;
            }
            b'F' | b'f' => digits[i] = b'0',
            d => {
                digits[i] = d.to_ascii_uppercase() + 1;
                break;
            }
        }
    }
    even_hex(&String::from_utf8_lossy(&digits).to_ascii_uppercase())
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The ASN.1 time OpenSSL's `ASN1_TIME_set` writes: UTCTime `YYMMDDHHMMSSZ` for years
/// 1950–2049, GeneralizedTime `YYYYMMDDHHMMSSZ` otherwise.
pub fn asn1_time(unix: i64) -> String {
    let (y, mo, d) = civil_from_days(unix.div_euclid(86400));
    let secs = unix.rem_euclid(86400);
    let (h, mi, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if (1950..2050).contains(&y) {
        format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100)
    } else {
        format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z")
    }
}

/// Parses either ASN.1 time form (with the `Z`) into seconds since the epoch.
pub fn parse_asn1_time(s: &str) -> Option<i64> {
    let body = s.strip_suffix('Z')?;
    if !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| body.get(r).and_then(|t| t.parse::<i64>().ok());
    let (y, rest) = match body.len() {
        12 => {
            let yy = num(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        14 => (num(0..4)?, 4),
        _ => return None,
    };
    let (mo, d) = (num(rest..rest + 2)?, num(rest + 2..rest + 4)?);
    let (h, mi, sec) = (
        num(rest + 4..rest + 6)?,
        num(rest + 6..rest + 8)?,
        num(rest + 8..rest + 10)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by `openssl ca` 3.0 (index.txt of a test CA, subjects shortened).
    const VALID: &str = "V\t361126104512Z\t\t1000\tunknown\t/C=US/ST=CA/O=MyApp/CN=alice";
    const REVOKED: &str =
        "R\t361126104512Z\t261128104600Z,keyCompromise\t1001\tunknown\t/C=US/O=MyApp/CN=bob";
    const GENERALIZED: &str = "V\t20561126104512Z\t\t0A1B\tunknown\t/C=US/O=MyApp/CN=carol";

    #[test]
    fn lines_round_trip() {
        for line in [VALID, REVOKED, GENERALIZED] {
            let r = Record::parse(line).unwrap();
            assert_eq!(r.to_line(), format!("{line}\n"));
        }
    }

    #[test]
    fn fields_are_read() {
        let r = Record::parse(REVOKED).unwrap();
        assert_eq!(r.status, Status::Revoked);
        assert_eq!(r.revocation_reason(), Some("keyCompromise"));
        assert_eq!(r.common_name(), Some("bob"));
        assert_eq!(Record::parse(GENERALIZED).unwrap().serial, "0A1B");
    }

    #[test]
    fn odd_subjects() {
        let r = Record::parse("V\t361126104512Z\t\t10\tunknown\t/CN=a\\xC3\\xA9/emailAddress=x@y").unwrap();
        assert_eq!(r.common_name(), Some("a\\xC3\\xA9"));
        assert_eq!(oneline_escape("aé"), "a\\xC3\\xA9");
        let empty = Record::parse("V\t361126104512Z\t\t10\tunknown\t").unwrap();
        assert_eq!(empty.common_name(), None);
    }

    #[test]
    fn bad_lines() {
        let cases = [
            (
                "five fields",
                "V\t361126104512Z\t\t1000\tunknown",
                LineError::FieldCount(5),
            ),
            (
                "bad status",
                "X\t361126104512Z\t\t10\tunknown\t/CN=a",
                LineError::Status("X".into()),
            ),
            (
                "bad time",
                "V\t3611261045Z\t\t10\tunknown\t/CN=a",
                LineError::Expires("3611261045Z".into()),
            ),
            (
                "bad serial",
                "V\t361126104512Z\t\tXYZ\tunknown\t/CN=a",
                LineError::Serial("XYZ".into()),
            ),
            (
                "R without time",
                "R\t361126104512Z\t\t10\tunknown\t/CN=a",
                LineError::RevokedWithoutTime,
            ),
        ];
        for (name, line, want) in cases {
            assert_eq!(Record::parse(line), Err(want), "{name}");
        }
    }

    #[test]
    fn serial_formatting() {
        assert_eq!(normalize_serial("1000").as_deref(), Some("1000"));
        assert_eq!(normalize_serial("f").as_deref(), Some("0F"));
        assert_eq!(normalize_serial("000abc").as_deref(), Some("0ABC"));
        assert_eq!(normalize_serial("0").as_deref(), Some("00"));
        assert_eq!(normalize_serial("12 3"), None);
        assert_eq!(serial_next("1000"), "1001");
        assert_eq!(serial_next("10FF"), "1100");
        assert_eq!(serial_next("FF"), "0100");
        assert_eq!(serial_next("09"), "0A");
        assert_eq!(serial_next("00"), "01");
        assert_eq!(serial_cmp("0100", "FF"), std::cmp::Ordering::Greater);
        assert_eq!(serial_cmp("0A", "A"), std::cmp::Ordering::Equal);
    }

    #[test]
    fn asn1_times() {
        // `date -u -d @2111111111` = 2036-11-24 ...; checked with `openssl x509 -enddate`.
        assert_eq!(asn1_time(0), "700101000000Z");
        assert_eq!(asn1_time(2_524_607_999), "491231235959Z");
        assert_eq!(asn1_time(2_524_608_000), "20500101000000Z");
        for t in [0, 951_782_400, 2_111_111_111, 2_524_608_000, 4_102_444_800] {
            assert_eq!(parse_asn1_time(&asn1_time(t)), Some(t), "{t}");
        }
        assert_eq!(parse_asn1_time("491231235959"), None);
        assert_eq!(parse_asn1_time("491331235959Z"), None);
    }

    #[test]
    fn serial_parses_once_and_shows_as_index_txt_writes_it() {
        let s = Serial::parse(" 0000abc ").unwrap();
        assert_eq!(s.to_string(), "0ABC");
        assert_eq!(s.as_str(), "0ABC");
        assert_eq!(Serial::parse("0ABC"), Some(s.clone()));
        assert_eq!(Serial::parse("0"), Serial::parse("00"));
        assert_eq!(Serial::parse("0").unwrap().to_string(), "00");
        for bad in ["", " ", "xyz", "12g4", "-1", "0x10"] {
            assert_eq!(Serial::parse(bad), None, "{bad:?}");
        }
        assert_eq!(s.next().to_string(), "0ABD");
        assert_eq!(Serial::parse("FF").unwrap().next().to_string(), "0100");
        // Numeric order, not string order: 0F < 10 < 0100.
        let mut v: Vec<Serial> = ["0100", "10", "f"]
            .iter()
            .filter_map(|t| Serial::parse(t))
            .collect();
        v.sort();
        let shown: Vec<String> = v.iter().map(Serial::to_string).collect();
        assert_eq!(shown, ["0F", "10", "0100"]);
        // A record's serial in another spelling is the same serial.
        assert!(String::from("00abc") == s);
        assert!(String::from("abd") != s);
    }
}
