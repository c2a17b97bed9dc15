/* libFuzzer target for the JKS reader (keystore/jks.c ks_jks_parse).
 *
 * Each input is parsed as is (with the corpus passwords), and once more with
 * its trailing 20 bytes replaced by the correct integrity digest for
 * "changeit": otherwise a fuzzer could never get past the keyed SHA-1 and
 * would not reach the key recovery and certificate parsing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "keystore/keystore.h"

#define FUZZ_PW "changeit"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_parse(const uint8_t *data, size_t size, const char *pw)
{
	sigil_err err;
	ks_jks j;

	if (ks_jks_parse(data, size, pw, &j, &err) == 0)
		ks_jks_free(&j);
}

static int fuzz_redigest(uint8_t *d, size_t size)
{
	static const char whitener[] = "Mighty Aphrodite";
	uint8_t pw16[2 * (sizeof(FUZZ_PW) - 1)];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	for (size_t i = 0; i < sizeof(FUZZ_PW) - 1; i++) {
		pw16[2 * i] = 0;
		pw16[2 * i + 1] = (uint8_t)FUZZ_PW[i];
	}
	ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
	     EVP_DigestUpdate(ctx, pw16, sizeof(pw16)) &&
	     EVP_DigestUpdate(ctx, whitener, sizeof(whitener) - 1) &&
	     EVP_DigestUpdate(ctx, d, size - 20) && EVP_DigestFinal_ex(ctx, d + size - 20, NULL);
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	fuzz_parse(data, size, FUZZ_PW);
	fuzz_parse(data, size, "");
	if (size < 20)
		return 0;
	/* An exact-size heap copy: reads past the end are caught by ASan. */
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (fuzz_redigest(copy, size) == 0)
		fuzz_parse(copy, size, FUZZ_PW);
	free(copy);
	return 0;
}
