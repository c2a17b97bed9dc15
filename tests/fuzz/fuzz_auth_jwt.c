/* Fuzz target: the "exp" claim of a bearer token that looks like a JWT
 * (ca_auth_kube_jwt_exp), which sigil-ca reads from every node token it
 * caches.  The input is the token as it arrives in the metadata. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ca/server/auth_kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t exp = -1;
	int r = ca_auth_kube_jwt_exp((const char *)data, size, &exp);

	if (r == 0 && exp <= 0)
		abort();
	if (r != 0 && (r != SIGIL_E_INVALID && r != SIGIL_E_NOMEM))
		abort();
	if (r != 0 && exp != -1) /* written only on success */
		abort();
	return 0;
}
