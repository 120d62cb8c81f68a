//! Image transformation for `/render/image/...`: resize (cover, contain, fill), quality and
//! output format, with strict limits on the input (bytes and pixels) and the output size.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

/// The largest stored object that is transformed.
pub(crate) const MAX_INPUT_BYTES: u64 = 25 * 1024 * 1024;
/// The largest input image, per side.
const MAX_INPUT_SIDE: u32 = 10_000;
/// Output sides are clamped to this (Supabase's default).
const MAX_OUTPUT_SIDE: u32 = 2000;
/// Decoding may allocate at most this much.
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// The transformation query (`width`, `height`, `resize`, `quality`, `format`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct Transform {
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
    pub(crate) resize: Option<String>,
    pub(crate) quality: Option<u8>,
    pub(crate) format: Option<String>,
}

impl Transform {
    /// Parses the query-string form (as kept in signed tokens).
    pub(crate) fn from_query(query: &str) -> Result<Self> {
        let mut t = Transform::default();
        let number = |v: &str| v.parse().map_err(|_| Error::invalid(format!("Invalid transformation value {v:?}")));
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "width" => t.width = Some(number(&v)?),
                "height" => t.height = Some(number(&v)?),
                "quality" => {
                    t.quality = Some(u8::try_from(number(&v)?).map_err(|_| Error::invalid("Invalid quality"))?)
                }
                "resize" => t.resize = Some(v.into_owned()),
                "format" => t.format = Some(v.into_owned()),
                _ => {}
            }
        }
        Ok(t)
    }

    /// The query string form, kept in signed tokens.
    pub(crate) fn to_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(w) = self.width {
            q.append_pair("width", &w.to_string());
        }
        if let Some(h) = self.height {
            q.append_pair("height", &h.to_string());
        }
        if let Some(r) = &self.resize {
            q.append_pair("resize", r);
        }
        if let Some(x) = self.quality {
            q.append_pair("quality", &x.to_string());
        }
        if let Some(f) = &self.format {
            q.append_pair("format", f);
        }
        q.finish()
    }
}

impl Transform {
    /// The `X-Transformations` header Supabase Storage answers a render with: the
    /// transformation as its image service was asked for it (`ImageRenderer.applyTransformation`
    /// in upstream's `src/storage/renderer/image.ts`): `height`, `width` (clamped as rendered),
    /// `resizing_type` when either is set (`fill` for cover, `fit` for contain, `force` for
    /// fill), `quality`, and `format` unless it is `origin`, in that order, comma-separated;
    /// zero sizes and qualities are left out, as there. `None` when nothing is asked.
    pub(crate) fn header(&self) -> Option<String> {
        let clamp = |v: u32| v.clamp(1, MAX_OUTPUT_SIDE);
        let (width, height) = (self.width.filter(|w| *w > 0), self.height.filter(|h| *h > 0));
        let mut segments = Vec::new();
        if let Some(h) = height {
            segments.push(format!("height:{}", clamp(h)));
        }
        if let Some(w) = width {
            segments.push(format!("width:{}", clamp(w)));
        }
        if width.is_some() || height.is_some() {
            let kind = match self.resize.as_deref() {
                Some("contain") => "fit",
                Some("fill") => "force",
                _ => "fill",
            };
            segments.push(format!("resizing_type:{kind}"));
        }
        if let Some(q) = self.quality.filter(|q| *q > 0) {
            segments.push(format!("quality:{q}"));
        }
        if let Some(f) = self.format.as_deref().filter(|f| *f != "origin") {
            segments.push(format!("format:{f}"));
        }
        (!segments.is_empty()).then(|| segments.join(","))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Cover,
    Contain,
    Fill,
}

/// Checks a transformation up front, before any bytes are read.
pub(crate) fn check(t: &Transform) -> Result<()> {
    mode(t)?;
    if let Some(q) = t.quality
        && !(20..=100).contains(&q)
    {
        return Err(Error::invalid("quality must be between 20 and 100"));
    }
    match t.format.as_deref() {
        None | Some("origin" | "webp") => Ok(()),
        Some(other) => Err(Error::invalid(format!("format {other:?} is not supported (origin or webp)"))),
    }
}

fn mode(t: &Transform) -> Result<Mode> {
    match t.resize.as_deref().unwrap_or("cover") {
        "cover" => Ok(Mode::Cover),
        "contain" => Ok(Mode::Contain),
        "fill" => Ok(Mode::Fill),
        other => Err(Error::invalid(format!("resize {other:?} is not supported (cover, contain or fill)"))),
    }
}

/// Decodes `bytes`, applies `t`, and encodes the result: the bytes and their MIME type.
pub(crate) fn apply(bytes: &[u8], t: &Transform) -> Result<(Vec<u8>, &'static str)> {
    let mode = mode(t)?;
    let not_image = || Error::new(ErrorKind::InvalidMimeType, "The object is not an image that can be transformed");
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| not_image())?;
    let source = reader.format().ok_or_else(not_image)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_INPUT_SIDE);
    limits.max_image_height = Some(MAX_INPUT_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => Error::new(ErrorKind::EntityTooLarge, "The image is too large to transform"),
        _ => not_image(),
    })?;
    let clamp = |v: u32| v.clamp(1, MAX_OUTPUT_SIDE);
    let (w, h) = (image.width(), image.height());
    let (tw, th) = match (t.width.filter(|w| *w > 0), t.height.filter(|h| *h > 0)) {
        (None, None) => (w.min(MAX_OUTPUT_SIDE), h.min(MAX_OUTPUT_SIDE)),
        (Some(tw), None) => (clamp(tw), clamp(scale(h, tw, w))),
        (None, Some(th)) => (clamp(scale(w, th, h)), clamp(th)),
        (Some(tw), Some(th)) => (clamp(tw), clamp(th)),
    };
    let filter = FilterType::Triangle;
    let out: DynamicImage = if (tw, th) == (w, h) {
        image
    } else {
        match mode {
            Mode::Cover => image.resize_to_fill(tw, th, filter),
            Mode::Contain => image.resize(tw, th, filter),
            Mode::Fill => image.resize_exact(tw, th, filter),
        }
    };
    let target = match t.format.as_deref() {
        Some("webp") => ImageFormat::WebP,
        _ => source,
    };
    encode(out, target, t.quality.unwrap_or(80))
}

fn scale(side: u32, to: u32, from: u32) -> u32 {
    u32::try_from(u64::from(side) * u64::from(to) / u64::from(from.max(1))).unwrap_or(u32::MAX).max(1)
}

fn encode(image: DynamicImage, format: ImageFormat, quality: u8) -> Result<(Vec<u8>, &'static str)> {
    let mut out = Cursor::new(Vec::new());
    let mime = match format {
        ImageFormat::Jpeg => {
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
            image.to_rgb8().write_with_encoder(encoder).map_err(Error::internal)?;
            "image/jpeg"
        }
        ImageFormat::Png => {
            image.write_to(&mut out, ImageFormat::Png).map_err(Error::internal)?;
            "image/png"
        }
        ImageFormat::Gif => {
            image.to_rgba8().write_to(&mut out, ImageFormat::Gif).map_err(Error::internal)?;
            "image/gif"
        }
        _ => {
            // Lossy WebP at the asked quality; the alpha channel is kept when there is one.
            let (w, h) = (image.width(), image.height());
            let encoded = if image.color().has_alpha() {
                let rgba = image.to_rgba8();
                webp::Encoder::from_rgba(&rgba, w, h).encode_simple(false, f32::from(quality))
            } else {
                let rgb = image.to_rgb8();
                webp::Encoder::from_rgb(&rgb, w, h).encode_simple(false, f32::from(quality))
            };
            let encoded = encoded.map_err(|e| Error::internal(format!("WebP encoding failed: {e:?}")))?;
            return Ok((encoded.to_vec(), "image/webp"));
        }
    };
    Ok((out.into_inner(), mime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).expect("png");
        out.into_inner()
    }

    fn dims(bytes: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory(bytes).expect("decodes");
        (img.width(), img.height())
    }

    #[test]
    fn resize_modes_and_formats() {
        let src = png(400, 200);
        let t = |w: Option<u32>, h: Option<u32>, r: &str| Transform {
            width: w,
            height: h,
            resize: Some(r.into()),
            ..Transform::default()
        };
        let (out, mime) = apply(&src, &t(Some(100), Some(100), "cover")).expect("cover");
        assert_eq!((dims(&out), mime), ((100, 100), "image/png"));
        let (out, _) = apply(&src, &t(Some(100), Some(100), "contain")).expect("contain");
        assert_eq!(dims(&out), (100, 50));
        let (out, _) = apply(&src, &t(Some(100), Some(100), "fill")).expect("fill");
        assert_eq!(dims(&out), (100, 100));
        let (out, _) = apply(&src, &t(Some(50), None, "cover")).expect("width only");
        assert_eq!(dims(&out), (50, 25));
        let (out, _) = apply(&src, &t(Some(99_999), None, "cover")).expect("clamped");
        assert_eq!(dims(&out).0, MAX_OUTPUT_SIDE);
        let webp = Transform { width: Some(40), format: Some("webp".into()), ..Transform::default() };
        let (out, mime) = apply(&src, &webp).expect("webp");
        assert_eq!((mime, image::guess_format(&out).ok()), ("image/webp", Some(ImageFormat::WebP)));
        assert_eq!(dims(&out), (40, 20));
    }

    #[test]
    fn webp_output_is_lossy_at_the_asked_quality() {
        // A photo-like gradient with noise: lossy coding shows in the size.
        let img = image::RgbImage::from_fn(300, 200, |x, y| {
            let n = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 23;
            image::Rgb([(x % 256) as u8, ((y + n) % 256) as u8, ((x + y) % 256) as u8])
        });
        let mut src = Cursor::new(Vec::new());
        img.write_to(&mut src, ImageFormat::Png).expect("png");
        let at = |quality| {
            let t = Transform { format: Some("webp".into()), quality: Some(quality), ..Transform::default() };
            apply(src.get_ref(), &t).expect("webp").0
        };
        let (low, high) = (at(20), at(95));
        // A lossy (VP8) bitstream, not a lossless (VP8L) one.
        assert_eq!(&low[12..16], b"VP8 ");
        assert!(low.len() * 2 < high.len(), "quality 20: {} bytes, 95: {} bytes", low.len(), high.len());
        assert_eq!(dims(&low), (300, 200));
        // Transparency survives.
        let clear = image::RgbaImage::from_pixel(8, 8, image::Rgba([10, 20, 30, 0]));
        let mut src = Cursor::new(Vec::new());
        clear.write_to(&mut src, ImageFormat::Png).expect("png");
        let t = Transform { format: Some("webp".into()), ..Transform::default() };
        let (out, _) = apply(src.get_ref(), &t).expect("webp");
        let back = image::load_from_memory(&out).expect("decodes").to_rgba8();
        assert_eq!(back.get_pixel(3, 3)[3], 0, "alpha kept");
    }

    #[test]
    fn the_transformations_header_names_what_was_asked() {
        let t = |w, h, resize: Option<&str>, quality, format: Option<&str>| Transform {
            width: w,
            height: h,
            resize: resize.map(Into::into),
            quality,
            format: format.map(Into::into),
        };
        let header = |t: Transform| t.header();
        assert_eq!(
            header(t(Some(200), Some(200), None, Some(60), None)).as_deref(),
            Some("height:200,width:200,resizing_type:fill,quality:60")
        );
        assert_eq!(
            header(t(Some(100), None, Some("contain"), None, Some("webp"))).as_deref(),
            Some("width:100,resizing_type:fit,format:webp")
        );
        assert_eq!(
            header(t(None, Some(5000), Some("fill"), None, None)).as_deref(),
            Some("height:2000,resizing_type:force")
        );
        assert_eq!(header(t(None, None, Some("cover"), Some(80), Some("origin"))).as_deref(), Some("quality:80"));
        assert_eq!(header(t(Some(0), None, Some("fill"), None, Some("origin"))), None);
        assert_eq!(header(Transform::default()), None);
    }

    #[test]
    fn bad_inputs_and_options_are_refused() {
        assert_eq!(apply(b"not an image", &Transform::default()).expect_err("text").status(), 415);
        let bad = |t: Transform| check(&t).expect_err("refused").status();
        assert_eq!(bad(Transform { resize: Some("stretch".into()), ..Transform::default() }), 400);
        assert_eq!(bad(Transform { quality: Some(5), ..Transform::default() }), 400);
        assert_eq!(bad(Transform { format: Some("avif".into()), ..Transform::default() }), 400);
        // Wider than the input limit: refused by the decoder's limits.
        let huge = png(MAX_INPUT_SIDE + 1, 1);
        assert_eq!(apply(&huge, &Transform::default()).expect_err("huge").status(), 413);
    }
}
