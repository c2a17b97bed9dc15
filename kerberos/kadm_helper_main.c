/* sigil-kadm-helper: runs one kadm5 request batch for kerberos_provision
 * (kerberos/kadm.h says why this is a separate process). */
#include "kerberos/kadm.h"

int main(void)
{
	return kerberos_kadm_serve(KERBEROS_KADM_HELPER_FD);
}
