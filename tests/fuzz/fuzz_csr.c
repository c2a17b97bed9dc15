/* Fuzz target for the CA's CSR path: parsing and verifying a DER CSR from
 * a node, then issuing a leaf for it as sigil-ca would. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/x509.h>

#include "ca/authority.h"
#include "ca/issue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One CA for the whole run (Ed25519: cheap to make and to sign with). */
static ca_authority *fuzz_ca(void)
{
	static ca_authority *ca;
	ca_create_opts opts = {
		.alg = SIGIL_KEY_ED25519,
		.common_name = "fuzz CA",
		.now = 1704067200,
	};

	if (!ca && ca_authority_create(&opts, &ca, NULL) < 0)
		abort();
	return ca;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *dns[] = { "fuzz.example" };
	ca_leaf_request req = {
		.common_name = "fuzz",
		.dns = dns,
		.n_dns = 1,
		.lifetime_secs = 86400,
		.jitter_factor = 0.2,
		.now = 1704067200,
	};
	sigil_err err = { 0 };
	EVP_PKEY *pub = NULL;
	X509 *leaf = NULL;

	if (ca_csr_parse(data, size, &pub, &err) == 0) {
		/* A CSR that parses must yield a usable key and a leaf. */
		if (!pub || ca_issue_from_pubkey(fuzz_ca(), pub, &req, &leaf, &err) < 0)
			abort();
		if (X509_verify(leaf, X509_get0_pubkey(fuzz_ca()->cert)) != 1)
			abort();
		X509_free(leaf);
		EVP_PKEY_free(pub);
	} else if (pub || err.code == 0 || err.msg[0] == '\0') {
		/* Failure leaves the out-parameter alone and explains itself. */
		abort();
	}
	if (ca_issue_from_csr(fuzz_ca(), data, size, &req, &leaf, NULL) == 0)
		X509_free(leaf);
	return 0;
}
