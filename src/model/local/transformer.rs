//! The decoder-only transformer of a GGUF file (`llama` and `qwen2`
//! architectures), with its key/value cache kept apart from the weights.
//!
//! candle-transformers has these two models, but each keeps its cache inside
//! the weights and cannot be cloned, so one prompt's cache cannot serve
//! several samples. Here the weights are shared (`&self`) and a [`Cache`] is a
//! plain value: prefill a prompt once, widen its cache to `n` rows, and decode
//! the `n` samples as one batch.

use std::sync::Arc;

use candle_core::quantized::{GgmlType, QMatMul, QStorage, QTensor, gguf_file};
use candle_core::{CpuStorage, CustomOp1, DType, Device, IndexOp, Layout, Module, Result, Tensor};

/// Layout facts read from the GGUF metadata.
#[derive(Clone, Debug)]
pub struct Shape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub embedding: usize,
    pub context: usize,
}

/// Rows from which a product uses candle's tiled kernels on a packed copy
/// (see [`Mat`]). Packing the 1.5B model's matrices costs about 1.6 s per
/// forward pass on 2 cores; its tiles then run about 41 rows/s against 33
/// from the blocks ([`selfrepair_kernels`]), so they meet near 280 rows.
const TILED_ROWS: usize = 256;

/// A matrix of `n` output rows over `k` inputs, as the GGUF stores it.
///
/// k-quant and 8-bit matrices stay in the file's blocks, once. candle's
/// `QMatMul` would repack each into wider tiles on first use and keep the
/// file's copy too, for the life of the process: the 1.5B model took 2.4 GB
/// (AVX2) to 4.0 GB (AVX-512 and AMX) that way instead of 1.4. So:
/// - one row (a decode step) is multiplied straight from the blocks by
///   candle's dot-product kernels (`k_quants::matmul`): it reads every
///   weight once and is bound by memory bandwidth, where the compact blocks
///   cost least;
/// - a few rows (a short prompt, a batch of decode steps) go to
///   [`selfrepair_kernels`], which unpack each Q4_K or Q6_K block once for
///   up to 8 rows (other block types to candle's dot products);
/// - a long prompt gets candle's tiled kernels on a copy of the matrix that
///   is packed for this one product and dropped after it.
///
/// Other types (f16, f32, the 4- and 5-bit types without k-quant blocks) go
/// to candle's `QMatMul`, which repacks none of them.
enum Mat {
    Blocks(Arc<QTensor>),
    Dense(QMatMul),
}

impl Mat {
    fn new(q: Arc<QTensor>) -> Result<Mat> {
        use candle_core::quantized::GgmlDType as G;
        Ok(match q.dtype() {
            G::Q4_0 | G::Q8_0 | G::Q2K | G::Q3K | G::Q4K | G::Q5K | G::Q6K => Mat::Blocks(q),
            _ => Mat::Dense(QMatMul::from_arc(q)?),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Mat::Blocks(q)
                if x.elem_count() / x.dim(candle_core::D::Minus1)?.max(1) >= TILED_ROWS =>
            {
                let copy = QTensor::new(
                    QStorage::from_data(q.data()?, &Device::Cpu, q.dtype())?,
                    q.shape().clone(),
                )?;
                QMatMul::from_qtensor(copy)?.forward(x)
            }
            Mat::Blocks(_) => x.contiguous()?.apply_op1_no_bwd(self),
            Mat::Dense(mm) => mm.forward(x),
        }
    }
}

impl CustomOp1 for Mat {
    fn name(&self) -> &'static str {
        "quantized-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, candle_core::Shape)> {
        let Mat::Blocks(q) = self else {
            candle_core::bail!("quantized matmul on a dense matrix");
        };
        let (n, k) = q.shape().dims2()?;
        let dims = l.dims();
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("quantized matmul: input is not contiguous");
        };
        if k == 0 || dims.last() != Some(&k) {
            candle_core::bail!("quantized matmul: input {dims:?} for a ({n}, {k}) matrix");
        }
        let x = &s.as_slice::<f32>()?[start..end];
        let m = x.len() / k;
        let mut out = vec![0f32; m * n];
        let data = q.data()?;
        use candle_core::quantized::GgmlDType as G;
        use candle_core::quantized::k_quants as kq;
        let mkn = (m, k, n);
        match q.dtype() {
            G::Q4_0 => blocks_matmul::<kq::BlockQ4_0>(mkn, x, &data, &mut out)?,
            G::Q8_0 => blocks_matmul::<kq::BlockQ8_0>(mkn, x, &data, &mut out)?,
            G::Q2K => blocks_matmul::<kq::BlockQ2K>(mkn, x, &data, &mut out)?,
            G::Q3K => blocks_matmul::<kq::BlockQ3K>(mkn, x, &data, &mut out)?,
            G::Q4K if m > 1 && selfrepair_kernels::q4k(mkn, x, blocks(&data, n, k)?, &mut out) => {}
            G::Q6K if m > 1 && selfrepair_kernels::q6k(mkn, x, blocks(&data, n, k)?, &mut out) => {}
            G::Q4K => blocks_matmul::<kq::BlockQ4K>(mkn, x, &data, &mut out)?,
            G::Q5K => blocks_matmul::<kq::BlockQ5K>(mkn, x, &data, &mut out)?,
            G::Q6K => blocks_matmul::<kq::BlockQ6K>(mkn, x, &data, &mut out)?,
            other => candle_core::bail!("quantized matmul: no kernel for {other:?}"),
        }
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        Ok((CpuStorage::F32(out), shape.into()))
    }
}

/// The `n × k / BLCK_SIZE` blocks of type `T` in a matrix's raw bytes.
fn blocks<T: GgmlType>(w: &[u8], n: usize, k: usize) -> Result<&[T]> {
    let count = n * k / T::BLCK_SIZE;
    if !k.is_multiple_of(T::BLCK_SIZE)
        || w.len() != count * std::mem::size_of::<T>()
        || !(w.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        candle_core::bail!(
            "a {:?} matrix of {n}x{k} cannot be {} bytes",
            T::DTYPE,
            w.len()
        );
    }
    // SAFETY: candle's block types are `repr(C)` structs of integers and
    // f16s, for which any bytes are a value; length and alignment are checked
    // above, and the slice borrows `w`.
    Ok(unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<T>(), count) })
}

/// `out = x · wᵀ` by candle's dot-product kernels, for `w` given as the raw
/// bytes of its blocks.
fn blocks_matmul<T: GgmlType>(
    (m, k, n): (usize, usize, usize),
    x: &[f32],
    w: &[u8],
    out: &mut [f32],
) -> Result<()> {
    candle_core::quantized::k_quants::matmul((m, k, n), x, blocks::<T>(w, n, k)?, out)
}

struct Layer {
    attn_norm: Tensor,
    wq: Mat,
    wk: Mat,
    wv: Mat,
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    wo: Mat,
    ffn_norm: Tensor,
    gate: Mat,
    up: Mat,
    down: Mat,
}

pub(crate) struct Weights {
    pub shape: Shape,
    /// Token embeddings, quantized; rows are dequantized as they are looked up.
    embed: Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Mat,
    cos: Tensor,
    sin: Tensor,
    eps: f32,
    neox: bool,
}

/// Keys and values for every layer in buffers with room to grow,
/// `(batch, kv_heads, capacity, head_dim)`; positions `..len` are filled.
/// New positions are written in place, so a cache is never cloned: samples
/// that share a prompt get their own copy from [`Cache::widen`].
#[derive(Default)]
pub(crate) struct Cache {
    kv: Vec<(Tensor, Tensor)>,
    /// Positions already in the cache.
    pub len: usize,
}

/// Room added whenever a cache runs out.
const CACHE_STEP: usize = 256;

impl Cache {
    /// A copy that can grow on its own: the `n` samples of one prompt each
    /// continue from a copy of the prompt's cache.
    pub fn fork(&self) -> Result<Cache> {
        let kv = self
            .kv
            .iter()
            .map(|(k, v)| Ok((k.copy()?, v.copy()?)))
            .collect::<Result<_>>()?;
        Ok(Cache { kv, len: self.len })
    }

    /// A copy holding only the first `len` positions.
    pub fn fork_at(&self, len: usize) -> Result<Cache> {
        let mut c = self.fork()?;
        c.len = len.min(self.len);
        Ok(c)
    }

    /// Append `k` and `v` (`(batch, kv_heads, seq, head_dim)`) to layer
    /// `i` at position `pos`, and return views of all its positions.
    fn append(&mut self, i: usize, pos: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, h, seq, d) = k.dims4()?;
        let need = pos + seq;
        if self.kv.len() <= i {
            let cap = need.next_multiple_of(CACHE_STEP);
            let z = Tensor::zeros((b, h, cap, d), k.dtype(), k.device())?;
            self.kv.push((z.clone(), z.zeros_like()?));
        }
        let (kb, vb) = &mut self.kv[i];
        if kb.dim(2)? < need {
            let cap = need.next_multiple_of(CACHE_STEP);
            let grow = |old: &Tensor| -> Result<Tensor> {
                let new = Tensor::zeros((b, h, cap, d), old.dtype(), old.device())?;
                new.slice_set(&old.narrow(2, 0, pos)?.contiguous()?, 2, 0)?;
                Ok(new)
            };
            *kb = grow(kb)?;
            *vb = grow(vb)?;
        }
        kb.slice_set(k, 2, pos)?;
        vb.slice_set(v, 2, pos)?;
        Ok((kb.narrow(2, 0, need)?, vb.narrow(2, 0, need)?))
    }
}

/// candle has SIMD kernels for the k-quants, Q4_0 and Q8_0 but not for
/// Q4_1, Q5_0 and Q5_1, which run several times slower; those are widened to
/// Q8_0 once at load (8 bits hold each 4- or 5-bit value within a small
/// fraction of its own quantisation step).
fn fast_type(t: QTensor) -> Result<QTensor> {
    use candle_core::quantized::GgmlDType as G;
    match t.dtype() {
        G::Q4_1 | G::Q5_0 | G::Q5_1 => QTensor::quantize(&t.dequantize(&Device::Cpu)?, G::Q8_0),
        _ => Ok(t),
    }
}

fn md<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value> {
    ct.metadata
        .get(key)
        .ok_or_else(|| candle_core::Error::Msg(format!("GGUF metadata has no `{key}`")))
}

impl Weights {
    pub fn load<R: std::io::Read + std::io::Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        dev: &Device,
    ) -> Result<Weights> {
        let arch = md(ct, "general.architecture")?.to_string()?.clone();
        let neox = match arch.as_str() {
            "qwen2" => true,
            "llama" => false,
            other => candle_core::bail!(
                "unsupported model architecture `{other}` (supported: llama, qwen2)"
            ),
        };
        let key = |k: &str| format!("{arch}.{k}");
        let u = |k: &str| -> Result<usize> { Ok(md(ct, &key(k))?.to_u32()? as usize) };
        let heads = u("attention.head_count")?;
        let kv_heads = u("attention.head_count_kv")?;
        let embedding = u("embedding_length")?;
        let layers_n = u("block_count")?;
        let context = u("context_length")?;
        let eps = md(ct, &key("attention.layer_norm_rms_epsilon"))?.to_f32()?;
        let base = md(ct, &key("rope.freq_base"))
            .and_then(|v| v.to_f32())
            .unwrap_or(10_000.0);
        let head_dim = embedding / heads;
        let rope_dim = md(ct, &key("rope.dimension_count"))
            .and_then(|v| v.to_u32())
            .map_or(head_dim, |v| v as usize);

        let embed = Arc::new(ct.tensor(r, "token_embd.weight", dev)?);
        let output = match ct.tensor(r, "output.weight", dev) {
            Ok(t) => Mat::new(Arc::new(t))?,
            // Tied embeddings (SmolLM2, Qwen2.5 0.5B/1.5B): one copy serves both.
            Err(_) => Mat::new(embed.clone())?,
        };
        let norm = ct.tensor(r, "output_norm.weight", dev)?.dequantize(dev)?;
        let mut layers = Vec::with_capacity(layers_n);
        for i in 0..layers_n {
            let p = format!("blk.{i}");
            let mat = |n: &str, r: &mut R| -> Result<Mat> {
                Mat::new(Arc::new(fast_type(ct.tensor(
                    r,
                    &format!("{p}.{n}.weight"),
                    dev,
                )?)?))
            };
            let bias = |n: &str, r: &mut R| -> Result<Option<Tensor>> {
                match ct.tensor(r, &format!("{p}.{n}.bias"), dev) {
                    Ok(t) => Ok(Some(t.dequantize(dev)?)),
                    Err(_) => Ok(None),
                }
            };
            let dq = |n: &str, r: &mut R| -> Result<Tensor> {
                let t: QTensor = ct.tensor(r, &format!("{p}.{n}.weight"), dev)?;
                t.dequantize(dev)
            };
            layers.push(Layer {
                attn_norm: dq("attn_norm", r)?,
                wq: mat("attn_q", r)?,
                wk: mat("attn_k", r)?,
                wv: mat("attn_v", r)?,
                bq: bias("attn_q", r)?,
                bk: bias("attn_k", r)?,
                bv: bias("attn_v", r)?,
                wo: mat("attn_output", r)?,
                ffn_norm: dq("ffn_norm", r)?,
                gate: mat("ffn_gate", r)?,
                up: mat("ffn_up", r)?,
                down: mat("ffn_down", r)?,
            });
        }
        let (cos, sin) = rope_tables(rope_dim, base, context, dev)?;
        Ok(Weights {
            shape: Shape {
                heads,
                kv_heads,
                head_dim,
                embedding,
                context,
            },
            embed,
            layers,
            norm,
            output,
            cos,
            sin,
            eps,
            neox,
        })
    }

    /// Run tokens through the model and return the logits of each row's
    /// last position, `(rows, vocab)`. With one cache, `tokens` is any number
    /// of positions (a prompt); with several, one token per cache (a decode
    /// step of several sequences, each at its own position). The matrix
    /// products, which read every weight, are shared by all rows; only the
    /// attention, which reads each row's own cache, runs row by row.
    pub fn forward(&self, tokens: &[u32], caches: &mut [Cache]) -> Result<Tensor> {
        let dev = &Device::Cpu;
        let rows = caches.len();
        if rows == 0 || tokens.is_empty() || (rows > 1 && tokens.len() != rows) {
            candle_core::bail!("forward: {} tokens for {rows} sequences", tokens.len());
        }
        let seq = tokens.len() / rows;
        for c in caches.iter() {
            if c.len + seq > self.shape.context {
                candle_core::bail!(
                    "the prompt and reply need {} tokens, more than the model's context of {}",
                    c.len + seq,
                    self.shape.context
                );
            }
        }
        let ids = Tensor::from_slice(tokens, (rows * seq,), dev)?;
        let mut x = self
            .embed
            .embedding(&ids)?
            .reshape((rows, seq, self.shape.embedding))?;
        // A prompt attends causally; a single new position sees everything.
        let mask = match seq {
            1 => None,
            _ => Some(causal_mask(seq, caches[0].len, dev)?),
        };
        let at: Vec<(Tensor, Tensor)> = caches
            .iter()
            .map(|c| {
                Ok((
                    self.cos.narrow(0, c.len, seq)?,
                    self.sin.narrow(0, c.len, seq)?,
                ))
            })
            .collect::<Result<_>>()?;
        for (i, l) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &l.attn_norm, self.eps)?;
            let qkv = [l.wq.forward(&h)?, l.wk.forward(&h)?, l.wv.forward(&h)?];
            let mut ys = Vec::with_capacity(rows);
            for (r, cache) in caches.iter_mut().enumerate() {
                let row = |t: &Tensor| t.narrow(0, r, 1);
                let qkv_r = [row(&qkv[0])?, row(&qkv[1])?, row(&qkv[2])?];
                ys.push(self.attention(l, &qkv_r, cache, i, mask.as_ref(), &at[r])?);
            }
            let y = Tensor::cat(&ys, 0)?;
            x = (x + l.wo.forward(&y)?)?;
            let h = candle_nn::ops::rms_norm(&x, &l.ffn_norm, self.eps)?;
            let gu = [l.gate.forward(&h)?, l.up.forward(&h)?];
            let g = candle_nn::ops::silu(&gu[0])?;
            let m = l.down.forward(&(g * &gu[1])?)?;
            x = (x + m)?;
        }
        for c in caches.iter_mut() {
            c.len += seq;
        }
        let last = x.i((.., seq - 1, ..))?.contiguous()?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.eps)?;
        self.output.forward(&last)
    }

    /// One sequence's attention output, `(1, seq, heads * head_dim)`, from
    /// its rows of the q, k, v projections; appends its keys and values.
    fn attention(
        &self,
        l: &Layer,
        qkv: &[Tensor; 3],
        cache: &mut Cache,
        layer: usize,
        mask: Option<&Tensor>,
        (cos, sin): &(Tensor, Tensor),
    ) -> Result<Tensor> {
        let (b, seq, _) = qkv[0].dims3()?;
        let s = &self.shape;
        let proj = |t: &Tensor, bias: &Option<Tensor>, heads: usize| -> Result<Tensor> {
            let mut t = t.clone();
            if let Some(bias) = bias {
                t = t.broadcast_add(bias)?;
            }
            t.reshape((b, seq, heads, s.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = self.rope(&proj(&qkv[0], &l.bq, s.heads)?, cos, sin)?;
        let k = self.rope(&proj(&qkv[1], &l.bk, s.kv_heads)?, cos, sin)?;
        let v = proj(&qkv[2], &l.bv, s.kv_heads)?;
        let pos = cache.len;
        let (k, v) = cache.append(layer, pos, &k, &v)?;
        // Grouped-query attention without copying keys and values per head:
        // the query heads that share a key head become extra query rows.
        let rep = s.heads / s.kv_heads;
        let q = q.reshape((b, s.kv_heads, rep * seq, s.head_dim))?;
        let mut att = (q.matmul(&k.t()?)? / (s.head_dim as f64).sqrt())?;
        if let Some(m) = mask {
            att = att.broadcast_add(&m.repeat((rep, 1))?)?;
        }
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&v)?.reshape((b, s.heads, seq, s.head_dim))?;
        y.transpose(1, 2)?.reshape((b, seq, s.heads * s.head_dim))
    }

    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        if self.neox {
            candle_nn::rotary_emb::rope(x, cos, sin)
        } else {
            candle_nn::rotary_emb::rope_i(x, cos, sin)
        }
    }
}

fn rope_tables(dim: usize, base: f32, context: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let inv: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
        .collect();
    let inv = Tensor::new(inv.as_slice(), dev)?;
    let t = Tensor::arange(0u32, context as u32, dev)?
        .to_dtype(DType::F32)?
        .reshape((context, 1))?;
    let f = t.matmul(&inv.reshape((1, inv.elem_count()))?)?;
    Ok((f.cos()?, f.sin()?))
}

/// `(seq, pos + seq)`: 0 where a query may look, -inf where it may not.
fn causal_mask(seq: usize, pos: usize, dev: &Device) -> Result<Tensor> {
    let cols = pos + seq;
    let m: Vec<f32> = (0..seq)
        .flat_map(|i| (0..cols).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_slice(&m, (seq, cols), dev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;

    /// Both ways of multiplying a quantized matrix (the file's blocks for a
    /// few rows, a packed copy for many) give the product with the
    /// dequantized matrix, up to the rounding of the input to 8 bits, and
    /// what candle's own `QMatMul` gives, for each type a GGUF's matrices
    /// come in.
    #[test]
    fn block_products_match_candles_own() -> Result<()> {
        let dev = &Device::Cpu;
        let (n, k) = (36, 512);
        for dtype in [
            GgmlDType::Q4K,
            GgmlDType::Q6K,
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
        ] {
            let w = Tensor::randn(0f32, 1.0, (n, k), dev)?;
            let q = Arc::new(QTensor::quantize(&w, dtype)?);
            let mat = Mat::new(q.clone())?;
            assert!(matches!(mat, Mat::Blocks(_)), "{dtype:?} stays in blocks");
            for rows in [1, 3, 9, TILED_ROWS + 1] {
                let x = Tensor::randn(0f32, 1.0, (1, rows, k), dev)?;
                let exact = x.broadcast_matmul(&q.dequantize(dev)?.t()?)?;
                let candle = QMatMul::from_arc(q.clone())?.forward(&x)?;
                let got = mat.forward(&x)?;
                assert_eq!(got.dims(), &[1, rows, n]);
                let scale = exact.abs()?.max_all()?.to_scalar::<f32>()?;
                for (name, want) in [("dequantized", &exact), ("QMatMul", &candle)] {
                    let diff = (&got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                    assert!(
                        diff <= scale * 2e-2,
                        "{dtype:?}, {rows} rows, against {name}: off by {diff} (values up to {scale})"
                    );
                }
            }
        }
        Ok(())
    }

    /// A matrix whose bytes do not match its shape is an error, not a read
    /// past its end.
    #[test]
    fn a_short_matrix_is_refused() {
        let mut out = vec![0f32; 4];
        let x = vec![0f32; 256];
        let w = vec![0u8; 100];
        let e = blocks_matmul::<candle_core::quantized::k_quants::BlockQ4K>(
            (1, 256, 4),
            &x,
            &w,
            &mut out,
        );
        assert!(e.is_err());
    }
}
