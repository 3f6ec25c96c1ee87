//! What a file is, decided by its bytes: the name and the `Content-Type` a client sends are
//! whatever the client says. Five types are accepted (API.md); anything else is refused, however
//! it is named (a renamed `.exe` starts with `MZ`, not with an image signature).
//!
//! The signatures are written here rather than taken from a detection crate: there are five, they
//! are in each format's specification, and a crate that knows hundreds of types would not make
//! these five any more certain. Images are parsed again by `strip`, which refuses a file whose
//! structure does not match its signature.

/// An accepted type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Png,
    Jpeg,
    Gif,
    WebP,
    Pdf,
}

impl Kind {
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Png => "image/png",
            Kind::Jpeg => "image/jpeg",
            Kind::Gif => "image/gif",
            Kind::WebP => "image/webp",
            Kind::Pdf => "application/pdf",
        }
    }

    pub fn is_image(self) -> bool {
        !matches!(self, Kind::Pdf)
    }

    /// The extension a download is named with, whatever the uploaded name said.
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Png => "png",
            Kind::Jpeg => "jpg",
            Kind::Gif => "gif",
            Kind::WebP => "webp",
            Kind::Pdf => "pdf",
        }
    }

    pub fn from_content_type(ct: &str) -> Option<Kind> {
        [Kind::Png, Kind::Jpeg, Kind::Gif, Kind::WebP, Kind::Pdf]
            .into_iter()
            .find(|k| k.content_type() == ct)
    }
}

/// The type of `bytes`, from their first bytes, or `None`.
pub fn sniff(bytes: &[u8]) -> Option<Kind> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Kind::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Kind::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(Kind::Gif)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(Kind::WebP)
    } else if bytes.starts_with(b"%PDF-") {
        Some(Kind::Pdf)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_decide() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(Kind::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Kind::Jpeg));
        assert_eq!(sniff(b"GIF89a.."), Some(Kind::Gif));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Some(Kind::WebP));
        assert_eq!(sniff(b"%PDF-1.7\n"), Some(Kind::Pdf));
    }

    #[test]
    fn everything_else_is_refused() {
        for bytes in [
            &b"MZ\x90\0\x03\0\0\0"[..], // a Windows executable, whatever its name
            b"\x7fELF\x02\x01",
            b"<html><script>",
            b"RIFF\x10\0\0\0WAVEfmt ", // RIFF, but audio
            b"RIFF",
            b"PK\x03\x04", // zip (docx, apk, ...)
            b"",
            b"\x89PNG", // cut short
        ] {
            assert_eq!(sniff(bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn content_types_round_trip() {
        for k in [Kind::Png, Kind::Jpeg, Kind::Gif, Kind::WebP, Kind::Pdf] {
            assert_eq!(Kind::from_content_type(k.content_type()), Some(k));
        }
    }
}
