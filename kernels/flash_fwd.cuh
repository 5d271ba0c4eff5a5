/* FlashAttention-2-style forward pass over a BlockMask.
 *
 * Compiled by NVRTC after the generated mask text (which defines
 * fm_mask_env and fm_mask_eval). Options choose the variant:
 *   FM_HEAD_DIM    64 or 128
 *   FM_DTYPE_BF16  defined: bf16 inputs, else fp16
 *   FM_MASK_INT32  defined: the mask's 32-bit arithmetic variant
 *
 * One thread block per (query tile of 64 rows, head, batch); two warps,
 * each owning 32 query rows (two 16-row slices, so every K and V fragment
 * read from shared memory feeds two tensor-core products). Per key/value
 * tile (64 keys at head dim 64, 32 at 128, so the accumulators fit in
 * registers without spills): S = Q K^T with
 * mma.sync m16n8k16 (fp32 accumulation), the mask applied only on partial
 * tiles, an online softmax in base 2, then O += P V. Full tiles come first
 * and never evaluate the mask; empty tiles are never loaded (they are not
 * in the BlockMask's lists). Shared memory holds Q, one K tile and one V
 * tile; loading V(t) overlaps S(t), loading K(t+1) overlaps P V(t). */
#define FM_MASK_ENV_T fm_mask_env
#include "fm_fwd_params.h"

#ifndef FM_HEAD_DIM
#error "FM_HEAD_DIM must be defined (64 or 128)"
#endif
#if FM_HEAD_DIM != 64 && FM_HEAD_DIM != 128
#error "the forward kernel supports head dims 64 and 128"
#endif

namespace fmk {

constexpr int kD = FM_HEAD_DIM;
constexpr int kM = FM_FWD_BLOCK_M;
constexpr int kN = FM_FWD_TILE_N(FM_HEAD_DIM); /* keys per inner tile */
static_assert(FM_FWD_BLOCK_N % kN == 0, "inner tiles must divide the BlockMask granularity");
constexpr int kThreads = FM_FWD_THREADS;
constexpr int kChunks = kD / 8; /* 16-byte chunks per row */
constexpr int kMT = FM_FWD_BLOCK_M / 16 / (FM_FWD_THREADS / 32); /* 16-row slices per warp */
static_assert(kMT * 16 * (kThreads / 32) == kM, "warps must cover the query tile");
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

/* The hardware primitives. tests/test_kernel_emu.c compiles this file for
 * the host with FM_KERNEL_EMULATION and its own versions of these (threads
 * standing in for lanes), to check the kernel's indexing, pipeline and
 * softmax against the CPU reference without a GPU. */
#ifndef FM_KERNEL_EMULATION
__device__ __forceinline__ unsigned smem_u32(const void *p) {
    unsigned r;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
    return r;
}

/* 16-byte asynchronous copy; with pred false it writes 16 zero bytes and
 * reads nothing (rows past the sequence end). */
__device__ __forceinline__ void cp_async16(unsigned dst, const void *src, bool pred) {
    int n = pred ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm_x4(unsigned addr, unsigned &r0, unsigned &r1, unsigned &r2,
                                        unsigned &r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr)
                 : "memory");
}
__device__ __forceinline__ void ldsm_x4_t(unsigned addr, unsigned &r0, unsigned &r1, unsigned &r2,
                                          unsigned &r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr)
                 : "memory");
}

/* c += a * b for one 16x8x16 tile, fp32 accumulators. */
__device__ __forceinline__ void mma16816(float *c, const unsigned *a, unsigned b0, unsigned b1) {
#ifdef FM_DTYPE_BF16
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

/* Two floats to a packed pair, lo in the low half (lower column first, as
 * the fragment layouts expect). */
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
    unsigned r;
#ifdef FM_DTYPE_BF16
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

/* max that returns NaN when either operand is NaN (fmaxf drops it): one
 * instruction on sm_80+, the same cost as fmaxf. */
__device__ __forceinline__ float fmax_nan(float a, float b) {
    float r;
    asm("max.NaN.f32 %0, %1, %2;\n" : "=f"(r) : "f"(a), "f"(b));
    return r;
}

/* 2^x; 2^-inf is +0, which the masked entries rely on. */
__device__ __forceinline__ float exp2_approx(float x) {
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
    return r;
}
#endif

/* ldmatrix addresses without a register per (row block, chunk) pair:
 * a thread always reads row r (mod 8) of its 8x8 matrices, so the swizzled
 * chunk of logical chunk 2*kk + lo is 8*(kk/4) + ((2*(kk%4) + lo) ^ (r%8)).
 * The four values of kk%4 get a base address each; row blocks and kk/4
 * become immediate offsets in the unrolled loops. */
struct frag_base {
    unsigned a[4];
    __device__ __forceinline__ void init(const unsigned short *tile, int r, int lo) {
        const unsigned base = smem_u32(tile);
#pragma unroll
        for (int j = 0; j < 4; j++) a[j] = base + (unsigned)(r * kD + (((2 * j + lo) ^ (r & 7)) << 3)) * 2u;
    }
    /* Row block starting at row0 (a multiple of 8), 16-column chunk kk. */
    __device__ __forceinline__ unsigned at(int row0, int kk) const {
        return a[kk & 3] + (unsigned)(row0 * kD * 2 + (kk >> 2) * 128);
    }
};

/* Issues the copies of rows [row0, row0 + kRows) of one [seq, kD] slice into
 * a swizzled tile; rows at or past len are zero-filled. A thread copies one
 * chunk column ch of rows r, r + kR, r + 2kR, ...; with kR a multiple of 4
 * the swizzle (row % 8) takes two values, so two base addresses plus
 * immediate offsets cover every copy (no register per copy). */
constexpr int kR = kThreads / kChunks; /* rows one pass of the block covers */
static_assert(kR % 4 == 0, "the copy pattern needs kThreads/kChunks to be a multiple of 4");
template <int kRows>
__device__ __forceinline__ void load_tile(unsigned short *tile, const unsigned short *base,
                                          long long stride, int row0, int len, int tid) {
    const int r = tid / kChunks, ch = tid % kChunks;
    const unsigned t0 = smem_u32(tile);
    const unsigned d0 = t0 + (unsigned)(r * kD + ((ch ^ (r & 7)) << 3)) * 2u;
    const unsigned d1 = t0 + (unsigned)(r * kD + ((ch ^ ((r + kR) & 7)) << 3)) * 2u;
    const unsigned short *src = base + (long long)(row0 + r) * stride + ch * 8;
    const long long step = (long long)kR * stride;
#pragma unroll
    for (int i = 0; i < kRows / kR; i++) {
        const bool ok = row0 + r + i * kR < len;
        cp_async16((i & 1 ? d1 : d0) + (unsigned)(i * kR * kD * 2), ok ? src + i * step : base, ok);
    }
}

/* The kv position where work item t starts, and whether its BlockMask
 * tile is partial; items run over full blocks, then partial blocks, each
 * split into block_kv / kN kernel tiles. */
struct items {
    const int *full, *part;
    int nfull, npart, sub, block_kv;
    __device__ __forceinline__ int count() const { return (nfull + npart) * sub; }
    __device__ __forceinline__ int kv0(int t, bool &partial) const {
        int bi = t / sub, si = t - bi * sub;
        partial = bi >= nfull;
        int kvb = partial ? part[bi - nfull] : full[bi];
        return kvb * block_kv + si * kN;
    }
};

/* The next item at or after t that holds a key/value position (the tail
 * kernel tiles of a clipped BlockMask block may lie wholly past kv_len). */
__device__ __forceinline__ int next_item(const items &it, int t, int kv_len) {
    while (t < it.count()) {
        bool partial;
        if (it.kv0(t, partial) < kv_len) return t;
        t++;
    }
    return t;
}

} // namespace fmk

extern "C" __global__ void __launch_bounds__(FM_FWD_THREADS)
    fm_flash_fwd(const __grid_constant__ fm_fwd_params p) {
    using namespace fmk;
    extern __shared__ __align__(128) unsigned short smem[];
    unsigned short *sQ = smem;
    unsigned short *sK = smem + kM * kD;
    unsigned short *sV = smem + (kM + kN) * kD;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3; /* fragment row group, thread in group */
    const int b = blockIdx.z, h = blockIdx.y;
    /* Last query tile first: under causal-like masks the last tiles have
     * the most keys, and starting them first keeps the grid's tail short. */
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kM;
    const int wrow = warp * kMT * 16; /* this warp's first row in the tile */
    const int kvh = h / (p.heads / p.kv_heads); /* grouped-query attention */

    const int qb = q0 / p.block_q;
    const long long row = ((long long)(p.bcast_batch ? 0 : b) * p.stored_heads +
                           (p.bcast_heads ? 0 : h)) * p.nqb + qb;
    items it;
    it.full = p.full_idx + p.full_off[row];
    it.part = p.part_idx + p.part_off[row];
    it.nfull = (int)(p.full_off[row + 1] - p.full_off[row]);
    it.npart = (int)(p.part_off[row + 1] - p.part_off[row]);
    it.sub = p.block_kv / kN;
    it.block_kv = p.block_kv;

    const unsigned short *qg =
        (const unsigned short *)p.q + b * p.q_stride_b + h * p.q_stride_h;
    const unsigned short *kg =
        (const unsigned short *)p.k + b * p.k_stride_b + kvh * p.k_stride_h;
    const unsigned short *vg =
        (const unsigned short *)p.v + b * p.v_stride_b + kvh * p.v_stride_h;

    /* Each warp owns kMT 16-row slices; every K and V fragment it loads
     * feeds kMT products, which halves shared-memory reads per flop. */
    float o[kMT][kD / 8][4];
#pragma unroll
    for (int mt = 0; mt < kMT; mt++)
#pragma unroll
        for (int i = 0; i < kD / 8; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
    /* Running max (base-2, scaled) and partial row sums for rows g, g+8 of
     * each slice. */
    float m_run[kMT][2], l_run[kMT][2];
#pragma unroll
    for (int mt = 0; mt < kMT; mt++) m_run[mt][0] = m_run[mt][1] = neg_inf(), l_run[mt][0] = l_run[mt][1] = 0.f;

    int t = next_item(it, 0, p.kv_len);
    if (t < it.count()) {
        load_tile<kM>(sQ, qg, p.q_stride_s, q0, p.q_len, tid);
        bool partial;
        load_tile<kN>(sK, kg, p.k_stride_s, it.kv0(t, partial), p.kv_len, tid);
        cp_async_commit();
        cp_async_wait_all();
        __syncthreads(); /* Q and K(0) written by every thread are visible */

        /* Q and K fragments: rows lane%16 and (lane%8) + 8*(lane/16), the
         * 8-column half lane/16 and (lane/8)%2; V (transposed): row
         * (lane%8) + 8*((lane/8)%2), half lane/16. */
        frag_base fq, fk, fv;
        fq.init(sQ, lane & 15, lane >> 4);
        fk.init(sK, (lane & 7) + ((lane >> 4) << 3), (lane >> 3) & 1);
        fv.init(sV, (lane & 7) + (((lane >> 3) & 1) << 3), lane >> 4);

        while (t < it.count()) {
            const int kv0 = it.kv0(t, partial);
            const int tn = next_item(it, t + 1, p.kv_len);

            load_tile<kN>(sV, vg, p.v_stride_s, kv0, p.kv_len, tid);
            cp_async_commit();

            float s[kMT][kN / 8][4];
#pragma unroll
            for (int mt = 0; mt < kMT; mt++)
#pragma unroll
                for (int i = 0; i < kN / 8; i++) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < kD / 16; kk++) {
                unsigned qf[kMT][4];
#pragma unroll
                for (int mt = 0; mt < kMT; mt++)
                    ldsm_x4(fq.at(wrow + mt * 16, kk), qf[mt][0], qf[mt][1], qf[mt][2], qf[mt][3]);
#pragma unroll
                for (int np = 0; np < kN / 16; np++) {
                    unsigned b0, b1, b2, b3;
                    ldsm_x4(fk.at(np * 16, kk), b0, b1, b2, b3);
#pragma unroll
                    for (int mt = 0; mt < kMT; mt++) {
                        mma16816(s[mt][2 * np], qf[mt], b0, b1);
                        mma16816(s[mt][2 * np + 1], qf[mt], b2, b3);
                    }
                }
            }
#pragma unroll
            for (int mt = 0; mt < kMT; mt++)
#pragma unroll
                for (int i = 0; i < kN / 8; i++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[mt][i][e] *= p.scale_log2;

            if (partial) {
                /* The predicate is evaluated in a rolled loop so its code
                 * appears once, however large the mask. Positions past
                 * the sequence ends are never handed to it: they could
                 * index its input arrays out of bounds. */
#pragma unroll
                for (int mt = 0; mt < kMT; mt++) {
                    unsigned bits = 0;
                    const int qr = q0 + wrow + mt * 16 + g;
#pragma unroll 1
                    for (int i = 0; i < kN / 2; i++) {
                        int qi = qr + ((i >> 1) & 1) * 8;
                        int kvi = kv0 + (i >> 2) * 8 + 2 * t4 + (i & 1);
                        bool keep = qi < p.q_len && kvi < p.kv_len &&
                                    fm_mask_eval(&p.mask, (fm_int)b, (fm_int)h, (fm_int)qi, (fm_int)kvi);
                        bits |= (unsigned)keep << i;
                    }
#pragma unroll
                    for (int i = 0; i < kN / 8; i++)
#pragma unroll
                        for (int e = 0; e < 4; e++)
                            if (!((bits >> (i * 4 + e)) & 1u)) s[mt][i][e] = neg_inf();
                }
            }

            /* Online softmax, rows g (r = 0) and g + 8 (r = 1) of each slice.
             * Non-finite scores follow docs/language.md ("NaN and
             * infinities") with no branch of their own: a NaN or +inf score
             * at a true position turns l into NaN for good, and m into the
             * row's LSE (NaN, or +inf if no NaN), which the epilogue writes
             * with a NaN row; a -inf score weighs exactly 0, like a masked
             * entry. */
#pragma unroll
            for (int mt = 0; mt < kMT; mt++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    /* NaN guard: fmax_nan, not fmaxf, so that a NaN score
                     * makes m NaN for good (and with it every weight, l and
                     * o): the row's LSE must then be NaN, not +inf. */
                    float mx = neg_inf();
#pragma unroll
                    for (int i = 0; i < kN / 8; i++)
                        mx = fmax_nan(mx, fmax_nan(s[mt][i][2 * r], s[mt][i][2 * r + 1]));
                    /* The four threads of a quad hold one row between them. */
                    mx = fmax_nan(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                    mx = fmax_nan(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                    const float m_new = fmax_nan(m_run[mt][r], mx);
                    /* -inf guard: a row with no finite score so far has
                     * m_new == -inf, and s - m_new would be -inf - -inf = NaN.
                     * Subtracting 0 instead gives exp2(-inf) = 0 for every
                     * masked or -inf entry, and the correction below is then
                     * 0 times an accumulator that is still all zeros. Only
                     * -inf is guarded: m_new == +inf (a +inf score) must give
                     * exp2(inf - inf) = NaN at that entry, poisoning l, and
                     * m_new NaN gives NaN everywhere. */
                    const float m_ref = m_new == neg_inf() ? 0.f : m_new;
                    /* -inf guard: m_run == -inf (nothing seen yet) gives
                     * exp2(-inf) = 0, dropping the (empty) old sums. Once
                     * m_run is +inf this is exp2(NaN): l and o stay NaN. */
                    const float corr = exp2_approx(m_run[mt][r] - m_ref);
                    m_run[mt][r] = m_new;
                    float sum = 0.f;
#pragma unroll
                    for (int i = 0; i < kN / 8; i++) {
                        /* Masked entries are -inf here, so exp2 gives exactly 0;
                         * a NaN score gives NaN, and so does +inf - +inf. */
                        s[mt][i][2 * r] = exp2_approx(s[mt][i][2 * r] - m_ref);
                        s[mt][i][2 * r + 1] = exp2_approx(s[mt][i][2 * r + 1] - m_ref);
                        sum += s[mt][i][2 * r] + s[mt][i][2 * r + 1];
                    }
                    /* Row sums stay per thread until the end (one quad
                     * reduction there instead of one per tile). */
                    l_run[mt][r] = l_run[mt][r] * corr + sum;
#pragma unroll
                    for (int i = 0; i < kD / 8; i++) {
                        o[mt][i][2 * r] *= corr;
                        o[mt][i][2 * r + 1] *= corr;
                    }
                }

            cp_async_wait_all();
            __syncthreads(); /* V(t) is visible, and every warp is done reading K(t) */
            if (tn < it.count()) {
                bool pn;
                load_tile<kN>(sK, kg, p.k_stride_s, it.kv0(tn, pn), p.kv_len, tid);
                cp_async_commit();
            }

#pragma unroll
            for (int kk = 0; kk < kN / 16; kk++) {
                /* The accumulators of S tiles 2kk and 2kk+1 are exactly
                 * the A fragment of P's 16-column chunk kk. Every V row of
                 * the tile is multiplied by its weight, 0 included, so a NaN
                 * or inf in V reaches the output even at a masked position
                 * of a partial tile (0 * NaN) when the row has some weight,
                 * unlike on the CPU, which skips false positions when a
                 * partial tile's V is not finite. At true positions both
                 * multiply, as P @ V does. */
                unsigned a[kMT][4];
#pragma unroll
                for (int mt = 0; mt < kMT; mt++) {
                    a[mt][0] = pack2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                    a[mt][1] = pack2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                    a[mt][2] = pack2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                    a[mt][3] = pack2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
                }
#pragma unroll
                for (int dp = 0; dp < kD / 16; dp++) {
                    unsigned b0, b1, b2, b3;
                    ldsm_x4_t(fv.at(kk * 16, dp), b0, b1, b2, b3);
#pragma unroll
                    for (int mt = 0; mt < kMT; mt++) {
                        mma16816(o[mt][2 * dp], a[mt], b0, b1);
                        mma16816(o[mt][2 * dp + 1], a[mt], b2, b3);
                    }
                }
            }

            cp_async_wait_all();
            __syncthreads(); /* K(t+1) is visible, and every warp is done reading V(t) */
            t = tn;
        }
    }

    /* Epilogue: rows with no true position (or only -inf scores) have
     * l == 0 and o == 0: they are written as zeros with log-sum-exp -inf,
     * never 0/0, and never 0 * o: o may hold 0 * NaN from a NaN in V at a
     * masked or -inf-scored key. The guard tests l == 0, not l > 0: a row
     * poisoned by a NaN or +inf score has l = NaN: 1/l makes its output
     * NaN, and its LSE is m, +inf or NaN (log2(l) would make it NaN). */
#pragma unroll
    for (int mt = 0; mt < kMT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float l = l_run[mt][r];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            const int qi = q0 + wrow + mt * 16 + g + r * 8;
            if (qi >= p.q_len) continue;
            const bool empty = l == 0.f;
            const float inv = empty ? 0.f : 1.f / l;
            float *orow = p.out + (((long long)b * p.heads + h) * p.q_len + qi) * kD;
#pragma unroll
            for (int i = 0; i < kD / 8; i++) {
                float2 v2 = empty ? make_float2(0.f, 0.f)
                                  : make_float2(o[mt][i][2 * r] * inv, o[mt][i][2 * r + 1] * inv);
                *(float2 *)(orow + i * 8 + 2 * t4) = v2;
            }
            if (p.lse && t4 == 0)
                p.lse[((long long)b * p.heads + h) * p.q_len + qi] =
                    empty ? neg_inf()
                          : (l != l ? m_run[mt][r] : m_run[mt][r] + __log2f(l)) * 0.69314718055994531f;
        }
}
