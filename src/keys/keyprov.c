/* src/keys/keyprov.c — provider registry helpers. */
#include "config.h"

#include "cmkfs/keyprov.h"

void keyprov_close(struct keyprov *kp)
{
	if (kp != NULL && kp->ops != NULL && kp->ops->close != NULL)
		kp->ops->close(kp);
}
