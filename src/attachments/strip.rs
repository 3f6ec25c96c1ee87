//! Removing what a photo says about where and by whom it was taken, before it is stored.
//!
//! Phones write the GPS position into a photo's EXIF block; editors add XMP and IPTC blocks with
//! names and places, and text chunks with comments. Those live in their own segments (JPEG) or
//! chunks (PNG, WebP), apart from the pixels, so they are dropped by editing the file's structure
//! (`img-parts`), never by decoding and re-encoding it: the image keeps its exact pixels and
//! quality, and stripping costs a copy rather than a codec.
//!
//! Kept: what is needed to show the image right (JFIF, the ICC colour profile, Adobe's colour
//! transform marker). GIF has no metadata blocks of this kind, PDF documents keep theirs (their
//! author field is the uploader's own document property, and editing a PDF is not structural
//! surgery): both pass through unchanged.

use bytes::Bytes;
use img_parts::jpeg::{markers, Jpeg};
use img_parts::png::Png;
use img_parts::webp::WebP;
use img_parts::ImageEXIF;

use super::sniff::Kind;

/// The file's structure does not match its signature: it is not the image it claims to be.
#[derive(Debug, thiserror::Error)]
#[error("the file is not a valid {0}")]
pub struct Malformed(pub &'static str);

/// PNG chunks that hold metadata rather than pixels: EXIF, the three text chunk types (comments,
/// authors, XMP travels in iTXt) and the modification time.
const PNG_METADATA: [[u8; 4]; 5] = [*b"eXIf", *b"tEXt", *b"zTXt", *b"iTXt", *b"tIME"];

/// WebP chunks that hold the picture: a lossy or lossless bitstream, or animation frames.
const WEBP_IMAGE_DATA: [[u8; 4]; 3] = [*b"VP8 ", *b"VP8L", *b"ANMF"];

/// `bytes` without their metadata, for the types that carry it. An image must parse and say how
/// large it is (a header whose structure is not that of the image is refused).
pub fn strip(kind: Kind, bytes: Bytes) -> Result<Bytes, Malformed> {
    match kind {
        Kind::Jpeg => {
            let mut jpeg = Jpeg::from_bytes(bytes).map_err(|_| Malformed("JPEG"))?;
            jpeg.dimensions().ok_or(Malformed("JPEG"))?;
            jpeg.segments_mut()
                .retain(|s| keep_jpeg_segment(s.marker(), s.contents()));
            Ok(jpeg.encoder().bytes())
        }
        Kind::Png => {
            let mut png = Png::from_bytes(bytes).map_err(|_| Malformed("PNG"))?;
            png.dimensions().ok_or(Malformed("PNG"))?;
            png.chunks_mut()
                .retain(|c| !PNG_METADATA.contains(&c.kind()));
            Ok(png.encoder().bytes())
        }
        Kind::WebP => {
            let mut webp = WebP::from_bytes(bytes).map_err(|_| Malformed("WebP"))?;
            // A RIFF container with no image in it parses; it is still not a picture. Nor is a
            // VP8X header alone: it states a canvas size but carries no pixels (and img-parts
            // drops it when nothing extended follows, leaving an empty container).
            webp.dimensions().ok_or(Malformed("WebP"))?;
            if !webp
                .chunks()
                .iter()
                .any(|c| WEBP_IMAGE_DATA.contains(&c.id()))
            {
                return Err(Malformed("WebP"));
            }
            webp.remove_chunks_by_id(*b"XMP ");
            // Also rewrites the VP8X header's flags to say there is no EXIF (or XMP) left, and
            // drops the VP8X header when nothing extended is left: the size must then be read
            // from the bitstream, which a file may have got wrong behind a valid VP8X.
            webp.set_exif(None);
            webp.dimensions().ok_or(Malformed("WebP"))?;
            Ok(webp.encoder().bytes())
        }
        Kind::Gif | Kind::Pdf => Ok(bytes),
    }
}

/// Which JPEG segments stay: everything but application segments and comments, except the
/// application segments needed to show the image (JFIF in APP0, the ICC profile in APP2, Adobe's
/// colour transform in APP14). EXIF and XMP (APP1), IPTC (APP13), MPF thumbnails (APP2 without
/// the ICC header) and comments go.
fn keep_jpeg_segment(marker: u8, contents: &[u8]) -> bool {
    match marker {
        markers::APP0 | markers::APP14 => true,
        markers::APP2 => contents.starts_with(b"ICC_PROFILE\0"),
        markers::APP1..=markers::APP15 | markers::COM => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Bytes {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        Bytes::from(std::fs::read(path).unwrap())
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_jpeg_loses_its_exif_gps_and_comment_and_keeps_its_pixels() {
        let original = fixture("gps.jpg");
        assert!(Jpeg::from_bytes(original.clone()).unwrap().exif().is_some());
        assert!(contains(&original, b"SecretCam") && contains(&original, b"home address"));
        let stripped = strip(Kind::Jpeg, original.clone()).unwrap();
        let jpeg = Jpeg::from_bytes(stripped.clone()).unwrap();
        assert!(jpeg.exif().is_none(), "no EXIF block, so no GPS tag");
        assert!(!contains(&stripped, b"SecretCam") && !contains(&stripped, b"home address"));
        assert!(!contains(&stripped, b"Exif\0\0"));
        // The scan data (the pixels) is byte for byte what it was.
        let scan = |j: &Jpeg| {
            j.segments()
                .iter()
                .find(|s| s.marker() == markers::SOS)
                .map(|s| s.clone().encoder().bytes())
                .unwrap()
        };
        assert_eq!(scan(&jpeg), scan(&Jpeg::from_bytes(original).unwrap()));
        assert_eq!(jpeg.dimensions(), Some((8, 8)));
    }

    #[test]
    fn a_png_loses_exif_and_text_chunks() {
        let original = fixture("exif.png");
        assert!(contains(&original, b"eXIf") && contains(&original, b"home address"));
        let stripped = strip(Kind::Png, original).unwrap();
        let png = Png::from_bytes(stripped.clone()).unwrap();
        for kind in PNG_METADATA {
            assert!(png.chunk_by_type(kind).is_none(), "{kind:?}");
        }
        assert!(!contains(&stripped, b"SecretCam") && !contains(&stripped, b"Jane Doe"));
        assert!(png.chunk_by_type(*b"IDAT").is_some());
        assert_eq!(png.dimensions(), Some((8, 8)));
    }

    #[test]
    fn a_webp_loses_exif_and_says_so_in_its_header() {
        let original = fixture("exif.webp");
        assert!(WebP::from_bytes(original.clone()).unwrap().exif().is_some());
        let stripped = strip(Kind::WebP, original).unwrap();
        assert!(!contains(&stripped, b"SecretCam"));
        let webp = WebP::from_bytes(stripped).unwrap();
        assert!(webp.exif().is_none());
        assert_eq!(webp.dimensions(), Some((8, 8)));
    }

    #[test]
    fn gif_and_pdf_pass_unchanged_and_lies_are_refused() {
        let gif = fixture("t.gif");
        assert_eq!(strip(Kind::Gif, gif.clone()).unwrap(), gif);
        let pdf = Bytes::from_static(b"%PDF-1.4\n%%EOF\n");
        assert_eq!(strip(Kind::Pdf, pdf.clone()).unwrap(), pdf);
        // A JPEG signature on something that is not a JPEG.
        let fake = Bytes::from_static(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00]);
        assert!(strip(Kind::Jpeg, fake).is_err());
        assert!(strip(Kind::Png, Bytes::from_static(b"\x89PNG\r\n\x1a\nxx")).is_err());
        assert!(strip(Kind::WebP, Bytes::from_static(b"RIFF\x04\0\0\0WEBP")).is_err());
    }

    #[test]
    fn a_webp_header_without_a_picture_is_refused() {
        // A VP8X header alone says how large the canvas is, but there is no image data;
        // stripping then removed the header as well (img-parts drops a VP8X with nothing
        // extended after it) and stored an empty RIFF container as a WebP.
        let mut header_only = b"RIFF\x16\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
        header_only.extend_from_slice(&[0, 0, 0, 0, 7, 0, 0, 7, 0, 0]);
        assert!(strip(Kind::WebP, Bytes::from(header_only)).is_err());
        // With an EXIF block beside it, which the strip removes, it is still no picture.
        let mut with_exif = b"RIFF\x24\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
        with_exif.extend_from_slice(&[0x08, 0, 0, 0, 7, 0, 0, 7, 0, 0]);
        with_exif.extend_from_slice(b"EXIF\x06\0\0\0MM\0*\0\0");
        assert!(strip(Kind::WebP, Bytes::from(with_exif)).is_err());
        // Found by the fuzzer too: a VP8X header saying 8x8 in front of a VP8 bitstream whose
        // frame header is corrupt. Accepted on the VP8X's word, it lost that header with its EXIF
        // and was stored as a file that states no size (and that a second check refuses).
        assert!(strip(Kind::WebP, fixture("bad-vp8.webp")).is_err());
        // The fixture, which has its bitstream, still passes.
        assert!(strip(Kind::WebP, fixture("exif.webp")).is_ok());
    }
}
