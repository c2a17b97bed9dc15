/* tls-pem: tls.crt (leaf + intermediates), tls.key (PKCS#8), ca.crt (trust
 * bundle).  The layout Stackable's secret-operator and most TLS servers
 * expect: the served chain never carries the root, which peers must already
 * trust. */
#include "keystore/keystore.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "util/mem.h"

SIGIL_DEFINE_CLEANUP(BIO, BIO_free_all)

/* A PEM file is a handful of certificates; anything beyond this is a bug. */
#define PEM_MAX_OUT (4u * 1024 * 1024)

static const char *pem_name(const char *v, const char *def)
{
	return v && *v ? v : def;
}

/* Copies the bytes of a memory BIO into a malloc'ed buffer the file set can
 * own.  The BIO of a key is a secmem BIO, which wipes its own storage. */
static int pem_bio_take(BIO *bio, uint8_t **ret, size_t *ret_len, sigil_err *err)
{
	char *p = NULL;
	long n = BIO_get_mem_data(bio, &p);
	uint8_t *out;

	if (n <= 0 || !p)
		return sigil_err_set(err, SIGIL_E_INTERNAL, "PEM encoder produced no output");
	if ((unsigned long)n > PEM_MAX_OUT)
		return sigil_err_set(err, SIGIL_E_LIMIT, "PEM output larger than %u bytes",
				     PEM_MAX_OUT);
	out = malloc((size_t)n);
	if (!out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	memcpy(out, p, (size_t)n);
	*ret = out;
	*ret_len = (size_t)n;
	return 0;
}

static int pem_put_cert(BIO *bio, X509 *x, sigil_err *err)
{
	if (!PEM_write_bio_X509(bio, x))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "encoding a certificate as PEM");
	return 0;
}

/* Adds a finished BIO as a file of the set. */
static int pem_add_bio(ks_fileset *out, const char *name, BIO *bio, bool secret, sigil_err *err)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	r = pem_bio_take(bio, &data, &len, err);
	if (r < 0)
		return r;
	return ks_fileset_add(out, name, data, len, secret, err);
}

int ks_pem_render(const ks_material *m, const ks_options *opts, ks_fileset *out,
		  sigil_err *err)
{
	static const ks_options no_opts;
	const ks_options *o = opts ? opts : &no_opts;
	int r;

	if (!m || !m->trust || sk_X509_num(m->trust) == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "no trust bundle to write");
	if ((m->key == NULL) != (m->leaf == NULL))
		return sigil_err_set(err, SIGIL_E_INVALID, "a key needs its certificate");
	if (sk_X509_num(m->trust) > KS_MAX_TRUST)
		return sigil_err_set(err, SIGIL_E_LIMIT, "trust bundle has more than %d certificates",
				     KS_MAX_TRUST);

	if (m->key) {
		_cleanup_(BIO_free_allp) BIO *crt = BIO_new(BIO_s_mem());
		/* secmem: the buffer holding the key is wiped when it grows and
		 * when it is freed. */
		_cleanup_(BIO_free_allp) BIO *key = BIO_new(BIO_s_secmem());
		int n_chain = m->chain ? sk_X509_num(m->chain) : 0;

		if (!crt || !key)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		if (n_chain > KS_MAX_CHAIN)
			return sigil_err_set(err, SIGIL_E_LIMIT,
					     "certificate chain has more than %d certificates",
					     KS_MAX_CHAIN);
		r = pem_put_cert(crt, m->leaf, err);
		if (r < 0)
			return r;
		for (int i = 0; i < n_chain; i++) {
			X509 *x = sk_X509_value(m->chain, i);

			/* The served chain never carries a root (RFC 8446 4.4.2:
			 * a self-signed certificate "MAY be omitted"; peers
			 * must already trust it, and sending it only costs
			 * bytes and confuses some clients). */
			if (X509_self_signed(x, 1) == 1)
				continue;
			r = pem_put_cert(crt, x, err);
			if (r < 0)
				return r;
		}
		/* PEM_write_bio_PrivateKey writes PKCS#8 PrivateKeyInfo
		 * ("BEGIN PRIVATE KEY") for every key type. */
		if (!PEM_write_bio_PrivateKey(key, m->key, NULL, NULL, 0, NULL, NULL))
			return sigil_err_ssl(err, SIGIL_E_CRYPTO, "encoding the private key as PKCS#8");
		r = pem_add_bio(out, pem_name(o->pem_cert_name, "tls.crt"), crt, false, err);
		if (r < 0)
			return r;
		r = pem_add_bio(out, pem_name(o->pem_key_name, "tls.key"), key, true, err);
		if (r < 0)
			return r;
	}

	{
		_cleanup_(BIO_free_allp) BIO *ca = BIO_new(BIO_s_mem());

		if (!ca)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		for (int i = 0; i < sk_X509_num(m->trust); i++) {
			r = pem_put_cert(ca, sk_X509_value(m->trust, i), err);
			if (r < 0)
				return r;
		}
		r = pem_add_bio(out, pem_name(o->pem_ca_name, "ca.crt"), ca, false, err);
		if (r < 0)
			return r;
	}
	return 0;
}
