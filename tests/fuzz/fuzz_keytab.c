/* Fuzz target: the keytab reader (`sigilctl inspect`, admin keytabs,
 * keytabs from the kadm helper). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kerberos/keytab.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kerberos_keytab *kt = NULL, *again = NULL, *merged = NULL;
	uint8_t *out = NULL, *out2 = NULL;
	size_t len = 0, len2 = 0;
	char name[512];

	if (kerberos_keytab_parse(data, size, &kt, NULL) != 0)
		return 0;
	for (size_t i = 0; i < kt->n; i++) {
		(void)kerberos_keytab_entry_principal(&kt->entries[i], name, sizeof(name));
		(void)kerberos_enctype_name(kt->entries[i].enctype);
	}
	/* Whatever parses must write out and read back to the same bytes. */
	if (kerberos_keytab_serialize(kt, &out, &len, NULL) != 0)
		abort();
	if (kerberos_keytab_parse(out, len, &again, NULL) != 0 || again->n != kt->n)
		abort();
	if (kerberos_keytab_serialize(again, &out2, &len2, NULL) != 0 || len2 != len ||
	    memcmp(out, out2, len) != 0)
		abort();
	/* Merging a keytab with itself changes nothing but duplicates. */
	if (kerberos_keytab_merge(kt, again, &merged, NULL) != 0 || merged->n > kt->n)
		abort();
	kerberos_keytab_free(merged);
	sigil_freezero(out, len);
	sigil_freezero(out2, len2);
	kerberos_keytab_free(again);
	kerberos_keytab_free(kt);
	return 0;
}
