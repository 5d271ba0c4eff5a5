/* Integer feasibility of a few affine constraints over a box of (q, kv):
 * the exact check that decides two undecided comparisons meeting in a
 * tile (a prefix boundary crossing the diagonal, say). One axis is
 * scanned line by line, each line reducing to an interval of the other. */
#include "compiler/absint.h"
#include "dsl/arith.h"

#define FEAS_LINES 4096

static __int128 ceildiv128(__int128 n, __int128 d) {
    return -fmd_floordiv128(-n, d);
}

/* Interval of the free variable y satisfying every a*x + c*y + d <= 0 at
 * fixed x (roles of q and kv chosen by the caller). */
static bool small(int64_t v) {
    return v > -((int64_t)1 << 30) && v < ((int64_t)1 << 30);
}

static bool line_interval(const fmc_cons *cs, size_t n, bool x_is_q, int64_t x, int64_t ylo,
                          int64_t yhi, int64_t *lo, int64_t *hi) {
    /* Typical sizes fit 64-bit arithmetic; 128-bit division is slow. */
    bool fast = small(x);
    for (size_t i = 0; i < n && fast; i++)
        fast = small(cs[i].a) && small(cs[i].c) && small(cs[i].d);
    if (fast) {
        int64_t L = ylo, H = yhi;
        for (size_t i = 0; i < n && L <= H; i++) {
            int64_t a = x_is_q ? cs[i].a : cs[i].c, c = x_is_q ? cs[i].c : cs[i].a;
            int64_t R = -(a * x + cs[i].d);
            /* Unit coefficients (q - kv, kv - q, ...) are the common case:
             * no division for them, since counting partial tiles calls
             * this once per line. */
            if (c == 1) {
                if (R < H) H = R;
            } else if (c == -1) {
                if (-R > L) L = -R;
            } else if (c == 0) {
                if (R < 0) return false;
            } else if (c > 0) {
                int64_t b = fmd_floordiv(R, c);
                if (b < H) H = b;
            } else {
                int64_t b = -fmd_floordiv(-R, c);
                if (b > L) L = b;
            }
        }
        if (L > H) return false;
        *lo = L;
        *hi = H;
        return true;
    }
    __int128 L = ylo, H = yhi;
    for (size_t i = 0; i < n && L <= H; i++) {
        __int128 a = x_is_q ? cs[i].a : cs[i].c, c = x_is_q ? cs[i].c : cs[i].a;
        __int128 R = -(a * x + cs[i].d); /* c*y <= R */
        if (c == 0) {
            if (R < 0) return false;
        } else if (c > 0) {
            __int128 b = fmd_floordiv128(R, c);
            if (b < H) H = b;
        } else {
            __int128 b = ceildiv128(R, c);
            if (b > L) L = b;
        }
    }
    if (L > H) return false;
    *lo = (int64_t)L;
    *hi = (int64_t)H;
    return true;
}

/* One-variable case: every constraint reads only one axis. */
static int interval_1d(const fmc_cons *cs, size_t n, bool q_axis, const fmc_box *box,
                       int64_t *len) {
    int64_t lo, hi;
    int64_t x = 0;
    /* With the other coefficient zero, line_interval over the other axis
     * at any fixed point gives the interval of this axis. */
    if (!line_interval(cs, n, !q_axis, x, q_axis ? box->q0 : box->k0, q_axis ? box->q1 : box->k1,
                       &lo, &hi))
        return 0;
    *len = hi - lo + 1;
    return 1;
}

int fmc_feasible(const fmc_cons *cs, size_t n, const fmc_box *box) {
    bool any_c = false, any_a = false;
    for (size_t i = 0; i < n; i++) {
        any_a |= cs[i].a != 0;
        any_c |= cs[i].c != 0;
    }
    int64_t len;
    if (!any_c) return interval_1d(cs, n, true, box, &len);
    if (!any_a) return interval_1d(cs, n, false, box, &len);
    int64_t Lq = box->q1 - box->q0 + 1, Lk = box->k1 - box->k0 + 1;
    bool scan_q = Lq <= Lk;
    int64_t lines = scan_q ? Lq : Lk;
    if (lines > FEAS_LINES) return -1;
    for (int64_t t = 0; t < lines; t++) {
        int64_t lo, hi;
        bool ok = scan_q ? line_interval(cs, n, true, box->q0 + t, box->k0, box->k1, &lo, &hi)
                         : line_interval(cs, n, false, box->k0 + t, box->q0, box->q1, &lo, &hi);
        if (ok) return 1;
    }
    return 0;
}

int64_t fmc_count_feasible(const fmc_cons *cs, size_t n, const fmc_box *box) {
    int64_t Lq = box->q1 - box->q0 + 1, Lk = box->k1 - box->k0 + 1;
    bool scan_q = Lq <= Lk;
    int64_t lines = scan_q ? Lq : Lk;
    if (lines > (1 << 16)) return -1;
    __int128 total = 0;
    for (int64_t t = 0; t < lines; t++) {
        int64_t lo, hi;
        bool ok = scan_q ? line_interval(cs, n, true, box->q0 + t, box->k0, box->k1, &lo, &hi)
                         : line_interval(cs, n, false, box->k0 + t, box->q0, box->q1, &lo, &hi);
        if (ok) total += (__int128)hi - lo + 1;
    }
    return total > INT64_MAX ? -1 : (int64_t)total;
}
