/* The JIT's cache of compiled code: byte blobs under 32-byte keys, kept in
 * memory and (optionally) on disk.
 *
 * The folder is trusted only after the checks of cache_folder.h (the
 * user's own, not writable by others, created 0700); a refused folder
 * leaves the cache memory only, and fmr_jit_cache_report says why once.
 * Disk entries are regular files <dir>/<hex key>.fmjit (mode 0600) holding
 * a header (magic, format version, the key, the payload's length and an
 * HMAC-SHA256 under the folder's secret over all of those and the payload)
 * and the payload. An entry is only used after every one of those checks
 * passes; anything else at an entry's name (a damaged, truncated or
 * planted file, a link, a FIFO) is deleted and counted, and the caller
 * rebuilds it. Writes go to a temporary file in the same folder renamed
 * into place, so readers (other threads or processes) see either no entry
 * or a whole one. After each write, temporaries older than an hour are
 * removed and, past the size cap, the least recently used entries (by
 * modification time, refreshed on every disk hit).
 *
 * All functions are thread-safe. */
#ifndef FM_RUNTIME_JIT_CACHE_H
#define FM_RUNTIME_JIT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsl/diag.h"

/* 2: the checksum became an HMAC under the folder's secret. */
#define FMR_JIT_CACHE_FORMAT 2
#define FMR_JIT_CACHE_DEFAULT_MAX_BYTES (512ull << 20)

typedef struct fmr_jit_cache fmr_jit_cache;

typedef struct fmr_jit_cache_stats {
    uint64_t memory_hits, disk_hits, misses;
    uint64_t corrupt;     /* disk entries rejected (and removed) */
    uint64_t writes;      /* disk entries written */
    uint64_t evictions;   /* disk entries removed by the size cap */
    uint64_t stale_temps; /* temporary files of killed writers removed */
} fmr_jit_cache_stats;

typedef enum fmr_cache_hit { FMR_CACHE_MISS, FMR_CACHE_MEMORY, FMR_CACHE_DISK } fmr_cache_hit;

/* dir NULL or "": memory only. max_bytes 0: the default cap. The folder
 * is created (with parents, 0700) and checked on the first lookup or
 * store. NULL when out of memory. */
fmr_jit_cache *fmr_jit_cache_create(const char *dir, uint64_t max_bytes);
void fmr_jit_cache_free(fmr_jit_cache *c);

/* The folder the environment asks for: $FLEXMASK_CACHE_DIR (set but empty:
 * disk cache off), else $XDG_CACHE_HOME/flexmask, else ~/.cache/flexmask.
 * malloc'd; NULL when the disk cache is off or no folder can be named. */
char *fmr_jit_cache_dir_from_env(void);
/* The process's cache, configured from the environment on first use
 * ($FLEXMASK_CACHE_MAX_MB sets the cap). Lives until exit; NULL on OOM. */
fmr_jit_cache *fmr_jit_cache_default(void);
/* The disk folder asked for (refused or not), or NULL when the cache is
 * memory only. */
const char *fmr_jit_cache_dir(const fmr_jit_cache *c);
/* When the folder was refused, adds a warning saying why (and what to do)
 * to diags, the first time only: each cache reports once. Nothing when
 * diags is NULL or the folder is fine (or not yet opened). */
void fmr_jit_cache_report(fmr_jit_cache *c, fmd_diags *diags);

/* Looks the key up in memory, then on disk (a valid disk entry is then
 * kept in memory too). On a hit *data and *len point at the bytes, which stay
 * valid until the cache is freed. */
fmr_cache_hit fmr_jit_cache_get(fmr_jit_cache *c, const uint8_t key[32], const uint8_t **data,
                                size_t *len);
/* Stores a copy in memory and, when the cache has a folder, on disk.
 * Returns false when the disk write failed or the folder was refused (the
 * memory copy is kept; a cache that cannot write is slower, not wrong). */
bool fmr_jit_cache_put(fmr_jit_cache *c, const uint8_t key[32], const void *data, size_t len);
/* Forgets the memory copies (pointers from earlier gets stay valid until
 * the cache is freed), so the next get goes to disk. */
void fmr_jit_cache_drop_memory(fmr_jit_cache *c);
/* The path the entry for key has or would have; malloc'd, NULL if memory only. */
char *fmr_jit_cache_entry_path(const fmr_jit_cache *c, const uint8_t key[32]);
fmr_jit_cache_stats fmr_jit_cache_get_stats(fmr_jit_cache *c);

#endif
