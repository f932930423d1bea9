//! QR codes for the account page: the add-device link as an SVG image in a `data:` URI
//! (the page's CSP allows `img-src data:`, and an `<img>` runs no script). Pure: text in,
//! markup out; it does not decide what the link says (page.rs does).

use base64::Engine;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// `data:image/svg+xml;base64,…` of a QR code holding `text` (error correction M, the
/// standard quiet zone), or `None` when the text does not fit in a QR code.
pub fn svg_data_uri(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .quiet_zone(true)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(image.as_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_becomes_an_svg_data_uri() {
        let uri = svg_data_uri("https://example.org/getacert.php?enroll=1#code=ABCD-EFGH-IJ&username=alice")
            .unwrap();
        let b64 = uri.strip_prefix("data:image/svg+xml;base64,").unwrap();
        let svg = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
        assert!(!svg.contains("<script"), "{svg}");
    }

    #[test]
    fn text_too_long_for_a_qr_code_is_none_not_a_panic() {
        assert_eq!(svg_data_uri(&"x".repeat(5000)), None);
    }
}
