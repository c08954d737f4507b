"""Convolution algorithms: the same 2-D convolution, computed four ways.

Every function here computes what flax's `nn.Conv` computes (a stride-1
cross-correlation, NHWC input, HWIO kernel, SAME or VALID padding, no
dilation), so a network can swap one for another without changing its
parameters or its function; only the float rounding differs (relative error
~1e-6 in float32, checked in tests/net/convs_test.py).

- `xla`:  `lax.conv_general_dilated`, what `nn.Conv` runs; XLA picks the
          kernel (Eigen or YNNPACK on CPU, cuDNN on GPU, the MXU on TPU).
- `taps`: for few input channels (the first layer, on a 1-channel image):
          the forward is k*k shifted multiply-adds that XLA fuses into one
          elementwise loop; the gradients are `xla`'s. XLA:CPU runs a
          1-input-channel conv as a contraction of length k*k, slow for small k.
- `rows`: also for few input channels, larger k: each output row tile is
          one matmul of k input row segments against a banded (Toeplitz)
          matrix holding the kernel; gradients are `xla`'s.
- `dft`:  the convolution theorem, the DFTs written as small real matmuls
          (`_dft_whbc`). Its work grows with the padded size L = in + k//2,
          not with k*k: at k=7 on the seed net's 14x14x32 -> 64 layer it
          needs about 1/6 of the direct conv's multiply-adds. It works in
          [W, H, B, C] (`LAYOUT`), which models.ConvNet then carries between
          layers, so two dft layers in a row need no transpose.

`conv_algo=auto` picks one per layer with `choose`: a rule measured on this
project's machines (docs/methods.md); `benchmarks/conv_algos.py` times every
algorithm per layer so the rule can be checked on any machine.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

ALGOS = ('xla', 'taps', 'dft', 'rows')
LAYOUTS = ('NHWC', 'WHBC')     # WHBC: [W, H, B, C], dft's own layout
WHBC_FROM_NHWC = (2, 1, 0, 3)  # swaps axes 0 and 2: also NHWC from WHBC
CONV_ALGOS = ('xla', 'auto')   # values of the config field `conv_algo`
FEW_CHANNELS = 4               # layers with at most this many input channels: `taps` or `rows`,
TAPS_MAX_KERNEL = 3            # `taps` up to this kernel size, `rows` above (taps is slower from k=5)
DFT_MIN_KERNEL = 5             # more channels: `dft` from this kernel size up (slower than `xla` at k=3)
ROWS_TILE = 7                  # output columns per matmul row in `rows` (docs/methods.md)


def choose(platform: str, c_in: int, kernel_size: int, dtype: str = 'float32') -> str:
  """The algorithm `conv_algo=auto` runs for one layer.

  GPU and TPU: `xla` (cuDNN and the TPU compiler choose their own algorithms).
  CPU, float32 (set from whole seed train steps timed side by side; machines,
  dates and figures in docs/methods.md): for <= FEW_CHANNELS
  input channels `taps` up to k = TAPS_MAX_KERNEL and `rows` above; for more channels `dft` from
  k = DFT_MIN_KERNEL, else `xla`. Other dtypes: `xla` (the rule was measured
  in float32 only).
  The rule was measured on XLA's Eigen conv path (cpu_conv=eigen, what
  cpu_conv=auto picks here); on the YNNPACK path the xla layers it keeps are
  slower and the balance can differ: check with benchmarks/conv_algos.py.
  """
  if platform != 'cpu' or dtype != 'float32':
    return 'xla'
  if c_in <= FEW_CHANNELS:
    return 'taps' if kernel_size <= TAPS_MAX_KERNEL else 'rows'
  return 'dft' if kernel_size >= DFT_MIN_KERNEL else 'xla'


def _pads(padding: str, kernel_size: int) -> tuple[int, int]:
  """(low, high) zero padding of each spatial side, as XLA pads SAME/VALID at stride 1."""
  if padding == 'SAME':
    return (kernel_size - 1) // 2, kernel_size // 2
  if padding == 'VALID':
    return 0, 0
  raise ValueError(f'padding: {padding!r}; expected SAME or VALID')


def xla_conv(x_BxHxWxC, w_KxKxCxO, padding: str):
  """`nn.Conv`'s convolution: lax.conv_general_dilated, stride 1."""
  return jax.lax.conv_general_dilated(
      x_BxHxWxC, w_KxKxCxO, (1, 1), padding,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _taps_forward(x_BxHxWxC, w_KxKxCxO, padding: str):
  k = w_KxKxCxO.shape[0]
  lo, hi = _pads(padding, k)
  x = jnp.pad(x_BxHxWxC, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
  out_h, out_w = x.shape[1] - k + 1, x.shape[2] - k + 1
  acc = None
  for a in range(k):
    for b in range(k):
      window = x[:, a:a + out_h, b:b + out_w, :]  # B, out_h, out_w, C
      if x.shape[-1] == 1:
        term = window * w_KxKxCxO[a, b, 0]
      else:
        term = jnp.einsum('bhwc,co->bhwo', window, w_KxKxCxO[a, b])
      acc = term if acc is None else acc + term
  # XLA fuses this loop into each of its consumers (ReLU+pool, the pool's and the
  # ReLU's masks in the backward pass), so it runs 2-3 times per step. Why it is
  # still the choice at small k, and what failed to stop the duplication:
  # docs/methods.md and docs/journal/.
  return acc


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def taps_conv(x_BxHxWxC, w_KxKxCxO, padding: str):
  """Forward as k*k fused multiply-adds; gradients as `xla_conv`'s.

  A custom_vjp: reverse mode (grad, vjp) only; jax.jvp / jax.hessian through it
  fail. The k*k terms add in the input dtype (choose() uses it for float32 only).
  """
  return _taps_forward(x_BxHxWxC, w_KxKxCxO, padding)


def _taps_fwd(x, w, padding):
  return _taps_forward(x, w, padding), (x, w)


def _taps_bwd(padding, res, g):
  x, w = res
  _, vjp = jax.vjp(lambda x, w: xla_conv(x, w, padding), x, w)
  return vjp(g)


taps_conv.defvjp(_taps_fwd, _taps_bwd)


def _rows_forward(x_BxHxWxC, w_KxKxCxO, padding: str):
  """Each output row tile as one matmul against a banded (Toeplitz) kernel matrix.

  For output row i and a tile of T = ROWS_TILE output columns, the k input
  rows i..i+k-1, over the tile's columns plus k-1, are k contiguous row
  segments (k * (T+k-1) * C values); one matmul maps them to the tile's T*O
  outputs through a [k*(T+k-1)*C, T*O] matrix that holds the kernel on its
  diagonals: [B*out_h*tiles, k*(T+k-1)*C] @ [k*(T+k-1)*C, T*O], NHWC out.
  (T+k-1)/k of its products are with the band's zeros (~1.9x at k=7), but it
  is one large matmul in place of the length-k*k*C contraction that XLA:CPU
  runs slowly for few-channel layers.
  """
  B, H, W, C = x_BxHxWxC.shape
  k, O = w_KxKxCxO.shape[0], w_KxKxCxO.shape[-1]
  lo, hi = _pads(padding, k)
  out_h, out_w = H + lo + hi - k + 1, W + lo + hi - k + 1
  T = min(ROWS_TILE, out_w)
  tiles = -(-out_w // T)
  S = T + k - 1                        # input columns one tile reads
  xp = jnp.pad(x_BxHxWxC, ((0, 0), (lo, hi), (lo, tiles * T + k - 1 - W - lo), (0, 0)))
  # [B, out_h, (tile, a), S, C]: input row i+a, the columns tile t reads
  segs = jnp.stack([xp[:, a:a + out_h, t * T:t * T + S, :]
                    for t in range(tiles) for a in range(k)], axis=2)
  segs = segs.reshape(B, out_h, tiles, k * S * C)
  band = np.zeros((k, S, T), np.float32)  # band[b, j, v] = 1 where input column j = v + b
  for b in range(k):
    band[b, np.arange(T) + b, np.arange(T)] = 1.0
  kmat = jnp.einsum('bjv,abco->ajcvo', band.astype(w_KxKxCxO.dtype), w_KxKxCxO)
  y = jax.lax.dot_general(segs, kmat.reshape(k * S * C, T * O), (((3,), (0,)), ((), ())),
                          preferred_element_type=x_BxHxWxC.dtype)
  return y.reshape(B, out_h, tiles * T, O)[:, :, :out_w]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def rows_conv(x_BxHxWxC, w_KxKxCxO, padding: str):
  """Forward as `_rows_forward`'s banded matmuls; gradients as `xla_conv`'s.

  A custom_vjp, like `taps_conv` (reverse mode only). The gradients jax would
  derive from the matmul ran slower in whole steps than lax.conv's.
  """
  return _rows_forward(x_BxHxWxC, w_KxKxCxO, padding)


rows_conv.defvjp(lambda x, w, padding: (_rows_forward(x, w, padding), (x, w)), _taps_bwd)


def dft_size(in_hw: int, kernel_size: int, padding: str) -> int:
  """DFT length L per spatial side for which circular correlation equals the padded one.

  With the input placed at offset `lo` in a length-L zero buffer, output i
  reads buffer[i .. i+k-1]; reads past L wrap to buffer[0 .. lo-1], which are
  zeros, as long as out + k - 1 - lo <= L. The buffer must also hold the
  input: L >= lo + in. (SAME, odd k: L = in + (k-1)/2; VALID: L = in.)
  """
  lo, hi = _pads(padding, kernel_size)
  out = in_hw + lo + hi - kernel_size + 1
  return max(out + kernel_size - 1 - lo, lo + in_hw)


def _dft_mats(n_in: int, offset: int, L: int, half: bool):
  """Forward DFT (cos, -sin), [frequencies, n_in], for inputs at `offset` in length L."""
  F = L // 2 + 1 if half else L
  ang = 2 * np.pi * np.outer(np.arange(F), np.arange(n_in) + offset) / L
  return np.cos(ang), -np.sin(ang)


def _const_matmul(M: np.ndarray, y, batch: int = 0):
  """M @ y for a constant M ([m, k], or with `batch`: the same M for each of y's
  `batch` leading slices, y [batch, k, n]); its gradient multiplies by M's
  transpose, precomputed, so that XLA sees [m, k] @ [k, n] both ways (jax's
  own transpose rule hands XLA:CPU a transposed operand, which ran slower for
  dft's S4 stage: docs/methods.md).
  """
  Mt = np.ascontiguousarray(M.T)

  def mm(A, v):
    A = jnp.asarray(A, v.dtype)
    if batch:
      return jax.lax.dot_general(jnp.broadcast_to(A, (batch,) + A.shape), v,
                                 (((2,), (1,)), ((0,), (0,))),
                                 preferred_element_type=jnp.float32)
    return jax.lax.dot_general(A, v, (((1,), (0,)), ((), ())),
                               preferred_element_type=jnp.float32)

  @jax.custom_vjp
  def f(v):
    return mm(M, v)
  f.defvjp(lambda v: (mm(M, v), None), lambda _, g: (mm(Mt, g),))
  return f(y)


def _dft_whbc(x_WxHxBxC, w_KxKxCxO, padding: str):
  """The convolution theorem with every DFT written as a small real matmul.

  Stages (v: column frequencies, L//2+1 of them since the input is real; u:
  row frequencies, all L; complex values are carried as real/imaginary pairs):
    S1  columns w -> v          one matmul      [2Lr, W] @ [W, H*B*C]
    S2  rows h -> u (complex)   batched over v  [L, 2H] @ [2H, B*C], twice (re, im)
    S3  Y = X * conj(W)         batched over (v, u): [B, C] @ [C, O], four times
    S4  u -> output rows i      batched over v  [2 out_h, 2L] @ [2L, B*O]
    S5  v -> output columns j   one matmul      [out_w, 2Lr] @ [2Lr, out_h*B*O]
  The kernel's spectrum is one more matmul, [3*L*Lr, k*k] @ [k*k, C*O]. Each
  stage's operands are contiguous as they come out of the previous one, so
  it takes its input as [W, H, B, C] and returns [out_w, out_h, B, O] (the
  layout the network carries between such layers: models.ConvNet); jax
  derives the backward pass as matmuls too (no FFT op, no complex dtype). The input's
  zero padding is never materialised: it is a phase in the S1/S2 matrices.
  """
  W, H, B, C = x_WxHxBxC.shape
  k, O = w_KxKxCxO.shape[0], w_KxKxCxO.shape[-1]
  lo, hi = _pads(padding, k)
  out_h, out_w = H + lo + hi - k + 1, W + lo + hi - k + 1
  L = max(dft_size(H, k, padding), dft_size(W, k, padding))
  Lr = L // 2 + 1
  f32 = np.float32
  dot = functools.partial(jax.lax.dot_general, preferred_element_type=jnp.float32)
  # S1: columns w -> half spectrum v (real, imag): [Lr, 2, H, B, C]
  cw, sw = _dft_mats(W, lo, L, half=True)                        # [Lr, W]
  Gw = np.stack([cw, sw], axis=1).reshape(2 * Lr, W).astype(f32)  # rows (v, t)
  xt = x_WxHxBxC.astype(jnp.float32)
  A = _const_matmul(Gw, xt)                                      # [2Lr, H, B, C]
  A = A.reshape(Lr, 2 * H, B * C)                                # [v, (t, h), (b, c)]
  # S2: rows h -> all frequencies u, complex: X = (ch + i sh)(Ar + i Ai)
  ch, sh = _dft_mats(H, lo, L, half=False)                       # [L, H]
  Mr = np.concatenate([ch, -sh], axis=1).astype(f32)             # [u, (t, h)] -> real part
  Mi = np.concatenate([sh, ch], axis=1).astype(f32)              # -> imaginary part
  Xr = _const_matmul(Mr, A, batch=Lr).reshape(Lr, L, B, C)
  Xi = _const_matmul(Mi, A, batch=Lr).reshape(Lr, L, B, C)
  # Kernel spectrum W = DFT(w) (kernel at offset 0) as one matmul, with the
  # signs that the product X * conj(W) needs folded in: [Wr, Wi, -Wi].
  ckw, skw = _dft_mats(k, 0, L, half=True)                       # [Lr, k]: cos, -sin
  ckh, skh = _dft_mats(k, 0, L, half=False)                      # [L, k]
  re = np.einsum('ua,vb->vuab', ckh, ckw) - np.einsum('ua,vb->vuab', skh, skw)
  im = np.einsum('ua,vb->vuab', ckh, skw) + np.einsum('ua,vb->vuab', skh, ckw)
  D = np.stack([re, im, -im]).reshape(3 * Lr * L, k * k).astype(f32)
  Wf = dot(D, w_KxKxCxO.astype(jnp.float32).reshape(k * k, C * O), (((1,), (0,)), ((), ())))
  Wr, Wi, Wn = Wf.reshape(3, Lr, L, C, O)
  # S3: Y = X * conj(W) per frequency (batch v, u): [B, C] @ [C, O]; real and
  # imaginary parts stacked on axis 1 for the inverse: [v, 2, u, B, O]
  fd = (((3,), (2,)), ((0, 1), (0, 1)))
  Y = jnp.stack([dot(Xr, Wr, fd) + dot(Xi, Wi, fd),
                 dot(Xi, Wr, fd) + dot(Xr, Wn, fd)], axis=1).reshape(Lr, 2 * L, B * O)
  # S4: inverse over u, only the out_h rows kept: Z = (ci + i si)/L (Yr + i Yi)
  ang = 2 * np.pi * np.outer(np.arange(out_h), np.arange(L)) / L
  ci, si = np.cos(ang) / L, np.sin(ang) / L
  Ih = np.block([[ci, -si], [si, ci]]).astype(f32)               # [(s, i), (t, u)]
  Z = _const_matmul(Ih, Y, batch=Lr)                             # [v, (s, i), (B, O)]
  # S5: inverse over v (half spectrum -> real), contracting (v, s): y[j, i, B, O]
  cv = np.full(Lr, 2.0)
  cv[0] = 1.0
  if L % 2 == 0:
    cv[-1] = 1.0
  ang = 2 * np.pi * np.outer(np.arange(out_w), np.arange(Lr)) / L
  Iw = np.stack([np.cos(ang) * cv / L, -np.sin(ang) * cv / L], axis=-1)  # [j, v, s]
  Iw = Iw.reshape(out_w, 2 * Lr).astype(f32)
  y = _const_matmul(Iw, Z.reshape(2 * Lr, out_h * B * O))
  return y.reshape(out_w, out_h, B, O).astype(x_WxHxBxC.dtype)



# Each algorithm's own activation layout, and its function in that layout.
LAYOUT = {'xla': 'NHWC', 'taps': 'NHWC', 'dft': 'WHBC', 'rows': 'NHWC'}
NATIVE = {'xla': xla_conv, 'taps': taps_conv, 'dft': _dft_whbc, 'rows': rows_conv}


def _check(algo: str) -> None:
  if algo not in NATIVE:
    raise ValueError(f'conv algorithm {algo!r}; known: {ALGOS}')


def conv(algo: str, x_BxHxWxC, w_KxKxCxO, padding: str):
  """Runs one algorithm by name, NHWC in and out."""
  y = conv_native(algo, to_layout(x_BxHxWxC, 'NHWC', layout(algo)), w_KxKxCxO, padding)
  return to_layout(y, layout(algo), 'NHWC')


def layout(algo: str) -> str:
  """The activation layout an algorithm takes and returns (`LAYOUTS`)."""
  _check(algo)
  return LAYOUT[algo]


def conv_native(algo: str, x, w_KxKxCxO, padding: str):
  """Runs one algorithm on, and returns, activations in its own layout (`LAYOUT[algo]`)."""
  _check(algo)
  return NATIVE[algo](x, w_KxKxCxO, padding)


def to_layout(x, src: str, dst: str):
  """Activations from layout `src` to `dst` (NHWC or WHBC); a no-op when they match."""
  for name in (src, dst):
    if name not in LAYOUTS:
      raise ValueError(f'layout {name!r}; known: {LAYOUTS}')
  return x if src == dst else jnp.transpose(x, WHBC_FROM_NHWC)  # the same swap both ways
