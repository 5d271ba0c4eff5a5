// Host emulation of the CUDA features kernels/flash_fwd.cuh uses, so that
// tests/test_kernel_emu.c can run the kernel on the CPU: one std::thread
// per CUDA thread of a block, barriers for __syncthreads and for the
// warp-wide operations (ldmatrix, mma.sync, shuffles), deferred copies for
// cp.async (they land at cp.async.wait_group, so a missing wait or barrier
// shows up as wrong results). Included before the kernel in every
// translation unit; emu_main.cpp holds the shared state.
#ifndef FM_EMU_PRIMS_HPP
#define FM_EMU_PRIMS_HPP

#include <cmath>
#include <cstdint>
#include <cstring>

#define FM_KERNEL_EMULATION 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__
#define __grid_constant__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

struct emu_dim3 {
    unsigned x, y, z;
};
extern thread_local emu_dim3 threadIdx;
extern thread_local emu_dim3 blockIdx;
extern thread_local emu_dim3 gridDim;
struct float2 {
    float x, y;
};
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float __int_as_float(unsigned v) {
    float f;
    std::memcpy(&f, &v, 4);
    return f;
}
#define __log2f(x) std::log2(x) /* glibc declares its own __log2f */
using std::fmaxf;

extern unsigned short smem[];

// Shared state and collectives (emu_main.cpp).
void emu_sync_block();
void emu_sync_warp();
unsigned *emu_warp_words(); // 32 lanes x 16 words for this thread's warp
float emu_shfl_xor(float v, int mask);
void emu_cp_async(unsigned dst, const void *src, bool pred);
void emu_cp_wait();
float emu_to_float(unsigned short h, bool bf16);
unsigned short emu_from_float(float f, bool bf16);

static inline void __syncthreads() { emu_sync_block(); }
static inline float __shfl_xor_sync(unsigned, float v, int mask) { return emu_shfl_xor(v, mask); }

namespace fmk {

#ifdef FM_DTYPE_BF16
constexpr bool kEmuBf16 = true;
#else
constexpr bool kEmuBf16 = false;
#endif

inline unsigned smem_u32(const void *p) {
    return (unsigned)((const char *)p - (const char *)smem);
}
inline void cp_async16(unsigned dst, const void *src, bool pred) { emu_cp_async(dst, src, pred); }
inline void cp_async_commit() {}
inline void cp_async_wait_all() { emu_cp_wait(); }

static inline unsigned short emu_half_at(unsigned byte_addr) {
    unsigned short h;
    std::memcpy(&h, (const char *)smem + byte_addr, 2);
    return h;
}
static inline unsigned emu_lane() { return threadIdx.x & 31; }

// ldmatrix .x4: lanes 8i..8i+7 give the row addresses of matrix i; lane L
// gets, in register i, row L/4, columns 2(L%4) and 2(L%4)+1 of matrix i
// (transposed: column L/4, rows 2(L%4) and 2(L%4)+1).
static inline void emu_ldsm(unsigned addr, unsigned *r, bool trans) {
    unsigned *w = emu_warp_words();
    unsigned L = emu_lane();
    w[L * 16] = addr;
    emu_sync_warp();
    for (int i = 0; i < 4; i++) {
        unsigned lo, hi;
        if (!trans) {
            unsigned row = w[(8 * i + L / 4) * 16];
            lo = emu_half_at(row + 4 * (L % 4));
            hi = emu_half_at(row + 4 * (L % 4) + 2);
        } else {
            lo = emu_half_at(w[(8 * i + 2 * (L % 4)) * 16] + 2 * (L / 4));
            hi = emu_half_at(w[(8 * i + 2 * (L % 4) + 1) * 16] + 2 * (L / 4));
        }
        r[i] = lo | hi << 16;
    }
    emu_sync_warp();
}
inline void ldsm_x4(unsigned addr, unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3) {
    unsigned r[4];
    emu_ldsm(addr, r, false);
    r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
}
inline void ldsm_x4_t(unsigned addr, unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3) {
    unsigned r[4];
    emu_ldsm(addr, r, true);
    r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
}

static inline float emu_half(unsigned word, int which) {
    return emu_to_float((unsigned short)(which ? word >> 16 : word & 0xffff), kEmuBf16);
}

// mma.sync m16n8k16 row.col: A[row][k] sits in lane (row%8)*4 + (k%8)/2,
// register (row>=8) + 2*(k>=8), half k%2; B[k][n] in lane n*4 + (k%8)/2,
// register k>=8, half k%2; lane L holds C rows L/4 and L/4+8, columns
// 2(L%4) and 2(L%4)+1.
inline void mma16816(float *c, const unsigned *a, unsigned b0, unsigned b1) {
    unsigned *w = emu_warp_words();
    unsigned L = emu_lane();
    for (int i = 0; i < 4; i++) w[L * 16 + 1 + i] = a[i];
    w[L * 16 + 5] = b0;
    w[L * 16 + 6] = b1;
    emu_sync_warp();
    for (int e = 0; e < 4; e++) {
        int row = (int)(L / 4) + (e >= 2 ? 8 : 0), col = 2 * (int)(L % 4) + (e & 1);
        float acc = c[e];
        for (int k = 0; k < 16; k++) {
            unsigned aw = w[((row % 8) * 4 + (k % 8) / 2) * 16 + 1 + (row >= 8) + 2 * (k >= 8)];
            unsigned bw = w[(col * 4 + (k % 8) / 2) * 16 + 5 + (k >= 8)];
            acc += emu_half(aw, k % 2) * emu_half(bw, k % 2);
        }
        c[e] = acc;
    }
    emu_sync_warp();
}

inline unsigned pack2(float lo, float hi) {
    return (unsigned)emu_from_float(lo, kEmuBf16) | (unsigned)emu_from_float(hi, kEmuBf16) << 16;
}
inline float exp2_approx(float x) { return std::exp2(x); }
/* PTX max.NaN.f32: NaN when either operand is NaN. */
inline float fmax_nan(float a, float b) { return a != a || b != b ? NAN : std::fmax(a, b); }

} // namespace fmk

#endif
