/* The forward kernel's params struct, shared verbatim by the host runtime
 * (C11) and the kernel (NVRTC, given to it as a header). One definition, so
 * the two sides cannot disagree on the layout. Before including it, the
 * includer defines FM_MASK_ENV_T as its name for the mask environment
 * struct (fm_mask_env in generated code, fmc_cuda_mask_env on the host;
 * both have the same members). */
#ifndef FM_FWD_PARAMS_H
#define FM_FWD_PARAMS_H

/* Tile sizes of the forward kernel. BlockMask block sizes must be
 * multiples of FM_FWD_BLOCK_M (queries) and FM_FWD_BLOCK_N (keys); inside
 * a BlockMask block the kernel walks keys FM_FWD_TILE_N(head_dim) at a
 * time (narrower for the larger head dim, to keep every accumulator in
 * registers). */
#define FM_FWD_BLOCK_M 64
#define FM_FWD_BLOCK_N 64
#define FM_FWD_THREADS 64
#define FM_FWD_TILE_N(d) ((d) > 64 ? 32 : 64)
/* Dynamic shared memory of one block: a Q tile, a K tile and a V tile of
 * 16-bit elements. */
#define FM_FWD_SMEM_BYTES(d) ((FM_FWD_BLOCK_M + 2 * FM_FWD_TILE_N(d)) * (d) * 2)

typedef struct fm_fwd_params {
    /* q, k, v: 16-bit elements (fp16 or bf16, fixed by the compiled
       variant), strides in elements; the last dimension is contiguous and
       every row starts on a 16-byte boundary. */
    const void *q, *k, *v;
    float *out; /* float32 [batch, heads, q_len, head_dim], contiguous */
    float *lse; /* NULL, or float32 [batch, heads, q_len] */
    long long q_stride_b, q_stride_h, q_stride_s;
    long long k_stride_b, k_stride_h, k_stride_s;
    long long v_stride_b, v_stride_h, v_stride_s;
    int batch, heads, kv_heads, q_len, kv_len;
    float scale_log2; /* softmax scale times log2(e) */
    /* The BlockMask in compressed-row form (see compiler/blockmask.h):
       row r's full kv blocks are full_idx[full_off[r] .. full_off[r+1]). */
    const long long *full_off;
    const int *full_idx;
    const long long *part_off;
    const int *part_idx;
    int nqb, block_q, block_kv;
    int bcast_batch, bcast_heads, stored_heads;
    FM_MASK_ENV_T mask;
} fm_fwd_params;

#endif
