//! Radix-2 complex FFT for the 2-D convolutions of [`super::render::Renderer`]: real grids,
//! two real rows per complex transform, spectra left transposed between the passes.

use std::f64::consts::PI;

/// A complex number.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cx {
    pub(super) re: f64,
    pub(super) im: f64,
}

/// Radix-2 complex FFT of one power-of-two size.
pub(super) struct Fft {
    n: usize,
    /// `exp(-2πik/n)` for k < n/2, and their conjugates for the inverse transform.
    forward: Vec<Cx>,
    backward: Vec<Cx>,
    /// Bit-reversal permutation as (i, j) pairs with i < j.
    swaps: Vec<(usize, usize)>,
}

impl Fft {
    pub(super) fn new(n: usize) -> Self {
        let forward: Vec<Cx> = (0..n / 2)
            .map(|k| {
                let (s, c) = (-2.0 * PI * k as f64 / n as f64).sin_cos();
                Cx { re: c, im: s }
            })
            .collect();
        let backward = forward
            .iter()
            .map(|w| Cx {
                re: w.re,
                im: -w.im,
            })
            .collect();
        let bits = n.trailing_zeros();
        let swaps = (0..n)
            .filter_map(|i| {
                let j = if bits == 0 {
                    0
                } else {
                    i.reverse_bits() >> (usize::BITS - bits)
                };
                (i < j).then_some((i, j))
            })
            .collect();
        Fft {
            n,
            forward,
            backward,
            swaps,
        }
    }

    /// In-place unnormalised 1-D transform of `a` (length n).
    fn run(&self, a: &mut [Cx], inverse: bool) {
        let n = self.n;
        let tw = if inverse {
            &self.backward
        } else {
            &self.forward
        };
        for &(i, j) in &self.swaps {
            a.swap(i, j);
        }
        let mut len = 2;
        while len <= n {
            let half = len / 2;
            let step = n / len;
            for chunk in a.chunks_exact_mut(len) {
                let (lo, hi) = chunk.split_at_mut(half);
                for ((u, t), w) in lo
                    .iter_mut()
                    .zip(hi.iter_mut())
                    .zip(tw.iter().step_by(step))
                {
                    let v = Cx {
                        re: t.re * w.re - t.im * w.im,
                        im: t.re * w.im + t.im * w.re,
                    };
                    *t = Cx {
                        re: u.re - v.re,
                        im: u.im - v.im,
                    };
                    *u = Cx {
                        re: u.re + v.re,
                        im: u.im + v.im,
                    };
                }
            }
            len <<= 1;
        }
    }

    /// In-place transpose of the n×n grid, in 16×16 blocks to stay in cache.
    fn transpose(&self, a: &mut [Cx]) {
        const B: usize = 16;
        let n = self.n;
        for bi in (0..n).step_by(B) {
            for bj in (bi..n).step_by(B) {
                for i in bi..(bi + B).min(n) {
                    let j0 = if bi == bj { i + 1 } else { bj };
                    for j in j0..(bj + B).min(n) {
                        a.swap(i * n + j, j * n + i);
                    }
                }
            }
        }
    }

    /// Forward 2-D transform of a *real* n×n row-major grid (imaginary parts zero), leaving
    /// the spectrum *transposed* (rows, transpose, rows): elementwise products of two such
    /// spectra are still transposed products, and [`Fft::inverse_2d`] undoes the
    /// transposition, which saves two transposes. Rows flagged unused are known to be zero.
    ///
    /// The first pass transforms two real rows with one complex FFT (`z = x + i·y`, then
    /// `X_k = (Z_k + conj Z_-k)/2`, `Y_k = (Z_k - conj Z_-k)/2i`).
    pub(super) fn forward_2d(&self, a: &mut [Cx], rows_used: Option<&[bool]>) {
        let n = self.n;
        let mut z = vec![Cx::default(); n];
        for r in (0..n).step_by(2) {
            if !rows_used.is_none_or(|u| u[r] || u[r + 1]) {
                continue;
            }
            let (x, y) = a[r * n..(r + 2) * n].split_at_mut(n);
            for ((zk, xk), yk) in z.iter_mut().zip(x.iter()).zip(y.iter()) {
                *zk = Cx {
                    re: xk.re,
                    im: yk.re,
                };
            }
            self.run(&mut z, false);
            for k in 0..n {
                let (p, q) = (z[k], z[(n - k) % n]);
                x[k] = Cx {
                    re: 0.5 * (p.re + q.re),
                    im: 0.5 * (p.im - q.im),
                };
                y[k] = Cx {
                    re: 0.5 * (p.im + q.im),
                    im: -0.5 * (p.re - q.re),
                };
            }
        }
        self.transpose(a);
        a.chunks_mut(n).for_each(|row| self.run(row, false));
    }

    /// Inverse of [`Fft::forward_2d`] (takes a transposed spectrum, returns the grid in the
    /// normal layout), normalised, for spectra of *real* grids: the last pass inverts two rows
    /// with one complex FFT (`Z = X + i·Y` gives `x + i·y`), leaving imaginary parts zero.
    pub(super) fn inverse_2d(&self, a: &mut [Cx]) {
        let n = self.n;
        a.chunks_mut(n).for_each(|row| self.run(row, true));
        self.transpose(a);
        let scale = 1.0 / (n * n) as f64;
        let mut z = vec![Cx::default(); n];
        for r in (0..n).step_by(2) {
            let (x, y) = a[r * n..(r + 2) * n].split_at_mut(n);
            for ((zk, xk), yk) in z.iter_mut().zip(x.iter()).zip(y.iter()) {
                *zk = Cx {
                    re: xk.re - yk.im,
                    im: xk.im + yk.re,
                };
            }
            self.run(&mut z, true);
            for ((zk, xk), yk) in z.iter().zip(x.iter_mut()).zip(y.iter_mut()) {
                *xk = Cx {
                    re: zk.re * scale,
                    im: 0.0,
                };
                *yk = Cx {
                    re: zk.im * scale,
                    im: 0.0,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sky_fft_convolution_round_trips() {
        let fft = Fft::new(16);
        let orig: Vec<Cx> = (0..256)
            .map(|i| Cx {
                re: ((i * 37) % 11) as f64 - 5.0,
                im: 0.0,
            })
            .collect();
        let mut a = orig.clone();
        fft.forward_2d(&mut a, None);
        // DC term is the sum.
        let sum: f64 = orig.iter().map(|c| c.re).sum();
        assert!((a[0].re - sum).abs() < 1e-9);
        fft.inverse_2d(&mut a);
        for (x, y) in a.iter().zip(&orig) {
            assert!((x.re - y.re).abs() < 1e-12 && x.im.abs() < 1e-12);
        }
    }
}
