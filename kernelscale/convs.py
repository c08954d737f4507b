"""Convolution algorithms: the same 2-D convolution, computed three ways.

Every function here computes what flax's `nn.Conv` computes (a stride-1
cross-correlation, NHWC input, HWIO kernel, SAME or VALID padding, no
dilation), so a network can swap one for another without changing its
parameters or its function; only the float rounding differs (relative error
~1e-6 in float32, checked in tests/convs_test.py).

- `xla`:  `lax.conv_general_dilated`, what `nn.Conv` runs; XLA picks the
          kernel (Eigen or YNNPACK on CPU, cuDNN on GPU, the MXU on TPU).
- `taps`: for few input channels (the first layer, on a 1-channel image):
          the forward is k*k shifted multiply-adds that XLA fuses into one
          elementwise loop; the gradients are `xla`'s. XLA:CPU runs a
          1-input-channel conv as a contraction of length k*k, slow for small k.
- `dft`:  the convolution theorem, the DFTs written as small real matmuls
          (`dft_conv`). Its work grows with the padded size L = in + k//2,
          not with k*k: at k=7 on the seed net's 14x14x32 -> 64 layer it
          needs about 1/6 of the direct conv's multiply-adds.

`conv_algo=auto` picks one per layer with `choose`: a rule measured on this
project's machine (WORKSPACE.md); `benchmarks/conv_algos.py` times every
algorithm per layer so the rule can be checked on any machine.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

ALGOS = ('xla', 'taps', 'dft')
CONV_ALGOS = ('xla', 'auto')   # values of the config field `conv_algo`
TAPS_MAX_CHANNELS = 4          # `taps` only for layers with at most this many input channels,
TAPS_MAX_KERNEL = 5            # and kernels up to this size (slower than `xla` from k=7 here)
DFT_MIN_KERNEL = 5             # `dft` from this kernel size up (slower than `xla` at k=3 here)
FEW_CHANNELS_DFT_MIN_KERNEL = 11  # ... and for few-channel layers from this size (k=9: a tie)


def substituted(algos) -> bool:
  """True when any of the given per-layer algorithms is not nn.Conv's (`xla`)."""
  return any(a != 'xla' for a in algos)


def choose(platform: str, c_in: int, kernel_size: int, dtype: str = 'float32') -> str:
  """The algorithm `conv_algo=auto` runs for one layer.

  GPU and TPU: `xla` (cuDNN and the TPU compiler choose their own algorithms).
  CPU, float32 (seed net, batch 128, 2-core Zen 4, whole train steps timed
  side by side; WORKSPACE.md): `taps` for <= TAPS_MAX_CHANNELS input channels
  and k <= TAPS_MAX_KERNEL, `dft` for them from FEW_CHANNELS_DFT_MIN_KERNEL;
  `dft` for more channels and k >= DFT_MIN_KERNEL; else `xla`. Other dtypes: `xla` (the rule was measured in float32 only).
  The rule was measured on XLA's Eigen conv path (cpu_conv=eigen, what
  cpu_conv=auto picks here); on the YNNPACK path the xla layers it keeps are
  slower and the balance can differ: check with benchmarks/conv_algos.py.
  """
  if platform != 'cpu' or dtype != 'float32':
    return 'xla'
  if c_in <= TAPS_MAX_CHANNELS:
    if kernel_size <= TAPS_MAX_KERNEL:
      return 'taps'
    return 'dft' if kernel_size >= FEW_CHANNELS_DFT_MIN_KERNEL else 'xla'
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
  # ReLU's masks in the backward pass), so it runs 2-3 times per step; that
  # still beat lax.conv for k <= 5 here. Neither lax.optimization_barrier (XLA
  # drops it before fusion) nor a lax.cond around it stopped the duplication
  # for less than it cost (WORKSPACE.md).
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


def dft_conv(x_BxHxWxC, w_KxKxCxO, padding: str):
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
  the only layout copies are one transpose in and one out; jax derives the
  backward pass as matmuls too (no FFT op, no complex dtype). The input's
  zero padding is never materialised: it is a phase in the S1/S2 matrices.
  """
  B, H, W, C = x_BxHxWxC.shape
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
  xt = jnp.transpose(x_BxHxWxC.astype(jnp.float32), (2, 1, 0, 3))  # W,H,B,C
  A = dot(Gw, xt, (((1,), (0,)), ((), ())))                      # [2Lr, H, B, C]
  A = A.reshape(Lr, 2 * H, B * C)                                # [v, (t, h), (b, c)]
  # S2: rows h -> all frequencies u, complex: X = (ch + i sh)(Ar + i Ai)
  ch, sh = _dft_mats(H, lo, L, half=False)                       # [L, H]
  Mr = np.concatenate([ch, -sh], axis=1).astype(f32)             # [u, (t, h)] -> real part
  Mi = np.concatenate([sh, ch], axis=1).astype(f32)              # -> imaginary part
  bd = (((2,), (1,)), ((0,), (0,)))                              # batch v, contract (t, h)
  Xr = dot(jnp.broadcast_to(Mr, (Lr,) + Mr.shape), A, bd).reshape(Lr, L, B, C)
  Xi = dot(jnp.broadcast_to(Mi, (Lr,) + Mi.shape), A, bd).reshape(Lr, L, B, C)
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
  Z = dot(jnp.broadcast_to(Ih, (Lr,) + Ih.shape), Y, (((2,), (1,)), ((0,), (0,))))  # [v, (s, i), (B, O)]
  # S5: inverse over v (half spectrum -> real), contracting (v, s): y[j, i, B, O]
  cv = np.full(Lr, 2.0)
  cv[0] = 1.0
  if L % 2 == 0:
    cv[-1] = 1.0
  ang = 2 * np.pi * np.outer(np.arange(out_w), np.arange(Lr)) / L
  Iw = np.stack([np.cos(ang) * cv / L, -np.sin(ang) * cv / L], axis=-1)  # [j, v, s]
  Iw = Iw.reshape(out_w, 2 * Lr).astype(f32)
  y = dot(Iw, Z.reshape(2 * Lr, out_h * B * O), (((1,), (0,)), ((), ())))
  y = jnp.transpose(y.reshape(out_w, out_h, B, O), (2, 1, 0, 3))
  return y.astype(x_BxHxWxC.dtype)


CONVS = {'xla': xla_conv, 'taps': taps_conv, 'dft': dft_conv}


def conv(algo: str, x_BxHxWxC, w_KxKxCxO, padding: str):
  """Runs one algorithm by name."""
  if algo not in CONVS:
    raise ValueError(f'conv algorithm {algo!r}; known: {ALGOS}')
  return CONVS[algo](x_BxHxWxC, w_KxKxCxO, padding)
