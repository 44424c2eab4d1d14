/* include/cmkfs/engine.h — how a volume engine of src/maint/ says where
 * and why a run stopped. Every engine's result struct has the same three
 * fields: `stage` (the engine's own enum), `err` (0 or a negative errno)
 * and `msg` (one sentence for the user, without a command prefix), so the
 * CLI can pick an exit code from the stage and print the sentence. */
#ifndef CMKFS_ENGINE_H
#define CMKFS_ENGINE_H

#include <stdio.h>

/* Record stage, err and the formatted message in *r; evaluates to err,
 * so `return ENGINE_FAIL(r, STAGE, -EIO, "%s: ...", path);` reads as one
 * step. The message is cut to the size of r->msg. */
#define ENGINE_FAIL(r, st, e, ...)                                         \
	__extension__({                                                    \
		(r)->stage = (st);                                         \
		(r)->err = (e);                                            \
		(void)snprintf((r)->msg, sizeof((r)->msg), __VA_ARGS__);   \
		(r)->err;                                                  \
	})

#endif
