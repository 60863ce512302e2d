//! The [`Plot`] trait, the [`Canvas`] plots draw on, and writing PNG, SVG and PDF files.
//!
//! Each format has its own route:
//! - **PNG**: plotters' bitmap backend into an RGB buffer, encoded with the `png` crate, which
//!   also records the resolution (pHYs chunk) so that the file prints at the intended size.
//! - **SVG**: plotters' SVG backend into a string. The white background and any raster images
//!   (astronomical images) are inserted as the first elements, below everything else.
//! - **PDF**: the same SVG (without background and images) parsed by `usvg`, with a font
//!   database holding only the embedded DejaVu Sans, which lays out the text and turns it into
//!   glyph outlines; `svg2pdf` converts the result to a PDF form XObject, paths staying paths.
//!   The page is assembled here with `pdf-writer`: white background, raster images as image
//!   XObjects (never interpolated, so pixels stay sharp), then the vector form on top. Text as
//!   outlines looks identical everywhere and needs no font in the file; it cannot be selected
//!   or searched, the price of a much lighter build than embedding font subsets.
//!
//! Files are written to a temporary name in the destination folder and renamed into place, so
//! a reader never sees a half-written plot and a failed run leaves the previous file intact.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use plotters::coord::Shift;
use plotters::element::BitMapElement;
use plotters::prelude::{BitMapBackend, DrawingArea, DrawingBackend, IntoDrawingArea, SVGBackend};

use crate::error::{BackendResult, DrawError, Error, Result};
use crate::style::{ensure_fonts, Style, FONT_FAMILY};

/// A figure that can be drawn with any plotters backend.
///
/// All plot kinds of this crate implement it; implement it for a new kind of figure to get
/// PNG, SVG and PDF output in the common style for free.
pub trait Plot {
    /// Figure size in pixels; the style's size unless the content needs another (galleries
    /// grow with the number of stamps).
    fn size(&self, style: &Style) -> (u32, u32) {
        (style.width, style.height)
    }

    /// Draws the figure. The canvas is white already.
    fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<'_, DB>) -> Result<(), DrawError>;

    /// Writes the figure to `path` in the format its extension names, in the house style.
    fn save(&self, path: impl AsRef<Path>) -> Result<()>
    where
        Self: Sized,
    {
        save(self, path)
    }

    /// Writes `stem.png`, `stem.svg` and `stem.pdf`; returns the paths written.
    fn save_all(&self, stem: impl AsRef<Path>) -> Result<Vec<PathBuf>>
    where
        Self: Sized,
    {
        save_all(self, stem)
    }
}

/// An RGB raster, rows from top to bottom, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width × height × 3` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Nearest-neighbour resampling to `w × h`: astronomical pixels must stay square blocks,
    /// not be smoothed into each other.
    pub(crate) fn resample(&self, w: u32, h: u32) -> RgbImage {
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            let sy = ((y as u64 * self.height as u64) / h as u64) as usize;
            for x in 0..w {
                let sx = ((x as u64 * self.width as u64) / w as u64) as usize;
                let i = (sy * self.width as usize + sx) * 3;
                data.extend_from_slice(&self.data[i..i + 3]);
            }
        }
        RgbImage {
            width: w,
            height: h,
            data,
        }
    }

    /// PNG bytes; `photographic` when the picture holds an image of data (a sky field).
    fn encode_png(&self, dpi: Option<f64>, photographic: bool) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, self.width, self.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        // Plots are mostly flat colour: per-row filter choice and the strongest deflate level
        // make files markedly smaller for a few milliseconds more. An image of noisy data
        // hardly compresses at any level, and there the strongest took 0.1 s per megapixel
        // (as long as detecting its sources), so it gets the fast one.
        enc.set_compression(if photographic {
            png::Compression::Fast
        } else {
            png::Compression::Best
        });
        enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        if let Some(dpi) = dpi {
            let ppm = (dpi / 0.0254).round() as u32;
            enc.set_pixel_dims(Some(png::PixelDimensions {
                xppu: ppm,
                yppu: ppm,
                unit: png::Unit::Meter,
            }));
        }
        let mut w = enc.write_header().map_err(std::io::Error::other)?;
        w.write_image_data(&self.data)
            .map_err(std::io::Error::other)?;
        w.finish().map_err(std::io::Error::other)?;
        Ok(out)
    }
}

/// A raster image placed in pixel coordinates of the figure.
#[derive(Debug, Clone)]
struct Placed {
    x: i32,
    y: i32,
    w: u32,
    h: u32,
    image: RgbImage,
}

/// What a plot draws on: the plotters drawing area plus the style and, for vector outputs, a
/// list of raster images that are placed below the vector content.
pub struct Canvas<'a, DB: DrawingBackend> {
    area: DrawingArea<DB, Shift>,
    style: &'a Style,
    bitmap: bool,
    rasters: RefCell<Vec<Placed>>,
    /// An image of data was drawn (bitmap output).
    drew_image: std::cell::Cell<bool>,
}

impl<'a, DB: DrawingBackend> Canvas<'a, DB> {
    /// The whole figure, in pixels, origin at the top left.
    pub fn area(&self) -> &DrawingArea<DB, Shift> {
        &self.area
    }

    /// The style to draw in.
    pub fn style(&self) -> &Style {
        self.style
    }

    pub(crate) fn pen(&self) -> crate::draw::Pen<'_, DB> {
        crate::draw::Pen {
            area: &self.area,
            bitmap: self.bitmap,
            dry: false,
        }
    }

    /// A pen that only lays out (see `Pen::dry`).
    pub(crate) fn dry_pen(&self) -> crate::draw::Pen<'_, DB> {
        crate::draw::Pen {
            area: &self.area,
            bitmap: self.bitmap,
            dry: true,
        }
    }

    /// Figure size in pixels.
    pub fn size(&self) -> (u32, u32) {
        self.area.dim_in_pixel()
    }

    /// Places `image` into the pixel rectangle at `(x, y)` of size `w × h`, scaled with nearest
    /// neighbours. Images always lie below vector content in SVG and PDF output, so call this
    /// before drawing anything that should cover them, and do not overlap other content with
    /// images.
    pub fn draw_image(
        &self,
        x: i32,
        y: i32,
        w: u32,
        h: u32,
        image: &RgbImage,
    ) -> Result<(), DrawError> {
        if w == 0 || h == 0 || image.width == 0 || image.height == 0 {
            return Ok(());
        }
        if image.data.len() != (image.width * image.height * 3) as usize {
            return Err(DrawError::data(
                "image buffer size does not match its dimensions",
            ));
        }
        if self.bitmap {
            self.drew_image.set(true);
            let scaled = image.resample(w, h);
            let elem = BitMapElement::with_owned_buffer((x, y), (w, h), scaled.data)
                .ok_or_else(|| DrawError::Backend("bitmap buffer size mismatch".into()))?;
            self.area.draw(&elem).backend()
        } else {
            // Vector viewers may smooth a small image when they scale it up. Enlarging it by a
            // whole factor first (still nearest-neighbour) keeps pixel edges sharp everywhere;
            // an image larger than its place is reduced to the place's size, the resolution the
            // PNG shows too.
            let (iw, ih) = (image.width, image.height);
            let image = if iw >= w || ih >= h {
                image.resample(w.min(iw), h.min(ih))
            } else {
                let k = (w / iw).min(h / ih).clamp(1, 16);
                image.resample(iw * k, ih * k)
            };
            self.rasters.borrow_mut().push(Placed { x, y, w, h, image });
            Ok(())
        }
    }
}

/// Output file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Portable Network Graphics, at the style's resolution.
    Png,
    /// Scalable Vector Graphics.
    Svg,
    /// Portable Document Format, vector, with embedded font subset.
    Pdf,
}

impl Format {
    /// All formats, in the order [`save_all`] writes them.
    pub const ALL: [Format; 3] = [Format::Png, Format::Svg, Format::Pdf];

    /// The format a path's extension names (case-insensitive).
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            Some("pdf") => Ok(Format::Pdf),
            _ => Err(Error::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }

    /// The usual file extension, without a dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
            Format::Pdf => "pdf",
        }
    }

    /// Parses `"png"`, `"svg"` or `"pdf"` (as found in a configuration's list of formats).
    pub fn parse(name: &str) -> Option<Format> {
        match name
            .trim()
            .trim_start_matches('.')
            .to_ascii_lowercase()
            .as_str()
        {
            "png" => Some(Format::Png),
            "svg" => Some(Format::Svg),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }
}

/// Writes `plot` to `path` in the house style; the format follows the extension.
pub fn save<P: Plot>(plot: &P, path: impl AsRef<Path>) -> Result<()> {
    save_with_style(plot, path, &Style::default())
}

/// Writes `plot` to `path` in `style`.
pub fn save_with_style<P: Plot>(plot: &P, path: impl AsRef<Path>, style: &Style) -> Result<()> {
    let path = path.as_ref();
    let format = Format::from_path(path)?;
    let bytes = match format {
        Format::Png => render_png(plot, style),
        Format::Svg => render_svg(plot, style).map(String::into_bytes),
        Format::Pdf => render_pdf(plot, style),
    }
    .map_err(|source| Error::Draw {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// Writes `stem.png`, `stem.svg` and `stem.pdf`; returns the paths written.
pub fn save_all<P: Plot>(plot: &P, stem: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    save_formats(plot, stem, &Format::ALL)
}

/// Writes `stem.<ext>` for each of `formats` (for instance from a configuration's list);
/// returns the paths written.
pub fn save_formats<P: Plot>(
    plot: &P,
    stem: impl AsRef<Path>,
    formats: &[Format],
) -> Result<Vec<PathBuf>> {
    let stem = stem.as_ref();
    let mut out = Vec::with_capacity(formats.len());
    for f in formats {
        // Append rather than `with_extension`, so a stem like "run1.v2/loss" keeps its dots.
        let mut name = stem.as_os_str().to_owned();
        name.push(".");
        name.push(f.extension());
        let path = PathBuf::from(name);
        save(plot, &path)?;
        out.push(path);
    }
    Ok(out)
}

fn draw_on<P: Plot, DB: DrawingBackend>(
    plot: &P,
    style: &Style,
    backend: DB,
    bitmap: bool,
) -> Result<(Vec<Placed>, bool), DrawError> {
    ensure_fonts();
    let area = backend.into_drawing_area();
    if bitmap {
        area.fill(&plotters::style::WHITE).backend()?;
    }
    let canvas = Canvas {
        area,
        style,
        bitmap,
        rasters: RefCell::new(Vec::new()),
        drew_image: std::cell::Cell::new(false),
    };
    plot.draw(&canvas)?;
    canvas.area.present().backend()?;
    Ok((canvas.rasters.into_inner(), canvas.drew_image.get()))
}

/// Renders `plot` to PNG bytes.
pub fn render_png<P: Plot>(plot: &P, style: &Style) -> Result<Vec<u8>, DrawError> {
    let (w, h) = plot.size(style);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let (_, photographic) = draw_on(
        plot,
        style,
        BitMapBackend::with_buffer(&mut buf, (w, h)),
        true,
    )?;
    RgbImage {
        width: w,
        height: h,
        data: buf,
    }
    .encode_png(Some(style.dpi), photographic)
    .map_err(|e| DrawError::Backend(format!("PNG encoding: {e}")))
}

/// The SVG as plotters writes it (opacity fixed), the raster images to place below it, and the
/// figure size.
type SvgParts = (String, Vec<Placed>, (u32, u32));

fn svg_parts<P: Plot>(plot: &P, style: &Style) -> Result<SvgParts, DrawError> {
    let size = plot.size(style);
    let mut svg = String::new();
    let (rasters, _) = draw_on(plot, style, SVGBackend::with_string(&mut svg, size), false)?;
    Ok((element_opacity_to_paint_opacity(&svg), rasters, size))
}

/// plotters writes translucency as `opacity` on each element. To SVG renderers and to
/// svg2pdf that is *group* opacity, which svg2pdf turns into one transparency group and one
/// form XObject per element: 800 translucent scatter markers made a 500 kB PDF. plotters'
/// elements have either a fill or a stroke, never both, so fill- and stroke-opacity mean the
/// same here and cost nothing. Opaque elements lose the attribute altogether.
fn element_opacity_to_paint_opacity(svg: &str) -> String {
    const KEY: &str = " opacity=\"";
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    while let Some(i) = rest.find(KEY) {
        out.push_str(&rest[..i]);
        let after = &rest[i + KEY.len()..];
        let Some(end) = after.find('"') else {
            rest = &rest[i..];
            break;
        };
        let v = &after[..end];
        if v.parse::<f64>().map_or(true, |a| a < 1.0) {
            out.push_str(&format!(" fill-opacity=\"{v}\" stroke-opacity=\"{v}\""));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Renders `plot` to an SVG document.
pub fn render_svg<P: Plot>(plot: &P, style: &Style) -> Result<String, DrawError> {
    let (svg, rasters, (w, h)) = svg_parts(plot, style)?;
    let mut under =
        format!("<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\"/>\n");
    for r in &rasters {
        let png = r
            .image
            .encode_png(None, false)
            .map_err(|e| DrawError::Backend(format!("PNG encoding: {e}")))?;
        under.push_str(&format!(
            "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" preserveAspectRatio=\"none\" \
             image-rendering=\"optimizeSpeed\" style=\"image-rendering:pixelated\" \
             href=\"data:image/png;base64,{}\"/>\n",
            r.x,
            r.y,
            r.w,
            r.h,
            base64_encode(&png)
        ));
    }
    // plotters opens the document with one `<svg ...>` line; everything after it is drawing.
    let split = svg.find('\n').map_or(svg.len(), |i| i + 1);
    let (head, body) = svg.split_at(split);
    // Name common fallbacks after the embedded family: the SVG does not carry the font (it
    // would add 1 MB per file), and a viewer without DejaVu Sans should still use a sans face.
    let body = body.replace(
        &format!("font-family=\"{FONT_FAMILY}\""),
        &format!("font-family=\"{FONT_FAMILY}, Verdana, Arial, Helvetica, sans-serif\""),
    );
    Ok(format!("{head}{under}{body}"))
}

/// The font database for SVG to PDF conversion: only the embedded fonts, so the PDF looks the
/// same on every machine and no system font directory is read. Built once; usvg shares it.
fn fontdb() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(dejavu::sans::regular().to_vec());
        db.load_font_data(dejavu::sans::bold().to_vec());
        db.set_sans_serif_family(FONT_FAMILY);
        Arc::new(db)
    })
    .clone()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
}

/// Renders `plot` to PDF bytes: one page, of the figure's size at the style's resolution.
pub fn render_pdf<P: Plot>(plot: &P, style: &Style) -> Result<Vec<u8>, DrawError> {
    use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect as PdfRect, Ref, TextStr};

    let (svg, rasters, (w, h)) = svg_parts(plot, style)?;
    let mut opt = usvg::Options {
        font_family: FONT_FAMILY.to_string(),
        ..Default::default()
    };
    opt.fontdb = fontdb();
    let parse = |svg: &str| {
        usvg::Tree::from_str(svg, &opt).map_err(|e| DrawError::Pdf(format!("SVG parsing: {e}")))
    };
    // usvg shapes the text with the embedded font; writing the tree back turns each text
    // element into its glyph outlines, which svg2pdf converts like any other path.
    let outlined = parse(&svg)?.to_string(&usvg::WriteOptions::default());
    let tree = parse(&outlined)?;
    let (chunk, form) = svg2pdf::to_chunk(&tree, svg2pdf::ConversionOptions::default())
        .map_err(|e| DrawError::Pdf(e.to_string()))?;

    let mut alloc = Ref::new(1);
    let catalog = alloc.bump();
    let pages = alloc.bump();
    let page = alloc.bump();
    let contents = alloc.bump();
    let info = alloc.bump();
    let image_refs: Vec<Ref> = rasters.iter().map(|_| alloc.bump()).collect();
    let mut map = HashMap::new();
    let chunk = chunk.renumber(|old| *map.entry(old).or_insert_with(|| alloc.bump()));
    let form = map[&form];

    let s = 72.0 / style.dpi; // pixels to points
    let (wp, hp) = ((w as f64 * s) as f32, (h as f64 * s) as f32);
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    {
        let mut p = pdf.page(page);
        p.media_box(PdfRect::new(0.0, 0.0, wp, hp));
        p.parent(pages);
        p.contents(contents);
        let mut res = p.resources();
        let mut xo = res.x_objects();
        xo.pair(Name(b"Fig"), form);
        let names: Vec<String> = (0..rasters.len()).map(|i| format!("Im{i}")).collect();
        for (n, r) in names.iter().zip(&image_refs) {
            xo.pair(Name(n.as_bytes()), *r);
        }
        xo.finish();
        res.finish();
        p.finish();
    }

    let mut content = Content::new();
    content.save_state();
    content.set_fill_rgb(1.0, 1.0, 1.0);
    content.rect(0.0, 0.0, wp, hp);
    content.fill_nonzero();
    content.restore_state();
    for (i, r) in rasters.iter().enumerate() {
        let name = format!("Im{i}");
        content.save_state();
        // Images are drawn in the unit square; PDF's y axis points up.
        content.transform([
            (r.w as f64 * s) as f32,
            0.0,
            0.0,
            (r.h as f64 * s) as f32,
            (r.x as f64 * s) as f32,
            ((h as f64 - r.y as f64 - r.h as f64) * s) as f32,
        ]);
        content.x_object(Name(name.as_bytes()));
        content.restore_state();
    }
    content.save_state();
    content.transform([wp, 0.0, 0.0, hp, 0.0, 0.0]);
    content.x_object(Name(b"Fig"));
    content.restore_state();
    pdf.stream(contents, &deflate(&content.finish()))
        .filter(Filter::FlateDecode);

    for (r, id) in rasters.iter().zip(&image_refs) {
        let data = deflate(&r.image.data);
        let mut img = pdf.image_xobject(*id, &data);
        img.filter(Filter::FlateDecode);
        img.width(r.image.width as i32);
        img.height(r.image.height as i32);
        img.color_space().device_rgb();
        img.bits_per_component(8);
        img.interpolate(false);
    }
    pdf.extend(&chunk);
    pdf.document_info(info)
        .producer(TextStr(concat!("deepsky-plot ", env!("CARGO_PKG_VERSION"))));
    Ok(pdf.finish())
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, which
/// is atomic on POSIX file systems.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("path has no file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/b.PNG")).unwrap(),
            Format::Png
        );
        assert_eq!(Format::from_path(Path::new("b.svg")).unwrap(), Format::Svg);
        assert_eq!(Format::from_path(Path::new("b.pdf")).unwrap(), Format::Pdf);
        let e = Format::from_path(Path::new("out/b.jpg")).unwrap_err();
        assert!(e.to_string().contains("out/b.jpg"), "{e}");
        assert_eq!(Format::parse(".PDF"), Some(Format::Pdf));
    }

    #[test]
    fn opacity_becomes_paint_opacity() {
        let s = element_opacity_to_paint_opacity(
            r#"<circle opacity="0.5" fill="red"/><text opacity="1" x="1">"#,
        );
        assert_eq!(
            s,
            r#"<circle fill-opacity="0.5" stroke-opacity="0.5" fill="red"/><text x="1">"#
        );
    }

    #[test]
    fn resample_keeps_blocks() {
        let img = RgbImage {
            width: 2,
            height: 1,
            data: vec![0, 0, 0, 255, 255, 255],
        };
        let r = img.resample(4, 2);
        assert_eq!(
            &r.data[..12],
            &[0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255]
        );
    }

    #[test]
    fn atomic_write_names_the_file_on_error() {
        let e = write_atomic(Path::new("/nonexistent-dir-for-deepsky/x.png"), b"x").unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent-dir-for-deepsky/x.png"),
            "{e}"
        );
    }
}
