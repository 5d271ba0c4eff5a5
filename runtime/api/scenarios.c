/* Input tables for the scenario masks: Euler-tour tables of a token tree
 * (tree.mask) and the request/position arrays of a ragged batch
 * (batched_prefill.mask). Both validate everything a caller can get wrong
 * and name the offending token or request. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/api/api_internal.h"

#define FMR_MAX_TOKENS (((int64_t)1 << 31) - 1)


/* Names a cycle that token start leads into. Every token reached here has a
 * valid parent that is not itself, and no root above it. */
static void report_cycle(const int32_t *parent, int64_t n, int64_t start, fm_diagnostics *diags) {
    /* n steps up from any token land on the cycle. */
    int64_t t = start;
    for (int64_t i = 0; i < n; i++)
        t = parent[t];
    char path[160];
    size_t used = 0;
    int64_t c = t, len = 0;
    do {
        if (used + 24 < sizeof path) {
            int w = snprintf(path + used, sizeof path - used, "%s%lld", len ? " -> " : "",
                             (long long)c);
            if (w > 0) used += (size_t)w;
        } else if (used + 5 < sizeof path) {
            memcpy(path + used, " ...", 5);
            used = sizeof path;
        }
        c = parent[c];
        len++;
    } while (c != t);
    if (used < sizeof path) snprintf(path + used, sizeof path - used, " -> %lld", (long long)t);
    fmr_error(diags,
        "token tree: token %lld is on a cycle of parents (%s), so it has no root; "
        "every token must lead up to a token whose parent is -1",
        (long long)t, path);
}

FM_API fm_status fm_tree_tables(const int32_t *parent, int64_t n, int32_t *enter, int32_t *leave,
                                int32_t *depth, fm_diagnostics *diags) {
    if (n < 0 || n >= FMR_MAX_TOKENS) {
        fmr_error(diags, "token tree: %lld tokens; the count must be in [0, %lld)", (long long)n,
            (long long)FMR_MAX_TOKENS);
        return FM_ERR_INVALID_ARGUMENT;
    }
    if (n == 0) return FM_OK;
    if (!parent || !enter || !leave) return FM_ERR_INVALID_ARGUMENT;
    for (int64_t i = 0; i < n; i++) {
        if (parent[i] < -1 || parent[i] >= n) {
            fmr_error(diags, "token tree: token %lld has parent %d, outside [-1, %lld) (-1 marks a root)",
                (long long)i, parent[i], (long long)n);
            return FM_ERR_INVALID_ARGUMENT;
        }
        if (parent[i] == i) {
            fmr_error(diags, "token tree: token %lld is its own parent (a root's parent is -1)",
                (long long)i);
            return FM_ERR_INVALID_ARGUMENT;
        }
    }
    /* Children in compressed rows, in index order (a counting sort), then
     * an explicit-stack walk: trees of a million tokens in a chain must not
     * recurse. */
    size_t nn = (size_t)n;
    int32_t *first = calloc(nn + 2, sizeof *first); /* row r of token r-1; row 0 the roots */
    int32_t *kids = malloc(nn * sizeof *kids);
    int32_t *stack = malloc(nn * sizeof *stack);
    int32_t *next = malloc(nn * sizeof *next); /* per stack entry: next child slot */
    int32_t *pre = malloc(nn * sizeof *pre), *last = malloc(nn * sizeof *last);
    int32_t *dep = malloc(nn * sizeof *dep);
    fm_status st = FM_OK;
    if (!first || !kids || !stack || !next || !pre || !last || !dep) {
        st = FM_ERR_NO_MEMORY;
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        first[parent[i] + 2]++;
    for (size_t r = 1; r < nn + 2; r++)
        first[r] += first[r - 1];
    for (int64_t i = 0; i < n; i++)
        kids[first[parent[i] + 1]++] = (int32_t)i;
    /* first[r] now ends row r; row r starts at first[r - 1] (0 for r = 0). */
    for (size_t i = 0; i < nn; i++)
        pre[i] = -1;
    int32_t clock = 0;
    int32_t root_slot = 0, root_end = first[0];
    while (root_slot < root_end) {
        int32_t root = kids[root_slot++];
        size_t top = 0;
        stack[top] = root;
        next[top] = first[root];
        pre[root] = clock++;
        dep[root] = 0;
        top = 1;
        while (top > 0) {
            int32_t t = stack[top - 1];
            int32_t end = first[t + 1];
            if (next[top - 1] < end) {
                int32_t c = kids[next[top - 1]++];
                pre[c] = clock++;
                dep[c] = dep[t] + 1;
                stack[top] = c;
                next[top] = first[c];
                top++;
            } else {
                last[t] = clock - 1;
                top--;
            }
        }
    }
    if (clock != n) {
        for (int64_t i = 0; i < n; i++) {
            if (pre[i] < 0) {
                report_cycle(parent, n, i, diags);
                break;
            }
        }
        st = FM_ERR_INVALID_ARGUMENT;
        goto done;
    }
    memcpy(enter, pre, nn * sizeof *pre);
    memcpy(leave, last, nn * sizeof *last);
    if (depth) memcpy(depth, dep, nn * sizeof *dep);
done:
    free(first);
    free(kids);
    free(stack);
    free(next);
    free(pre);
    free(last);
    free(dep);
    return st;
}

FM_API fm_status fm_batched_prefill_arrays(const int32_t *qo_indptr, const int32_t *kv_indptr,
                                           int64_t num_requests, int64_t q_len, int64_t kv_len,
                                           int32_t *q_req, int32_t *q_pos, int32_t *kv_req,
                                           int32_t *kv_pos, fm_diagnostics *diags) {
    if (num_requests < 0 || num_requests >= FMR_MAX_TOKENS) {
        fmr_error(diags, "batched prefill: %lld requests; the count must be in [0, %lld)",
            (long long)num_requests, (long long)FMR_MAX_TOKENS);
        return FM_ERR_INVALID_ARGUMENT;
    }
    if (!qo_indptr || !kv_indptr || q_len < 0 || kv_len < 0 || (q_len && (!q_req || !q_pos)) ||
        (kv_len && (!kv_req || !kv_pos)))
        return FM_ERR_INVALID_ARGUMENT;
    const struct {
        const int32_t *p;
        const char *name;
        int64_t total;
        const char *arrays;
    } side[2] = {{qo_indptr, "qo_indptr", q_len, "query arrays (Q_LEN)"},
                 {kv_indptr, "kv_indptr", kv_len, "key/value arrays (KV_LEN)"}};
    /* Check everything before writing anything. */
    for (int s = 0; s < 2; s++) {
        const int32_t *p = side[s].p;
        if (p[0] != 0) {
            fmr_error(diags, "batched prefill: %s[0] is %d; offsets must start at 0", side[s].name, p[0]);
            return FM_ERR_INVALID_ARGUMENT;
        }
        for (int64_t r = 0; r < num_requests; r++) {
            if (p[r + 1] < p[r]) {
                fmr_error(diags,
                    "batched prefill: %s decreases at request %lld (%s[%lld] = %d, %s[%lld] = %d); "
                    "offsets must be non-decreasing",
                    side[s].name, (long long)r, side[s].name, (long long)r, p[r], side[s].name,
                    (long long)(r + 1), p[r + 1]);
                return FM_ERR_INVALID_ARGUMENT;
            }
        }
        if (p[num_requests] != side[s].total) {
            fmr_error(diags,
                "batched prefill: %s ends at %d (%s[%lld]) but the %s hold %lld entries; they "
                "must be equal",
                side[s].name, p[num_requests], side[s].name, (long long)num_requests,
                side[s].arrays, (long long)side[s].total);
            return FM_ERR_INVALID_ARGUMENT;
        }
    }
    for (int64_t r = 0; r < num_requests; r++) {
        int64_t qo = (int64_t)qo_indptr[r + 1] - qo_indptr[r];
        int64_t kv = (int64_t)kv_indptr[r + 1] - kv_indptr[r];
        if (qo > kv) {
            fmr_error(diags,
                "batched prefill: request %lld has %lld queries but only %lld keys/values; its "
                "queries must be the last of its keys (qo_len <= kv_len)",
                (long long)r, (long long)qo, (long long)kv);
            return FM_ERR_INVALID_ARGUMENT;
        }
    }
    for (int64_t r = 0; r < num_requests; r++) {
        int64_t qo = (int64_t)qo_indptr[r + 1] - qo_indptr[r];
        int64_t kv = (int64_t)kv_indptr[r + 1] - kv_indptr[r];
        for (int64_t j = 0; j < qo; j++) {
            q_req[qo_indptr[r] + j] = (int32_t)r;
            q_pos[qo_indptr[r] + j] = (int32_t)(kv - qo + j);
        }
        for (int64_t j = 0; j < kv; j++) {
            kv_req[kv_indptr[r] + j] = (int32_t)r;
            kv_pos[kv_indptr[r] + j] = (int32_t)j;
        }
    }
    return FM_OK;
}
