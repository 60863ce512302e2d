//! The detector network compiled for CPU inference ([`CompiledNet`]): batch norm folded into
//! each convolution, SiLU fused into its output pass, one tile at a time in plain buffers
//! (see [`deepsky_nn::infer`] for why), and the box branch evaluated only where the class
//! branch found something.
//!
//! That last point is exact, not an approximation: a box is decoded only at anchors whose
//! best class probability reaches the score threshold, and the box branch of a head (a 3×3
//! conv–SiLU, then a 1×1 conv) at one anchor depends only on the 3×3 neighbourhood of that
//! anchor's feature cell, so evaluating it there gives what the dense pass would. The class
//! branch and the box branch cost the same, and on a field most anchors are sky: this halves
//! the heads' work.

use candle_core::{DType, Result};
use deepsky_nn::infer::{upsample2, Activation, FusedConv};

use super::{Bottleneck, C2f, ConvBn, DetectorNet, Head, STRIDES};

impl ConvBn {
    fn compile(&self) -> Result<FusedConv> {
        FusedConv::compile(&self.conv, &self.bn, Activation::Silu)
    }
}

struct CompiledC2f {
    cv1: FusedConv,
    blocks: Vec<(FusedConv, FusedConv)>,
    cv2: FusedConv,
    c: usize,
}

impl CompiledC2f {
    fn new(m: &C2f) -> Result<CompiledC2f> {
        let blocks = m
            .blocks
            .iter()
            .map(|Bottleneck { a, b }| Ok((a.compile()?, b.compile()?)))
            .collect::<Result<_>>()?;
        Ok(CompiledC2f {
            cv1: m.cv1.compile()?,
            blocks,
            cv2: m.cv2.compile()?,
            c: m.c,
        })
    }

    /// `x` `(cin, h, w)` → `out` `(cout, h, w)`. The split and the concatenation are views of
    /// one buffer: cv1 writes both halves, each bottleneck appends its planes after them.
    fn forward(&self, x: &[f32], h: usize, w: usize, out: &mut [f32], ws: &mut Workspace) {
        let (c, n) = (self.c, h * w);
        let mut parts = ws.take((2 + self.blocks.len()) * c * n);
        let mut mid = ws.take(c * n);
        self.cv1.forward(x, h, w, &mut parts, &mut ws.scratch);
        for (i, (a, b)) in self.blocks.iter().enumerate() {
            let (done, next) = parts.split_at_mut((2 + i) * c * n);
            let last = &done[(1 + i) * c * n..];
            a.forward(last, h, w, &mut mid, &mut ws.scratch);
            b.forward(&mid, h, w, next, &mut ws.scratch);
            // The residual connection.
            for (v, &r) in next[..c * n].iter_mut().zip(last) {
                *v += r;
            }
        }
        self.cv2.forward(&parts, h, w, out, &mut ws.scratch);
        ws.give(parts);
        ws.give(mid);
    }

    fn multiply_adds(&self, h: usize, w: usize) -> usize {
        self.cv1.multiply_adds(h, w)
            + self
                .blocks
                .iter()
                .map(|(a, b)| a.multiply_adds(h, w) + b.multiply_adds(h, w))
                .sum::<usize>()
            + self.cv2.multiply_adds(h, w)
    }
}

struct CompiledHead {
    cls_stem: FusedConv,
    cls_out: FusedConv,
    box_stem: FusedConv,
    /// Both stems as one layer, for passes that need every box (test-time orientations).
    stems: FusedConv,
    box_out: FusedConv,
}

impl CompiledHead {
    fn new(h: &Head) -> Result<CompiledHead> {
        let (w, _) = h.cls_out.parameters();
        let (nc, hc, _, _) = w.dims4()?;
        // The class prior lives in its own parameter, not the conv's bias.
        let cls_out = FusedConv::new(
            w.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?,
            h.cls_bias.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?,
            hc,
            nc,
            1,
            1,
            Activation::Identity,
        );
        let (cls_stem, box_stem) = (h.cls_stem.compile()?, h.box_stem.compile()?);
        Ok(CompiledHead {
            stems: cls_stem.stacked(&box_stem),
            cls_stem,
            cls_out,
            box_stem,
            box_out: FusedConv::compile(
                &h.box_out,
                &deepsky_nn::layers::Norm::None,
                Activation::Identity,
            )?,
        })
    }
}

/// One level's feature map, kept so that boxes can be evaluated where they are wanted.
struct Level {
    feat: Vec<f32>,
    h: usize,
    w: usize,
    stride: usize,
}

/// What the network says about one tile: class probabilities for every anchor, and the box
/// of any anchor on request ([`TileOutputs::boxes_at`]).
pub struct TileOutputs<'a> {
    net: &'a CompiledNet,
    levels: Vec<Level>,
    /// Class probabilities `(anchors, classes)`, anchors in [`super::anchors`] order.
    pub scores: Vec<f32>,
    /// Boxes `(anchors, 4)` when computed densely ([`CompiledNet::forward`] with
    /// `dense_boxes`).
    pub dense_boxes: Option<Vec<f32>>,
}

impl TileOutputs<'_> {
    /// The boxes `[x0, y0, x1, y1]` (tile pixels) of the anchors `which` (indices in anchor
    /// order, increasing), as [`DetectorNet::forward`] decodes them; one gathered gemm per
    /// level.
    pub fn boxes_at(&self, which: &[usize], ws: &mut Workspace) -> Vec<[f32; 4]> {
        let mut out = Vec::with_capacity(which.len());
        let mut first = 0usize;
        for (level, head) in self.levels.iter().zip(&self.net.heads) {
            let n = level.h * level.w;
            let cells: Vec<(usize, usize)> = which
                .iter()
                .filter(|&&a| a >= first && a < first + n)
                .map(|&a| ((a - first) / level.w, (a - first) % level.w))
                .collect();
            first += n;
            if cells.is_empty() {
                continue;
            }
            let (hc, m) = (head.box_stem.cout(), cells.len());
            let mut stem = ws.take(hc * m);
            let (lh, lw) = (level.h, level.w);
            head.box_stem.forward_at(
                &level.feat,
                lh,
                lw,
                0..hc,
                &cells,
                &mut stem,
                &mut ws.scratch,
            );
            // The 1×1 output layer over the gathered cells, as over a 1 × m image.
            let mut raw = ws.take(4 * m);
            head.box_out.forward(&stem, 1, m, &mut raw, &mut ws.scratch);
            for (k, &(i, j)) in cells.iter().enumerate() {
                let r = [raw[k], raw[m + k], raw[2 * m + k], raw[3 * m + k]];
                out.push(decode(r, i, j, level.stride));
            }
            ws.give(stem);
            ws.give(raw);
        }
        out
    }

    /// Hand the tile's buffers back to `ws` for the next tile.
    pub fn recycle(self, ws: &mut Workspace) {
        for l in self.levels {
            ws.give(l.feat);
        }
        ws.give(self.scores);
        if let Some(b) = self.dense_boxes {
            ws.give(b);
        }
    }
}

/// Buffers reused across the tiles one thread runs: every tile asks for the same sizes, so
/// after the first the network allocates nothing (fresh large allocations are page faults
/// on every touch, which were a tenth of the time).
#[derive(Default)]
pub struct Workspace {
    scratch: Vec<f32>,
    free: Vec<Vec<f32>>,
}

impl Workspace {
    /// A buffer of `n` elements, contents unspecified (every user overwrites all of it).
    fn take(&mut self, n: usize) -> Vec<f32> {
        let best = (0..self.free.len())
            .filter(|&i| self.free[i].capacity() >= n)
            .min_by_key(|&i| self.free[i].capacity());
        let mut v = match best {
            Some(i) => self.free.swap_remove(i),
            None => Vec::with_capacity(n),
        };
        v.resize(n, 0.0);
        v
    }

    fn give(&mut self, v: Vec<f32>) {
        // (Buffers taken out of a tile's outputs come back empty: nothing to keep.)
        if v.capacity() > 0 {
            self.free.push(v);
        }
    }
}

/// Distances through softplus, in pixels, from the cell's anchor point.
fn decode(raw: [f32; 4], i: usize, j: usize, stride: usize) -> [f32; 4] {
    let s = stride as f32;
    let (x, y) = ((j as f32 + 0.5) * s, (i as f32 + 0.5) * s);
    let d = raw.map(|r| (r.max(0.0) + (-r.abs()).exp().ln_1p()) * s);
    [x - d[0], y - d[1], x + d[2], y + d[3]]
}

/// [`DetectorNet`] compiled for one-tile-at-a-time CPU inference ([`DetectorNet::compile`]).
pub struct CompiledNet {
    stem: FusedConv,
    down: [FusedConv; 3],
    stages: [CompiledC2f; 3],
    td3: CompiledC2f,
    td2: CompiledC2f,
    heads: Vec<CompiledHead>,
    num_classes: usize,
}

impl DetectorNet {
    /// The network in its inference form (weights copied; the net itself is unchanged).
    pub fn compile(&self) -> Result<CompiledNet> {
        let c2f = |m: &C2f| CompiledC2f::new(m);
        Ok(CompiledNet {
            stem: self.stem.compile()?,
            down: [
                self.down[0].compile()?,
                self.down[1].compile()?,
                self.down[2].compile()?,
            ],
            stages: [
                c2f(&self.stages[0])?,
                c2f(&self.stages[1])?,
                c2f(&self.stages[2])?,
            ],
            td3: c2f(&self.td3)?,
            td2: c2f(&self.td2)?,
            heads: self
                .heads
                .iter()
                .map(CompiledHead::new)
                .collect::<Result<_>>()?,
            num_classes: self.num_classes,
        })
    }
}

impl CompiledNet {
    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Run on one normalised tile `x` `(h, w)` row-major, sides multiples of
    /// [`super::SIZE_MULTIPLE`]. With `dense_boxes` every anchor's box is decoded too (needed
    /// when outputs of several orientations are averaged); otherwise boxes are evaluated on
    /// request. `ws` holds the buffers, best reused across the tiles of one thread (give them back
    /// with [`TileOutputs::recycle`]).
    pub fn forward<'a>(
        &'a self,
        x: &[f32],
        h: usize,
        w: usize,
        dense_boxes: bool,
        ws: &mut Workspace,
    ) -> Result<TileOutputs<'a>> {
        if h % super::SIZE_MULTIPLE != 0 || w % super::SIZE_MULTIPLE != 0 || x.len() != h * w {
            candle_core::bail!(
                "detector input {h}×{w} is not a multiple of {}",
                super::SIZE_MULTIPLE
            )
        }
        // Conv `f` on `x` (an `h × w` input) into a buffer from the workspace.
        let run = |f: &FusedConv, x: &[f32], h: usize, w: usize, ws: &mut Workspace| {
            let (ho, wo) = (f.out_size(h), f.out_size(w));
            let mut y = ws.take(f.cout() * ho * wo);
            f.forward(x, h, w, &mut y, &mut ws.scratch);
            (y, ho, wo)
        };
        let stage = |m: &CompiledC2f, x: Vec<f32>, h: usize, w: usize, ws: &mut Workspace| {
            let mut y = ws.take(m.cv2.cout() * h * w);
            m.forward(&x, h, w, &mut y, ws);
            ws.give(x);
            y
        };
        let (x1, h1, w1) = run(&self.stem, x, h, w, ws);
        let (d2, h2, w2) = run(&self.down[0], &x1, h1, w1, ws);
        ws.give(x1);
        let p2 = stage(&self.stages[0], d2, h2, w2, ws);
        let (d3, h3, w3) = run(&self.down[1], &p2, h2, w2, ws);
        let p3 = stage(&self.stages[1], d3, h3, w3, ws);
        let (d4, h4, w4) = run(&self.down[2], &p3, h3, w3, ws);
        let p4 = stage(&self.stages[2], d4, h4, w4, ws);
        // Top-down: upsampled coarse channels first, then the skip (as the net's concat).
        let (c4, c3) = (self.stages[2].cv2.cout(), self.stages[1].cv2.cout());
        let mut cat3 = ws.take((c4 + c3) * h3 * w3);
        upsample2(&p4, c4, h4, w4, &mut cat3[..c4 * h3 * w3]);
        cat3[c4 * h3 * w3..].copy_from_slice(&p3);
        ws.give(p3);
        let n3 = stage(&self.td3, cat3, h3, w3, ws);
        let (cn3, c2) = (self.td3.cv2.cout(), self.stages[0].cv2.cout());
        let mut cat2 = ws.take((cn3 + c2) * h2 * w2);
        upsample2(&n3, cn3, h3, w3, &mut cat2[..cn3 * h2 * w2]);
        cat2[cn3 * h2 * w2..].copy_from_slice(&p2);
        ws.give(p2);
        let n2 = stage(&self.td2, cat2, h2, w2, ws);

        let levels = vec![
            Level {
                feat: n2,
                h: h2,
                w: w2,
                stride: STRIDES[0],
            },
            Level {
                feat: n3,
                h: h3,
                w: w3,
                stride: STRIDES[1],
            },
            Level {
                feat: p4,
                h: h4,
                w: w4,
                stride: STRIDES[2],
            },
        ];
        let nc = self.num_classes;
        let anchors: usize = levels.iter().map(|l| l.h * l.w).sum();
        let mut scores = ws.take(anchors * nc);
        let mut boxes = dense_boxes.then(|| ws.take(anchors * 4));
        let mut first = 0;
        for (level, head) in levels.iter().zip(&self.heads) {
            let (lh, lw) = (level.h, level.w);
            let n = lh * lw;
            let hc = head.cls_stem.cout();
            let stem_layer = if dense_boxes {
                &head.stems
            } else {
                &head.cls_stem
            };
            let mut stem = ws.take(stem_layer.cout() * n);
            stem_layer.forward(&level.feat, lh, lw, &mut stem, &mut ws.scratch);
            let mut logits = ws.take(nc * n);
            head.cls_out
                .forward(&stem[..hc * n], lh, lw, &mut logits, &mut ws.scratch);
            for cell in 0..n {
                for c in 0..nc {
                    let z = logits[c * n + cell];
                    scores[(first + cell) * nc + c] = 1.0 / (1.0 + (-z).exp());
                }
            }
            if let Some(boxes) = boxes.as_mut() {
                let mut raw = ws.take(4 * n);
                head.box_out
                    .forward(&stem[hc * n..], lh, lw, &mut raw, &mut ws.scratch);
                for cell in 0..n {
                    let r = [
                        raw[cell],
                        raw[n + cell],
                        raw[2 * n + cell],
                        raw[3 * n + cell],
                    ];
                    let b = decode(r, cell / lw, cell % lw, level.stride);
                    boxes[(first + cell) * 4..(first + cell + 1) * 4].copy_from_slice(&b);
                }
                ws.give(raw);
            }
            ws.give(stem);
            ws.give(logits);
            first += n;
        }
        Ok(TileOutputs {
            net: self,
            levels,
            scores,
            dense_boxes: boxes,
        })
    }

    /// Multiply–adds of one forward pass on an `h × w` tile, as [`CompiledNet::forward`] runs
    /// it: with `dense_boxes` both head branches everywhere, without only the class branch (the
    /// box branch then adds its cost at the candidate anchors alone). The network's arithmetic
    /// cost, for comparing with what the cores can do.
    pub fn multiply_adds(&self, h: usize, w: usize, dense_boxes: bool) -> usize {
        let (h1, w1) = (self.stem.out_size(h), self.stem.out_size(w));
        let mut total = self.stem.multiply_adds(h, w);
        let (mut hh, mut ww) = (h1, w1);
        let mut sizes = Vec::new();
        for (d, s) in self.down.iter().zip(&self.stages) {
            total += d.multiply_adds(hh, ww);
            (hh, ww) = (d.out_size(hh), d.out_size(ww));
            total += s.multiply_adds(hh, ww);
            sizes.push((hh, ww));
        }
        total += self.td3.multiply_adds(sizes[1].0, sizes[1].1);
        total += self.td2.multiply_adds(sizes[0].0, sizes[0].1);
        for (head, &(lh, lw)) in self.heads.iter().zip(&sizes) {
            total += if dense_boxes {
                head.stems.multiply_adds(lh, lw) + head.box_out.multiply_adds(lh, lw)
            } else {
                head.cls_stem.multiply_adds(lh, lw)
            } + head.cls_out.multiply_adds(lh, lw);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DetectorConfig, DetectorNet};
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};

    /// The compiled network gives the candle network's scores and boxes (evaluation mode,
    /// non-trivial batch-norm statistics), densely and at chosen anchors.
    #[test]
    fn compiled_net_matches_the_candle_net() {
        let dev = Device::Cpu;
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
        let net = DetectorNet::new(&DetectorConfig::default(), vb).unwrap();
        for (name, var) in map.data().lock().unwrap().iter() {
            let t = var.as_tensor();
            let v = if name.ends_with("running_var") {
                (t.ones_like().unwrap() * 1.8).unwrap()
            } else if name.ends_with("running_mean") {
                (t.ones_like().unwrap() * 0.05).unwrap()
            } else {
                continue;
            };
            var.set(&v).unwrap();
        }
        let (h, w) = (64, 48);
        let x = Tensor::randn(0f32, 1.0, (1, 1, h, w), &dev).unwrap();
        let want = net.forward(&x, false).unwrap();
        let probs: Vec<f32> = candle_nn::ops::sigmoid(&want.logits)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let boxes: Vec<f32> = want.boxes.flatten_all().unwrap().to_vec1().unwrap();
        let compiled = net.compile().unwrap();
        let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let mut ws = super::Workspace::default();
        let got = compiled.forward(&xs, h, w, true, &mut ws).unwrap();
        assert_eq!(got.scores.len(), probs.len());
        for (a, b) in got.scores.iter().zip(&probs) {
            assert!((a - b).abs() < 1e-5, "score {a} vs {b}");
        }
        let dense = got.dense_boxes.as_ref().unwrap();
        for (a, b) in dense.iter().zip(&boxes) {
            assert!((a - b).abs() < 1e-3 * (1.0 + b.abs()), "box {a} vs {b}");
        }
        let anchors = super::super::anchors(h, w).len();
        let which = [0, 7, anchors / 2, anchors - 1];
        for (k, b) in which.iter().zip(got.boxes_at(&which, &mut ws)) {
            for c in 0..4 {
                let d = boxes[k * 4 + c];
                assert!(
                    (b[c] - d).abs() < 1e-3 * (1.0 + d.abs()),
                    "sparse box {b:?} vs {d}"
                );
            }
        }
        // The cost of a tile: the nano network is about 5 400 multiply-adds per pixel.
        let per_pixel = compiled.multiply_adds(256, 256, true) as f64 / 65536.0;
        assert!((5000.0..6000.0).contains(&per_pixel), "{per_pixel}");
        // Without the dense box branch, the heads' stems cost half.
        let sparse = compiled.multiply_adds(256, 256, false) as f64 / 65536.0;
        assert!((4000.0..4800.0).contains(&sparse), "{sparse}");
    }
}
