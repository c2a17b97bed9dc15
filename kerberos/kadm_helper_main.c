/* sigil-kadm-helper: runs kadm5 request batches, one at a time, for kerberos_provision
 * (kerberos/kadm.h says why this is a separate process). */
#include "kerberos/kadm.h"

int main(void)
{
	return kerberos_kadm_serve(KERBEROS_KADM_HELPER_FD);
}
