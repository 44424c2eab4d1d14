/* src/cli/keyopts.c — --service-key(-fd), --ca-file, --audit-log
 * (src/cli/keyopts.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "keyopts.h"

/* fstab's spelling (no dashes in -o) of the long options above. */
static const struct {
	const char *fstab, *flag;
} fstab_names[] = {
	{ "service_key=", "--service-key" },
	{ "service_key_fd=", "--service-key-fd" },
	{ "ca_file=", "--ca-file" },
	{ "audit_log=", "--audit-log" },
};

const char *keyopts_fd_source(const char *arg, char *buf, size_t cap)
{
	char *end;
	long v;

	/* Read when first used (kp_local_load). A descriptor that is not
	 * open now must not be taken for one this process opens later (the
	 * audit log): such a source fails there with EBADF, naming it. */
	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end != '\0' || v < 0 || v > INT_MAX ||
	    fcntl((int)v, F_GETFD) < 0)
		snprintf(buf, cap, "%s%.8s (not open)", SERVICE_KEY_FD_PREFIX,
			 arg);
	else
		snprintf(buf, cap, "%s%ld", SERVICE_KEY_FD_PREFIX, v);
	return buf;
}

void keyopts_init(struct keyopts *ko)
{
	ko->service_key = kp_local_default_path();
	ko->fd_source[0] = '\0';
	ko->ca_file = NULL;
	ko->audit_log = NULL;
}

bool keyopts_parse(int c, const char *arg, struct keyopts *ko)
{
	switch (c) {
	case KEYOPTS_SERVICE_KEY:
		ko->service_key = arg;
		return true;
	case KEYOPTS_SERVICE_KEY_FD:
		ko->service_key = keyopts_fd_source(arg, ko->fd_source,
						    sizeof(ko->fd_source));
		return true;
	case KEYOPTS_CA_FILE:
		ko->ca_file = arg;
		return true;
	case KEYOPTS_AUDIT_LOG:
		ko->audit_log = arg;
		return true;
	default:
		return false;
	}
}

void keyopts_apply(const struct keyopts *ko)
{
	/* NULL leaves the provider on $CMKFS_CA_FILE */
	kp_akv_set_ca_file(ko->ca_file);
}

const char *keyopts_audit_log(const struct keyopts *ko)
{
	return ko->audit_log != NULL ? ko->audit_log : audit_default_path();
}

bool keyopts_margin(const char *arg, int *days)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || *end || end == arg || v < 0 || v > 365)
		return false;
	*days = (int)v;
	return true;
}

bool keyopts_fstab(const char *o, const char **flag, const char **value)
{
	for (size_t k = 0; k < CMK_ARRAY_LEN(fstab_names); k++) {
		size_t n = strlen(fstab_names[k].fstab);

		if (strncmp(o, fstab_names[k].fstab, n) == 0) {
			*flag = fstab_names[k].flag;
			*value = o + n;
			return true;
		}
	}
	return false;
}
