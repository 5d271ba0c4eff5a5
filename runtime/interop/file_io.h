/* Writing an output file so that a failure never destroys what was there.
 *
 * Every file the library and the tools write goes through this:
 *
 *   fmr_out o;
 *   if (!fmr_out_open(&o, path)) -> report "PATH: " o.error, stop
 *   fwrite(..., o.f) ...           (any stdio on o.f; or fmr_out_write)
 *   if (!fmr_out_commit(&o)) -> report "PATH: " o.error      (o is closed)
 *   or, to give up: fmr_out_abort(&o)                      (o is closed)
 *
 * or, in one call, fmr_write_file(path, callback, ctx, error, size).
 *
 * What lands where:
 * - A regular file, or a name that does not exist yet, is written to a new
 *   temporary file in the same folder (".NAME.XXXXXX", created with mode
 *   0666 minus the umask like any new file; a replaced file's permission
 *   bits, and its owner where allowed, are carried over), flushed to disk
 *   and renamed over the target only when complete. On any error only the
 *   temporary is removed: the previous file stays byte for byte.
 * - A symbolic link is followed (up to 40 links): the file it points to is
 *   replaced and the link stays. A dangling link creates its target.
 * - An existing target that is not a regular file (a FIFO, a device,
 *   /dev/stdout) is opened and written directly, and never removed.
 * - A folder is refused.
 *
 * A hard-linked target gets a new inode: its other names keep the old
 * contents. Nothing here prints; error holds "cannot open for writing: ...",
 * "write error: ..." and so on, to be prefixed with the path. */
#ifndef FM_RUNTIME_FILE_IO_H
#define FM_RUNTIME_FILE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct fmr_out {
    FILE *f;         /* where to write; NULL once committed or aborted */
    char *target;    /* the file replaced (the path with links followed) */
    char *tmp;       /* the temporary file, or NULL when writing directly */
    char error[320]; /* why the last call failed ("" when none did) */
} fmr_out;

/* Opens path for writing as above. False (with o->error set, nothing to
 * clean up) when it cannot. */
bool fmr_out_open(fmr_out *o, const char *path);
/* fwrite of n bytes that records a write error in o->error. */
bool fmr_out_write(fmr_out *o, const void *data, size_t n);
/* Flushes, syncs and closes the file and renames the temporary into place.
 * False (with o->error set) if any of it failed or any earlier write on
 * o->f did: the temporary is then removed. o is closed either way. */
bool fmr_out_commit(fmr_out *o);
/* Closes o and removes the temporary (a direct target is left as it is).
 * Safe on an o that is already closed. */
void fmr_out_abort(fmr_out *o);

/* Opens path, calls write(f, ctx) and commits when it returns true; aborts
 * when it returns false. error (may be NULL) gets o.error: "" when the
 * callback gave up without a write error (the caller knows why). */
bool fmr_write_file(const char *path, bool (*write)(FILE *f, void *ctx), void *ctx, char *error,
                    size_t error_size);

#endif
