/* Fuzz target: node volume records (JSON read back from the state dir). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csi/state.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	csi_volume_record r, back;
	char *json = NULL;

	if (csi_record_from_json((const char *)data, size, &r, NULL) != 0)
		return 0;
	/* What parses must serialise and parse back. */
	if (csi_record_to_json(&r, &json, NULL) != 0 ||
	    csi_record_from_json(json, strlen(json), &back, NULL) != 0)
		abort();
	if (strcmp(r.volume_id, back.volume_id) || r.n_files != back.n_files)
		abort();
	csi_record_free(&back);
	sigil_secret_free(json);
	csi_record_free(&r);
	return 0;
}
