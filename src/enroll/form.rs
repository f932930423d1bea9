//! Decodes an enrollment POST body (`application/x-www-form-urlencoded` or
//! `multipart/form-data`) into named fields. Pure: bytes in, fields out.

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    UnsupportedType(String),
    BadMultipart(&'static str),
    /// A field that must appear once appeared several times.
    Repeated(String),
}

/// The decoded fields, in order. Values are text: invalid UTF-8 becomes U+FFFD, which
/// every later check rejects where it matters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Form {
    pub fields: Vec<(String, String)>,
}

impl Form {
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Form, FormError> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-www-form-urlencoded" | "" => Ok(Form {
                fields: form_urlencoded::parse(body)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            }),
            "multipart/form-data" => {
                let boundary =
                    parameter(content_type, "boundary").ok_or(FormError::BadMultipart("no boundary"))?;
                parse_multipart(&boundary, body).map(|fields| Form { fields })
            }
            _ => Err(FormError::UnsupportedType(mime)),
        }
    }

    /// The value of the first of `names` present. A name given twice with different
    /// values is refused: which one would be signed must never be a guess.
    pub fn one_of(&self, names: &[&str]) -> Result<Option<&str>, FormError> {
        for name in names {
            let mut values = self
                .fields
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str());
            if let Some(first) = values.next() {
                if values.any(|v| v != first) {
                    return Err(FormError::Repeated((*name).to_string()));
                }
                return Ok(Some(first));
            }
        }
        Ok(None)
    }
}

/// A `name=value` parameter of a header value, quotes removed.
pub fn parameter(header: &str, name: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_multipart(boundary: &str, body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    if boundary.is_empty() || boundary.len() > 200 {
        return Err(FormError::BadMultipart("bad boundary"));
    }
    let delim = format!("--{boundary}");
    let mut rest = match find(body, delim.as_bytes()) {
        Some(i) => &body[i + delim.len()..],
        None => return Err(FormError::BadMultipart("boundary not found")),
    };
    let mut fields = Vec::new();
    let next_delim = format!("\r\n--{boundary}");
    loop {
        if rest.starts_with(b"--") {
            return Ok(fields);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or(FormError::BadMultipart("no line break after boundary"))?;
        let head_end = find(rest, b"\r\n\r\n").ok_or(FormError::BadMultipart("part without headers"))?;
        let head = String::from_utf8_lossy(&rest[..head_end]);
        let after = &rest[head_end + 4..];
        let end = find(after, next_delim.as_bytes()).ok_or(FormError::BadMultipart("unterminated part"))?;
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .and_then(|l| parameter(l, "name"))
            .ok_or(FormError::BadMultipart("part without a name"))?;
        fields.push((name, String::from_utf8_lossy(&after[..end]).into_owned()));
        rest = &after[end + next_delim.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_fields() {
        let f = Form::parse(
            "application/x-www-form-urlencoded",
            b"username=alice&pubkey=MII%2Babc+def&createcert=Generate",
        )
        .unwrap();
        assert_eq!(f.one_of(&["username"]).unwrap(), Some("alice"));
        // `+` is a space in form encoding; the SPKAC decoder turns it back.
        assert_eq!(f.one_of(&["spkac", "pubkey"]).unwrap(), Some("MII+abc def"));
        assert_eq!(f.one_of(&["csr"]).unwrap(), None);
    }

    #[test]
    fn repeated_field_with_different_values_is_refused() {
        let f = Form::parse("", b"username=alice&username=bob").unwrap();
        assert_eq!(
            f.one_of(&["username"]),
            Err(FormError::Repeated("username".into()))
        );
        let same = Form::parse("", b"username=alice&username=alice").unwrap();
        assert_eq!(same.one_of(&["username"]).unwrap(), Some("alice"));
    }

    #[test]
    fn non_utf8_value_becomes_replacement() {
        let f = Form::parse("", b"username=al%FFice").unwrap();
        assert_eq!(f.one_of(&["username"]).unwrap(), Some("al\u{FFFD}ice"));
    }

    #[test]
    fn multipart_fields() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--XyZ\r\nContent-Disposition: form-data; name=\"csr\"\r\nContent-Type: text/plain\r\n\r\n-----BEGIN\r\nabc\r\n--XyZ--\r\n";
        let f = Form::parse("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(f.one_of(&["username"]).unwrap(), Some("alice"));
        assert_eq!(f.one_of(&["csr"]).unwrap(), Some("-----BEGIN\r\nabc"));
    }

    #[test]
    fn bad_bodies() {
        let cases: [(&str, &[u8], FormError); 4] = [
            (
                "json",
                b"{}",
                FormError::UnsupportedType("application/json".into()),
            ),
            (
                "multipart/form-data",
                b"x",
                FormError::BadMultipart("no boundary"),
            ),
            (
                "multipart/form-data; boundary=a",
                b"nothing",
                FormError::BadMultipart("boundary not found"),
            ),
            (
                "multipart/form-data; boundary=a",
                b"--a\r\nno headers",
                FormError::BadMultipart("part without headers"),
            ),
        ];
        for (ct, body, want) in cases {
            let ct = if ct == "json" { "application/json" } else { ct };
            assert_eq!(Form::parse(ct, body), Err(want), "{ct}");
        }
    }
}
