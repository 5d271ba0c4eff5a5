/* The JIT cache's folder: created private, checked before it is trusted,
 * and holding the secret that signs its entries.
 *
 * A folder is used only when it is a folder of the user's own (owner: the
 * effective uid) that no one else can write (no group or other write bit).
 * Missing folders, parents included, are created 0700. The secret is 32
 * random bytes (getrandom) in FMR_CACHE_SECRET_FILE, mode 0600: it keys the
 * HMAC-SHA256 every entry carries, so an entry planted by someone who
 * cannot read the secret never verifies. */
#ifndef FM_RUNTIME_CACHE_FOLDER_H
#define FM_RUNTIME_CACHE_FOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FMR_CACHE_SECRET_FILE "hmac-secret"
#define FMR_CACHE_SECRET_BYTES 32
/* Names of the temporary files writers rename into place (entries and the
 * secret); eviction removes those older than FMR_CACHE_STALE_TMP_SECONDS,
 * left behind by writers that were killed. */
#define FMR_CACHE_TMP_PREFIX ".tmp-"
#define FMR_CACHE_STALE_TMP_SECONDS 3600

typedef struct fmr_cache_problem {
    char *message; /* why the folder is not used; malloc'd */
    char *hint;    /* what to do about it; malloc'd, may be NULL */
} fmr_cache_problem;

/* Opens dir (creating it when missing), checks it and reads its secret,
 * creating that too when missing. Two processes creating the secret at once
 * both end up with the one that was linked into place first. On success
 * *fd is the folder, open; on refusal false with the reason in *problem
 * (both strings NULL only when out of memory). */
bool fmr_cache_folder_open(const char *dir, int *fd, uint8_t secret[FMR_CACHE_SECRET_BYTES],
                           fmr_cache_problem *problem);

/* A name for a new temporary file in the folder (the process id and a
 * counter make it unique): FMR_CACHE_TMP_PREFIX, what, then the rest. */
/* read(2) / write(2) of exactly len bytes, retried on EINTR; false on an
 * error or an early end of file. */
bool fmr_read_all(int fd, uint8_t *buf, size_t len);
bool fmr_write_all(int fd, const uint8_t *buf, size_t len);

void fmr_cache_tmp_name(char *buf, size_t n, const char *what);

#endif
