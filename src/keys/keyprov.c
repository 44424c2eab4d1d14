/* src/keys/keyprov.c — the provider registry: one table of provider kinds,
 * looked up by the type a volume layer records. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cmkfs/keyprov.h"

static const struct keyprov_ops *const kinds[] = {
	&kp_local_ops,
	&kp_akv_ops,
};

void keyprov_close(struct keyprov *kp)
{
	if (kp != NULL && kp->ops != NULL && kp->ops->close != NULL)
		kp->ops->close(kp);
}

int keyprov_for_layer(const struct volume *v, int layer,
		      const uint8_t *service_key, struct keyprov **out)
{
	for (size_t i = 0; i < CMK_ARRAY_LEN(kinds); i++) {
		if (kinds[i]->type == v->layer[layer].prov)
			return kinds[i]->open(v, layer, service_key, out);
	}
	return -EOPNOTSUPP;
}

void keyprov_forget(void)
{
	for (size_t i = 0; i < CMK_ARRAY_LEN(kinds); i++) {
		if (kinds[i]->forget != NULL)
			kinds[i]->forget();
	}
}

const char *keyprov_last_error(void)
{
	for (size_t i = 0; i < CMK_ARRAY_LEN(kinds); i++) {
		if (kinds[i]->last_error != NULL)
			return kinds[i]->last_error();
	}
	return "no error";
}

void keyprov_last_why(struct keyprov_why *w)
{
	memset(w, 0, sizeof(*w));
	for (size_t i = 0; i < CMK_ARRAY_LEN(kinds); i++) {
		if (kinds[i]->last_why != NULL) {
			kinds[i]->last_why(w);
			return;
		}
	}
}

void keyprov_clear_error(void)
{
	for (size_t i = 0; i < CMK_ARRAY_LEN(kinds); i++) {
		if (kinds[i]->clear_error != NULL)
			kinds[i]->clear_error();
	}
}
