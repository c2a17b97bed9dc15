/* Key algorithms, key generation and PEM encoding of private keys. */
#include "ca/key.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "util/mem.h"

/* A PEM private key is a few KiB at most (RSA-4096 PKCS#8 encrypted is
 * ~3.3 KiB); anything much larger is not a key we want to parse. */
#define CA_MAX_KEY_PEM (64u * 1024)
/* Longest EC group name we look at ("prime256v1", "secp384r1", ...). */
#define CA_MAX_GROUP_NAME 64

SIGIL_DEFINE_CLEANUP(BIO, BIO_free_all)

static const struct {
	sigil_keyalg alg;
	const char *name;
	const char *describe;
} keyalg_table[] = {
	{ SIGIL_KEY_RSA2048, "rsa-2048", "RSA 2048" },
	{ SIGIL_KEY_RSA3072, "rsa-3072", "RSA 3072" },
	{ SIGIL_KEY_RSA4096, "rsa-4096", "RSA 4096" },
	{ SIGIL_KEY_ECDSA_P256, "ecdsa-p256", "ECDSA P-256" },
	{ SIGIL_KEY_ECDSA_P384, "ecdsa-p384", "ECDSA P-384" },
	{ SIGIL_KEY_ED25519, "ed25519", "Ed25519" },
};

int ca_keyalg_parse(const char *s, sigil_keyalg *ret)
{
	if (!s)
		return SIGIL_E_INVALID;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(keyalg_table); i++) {
		if (strcmp(s, keyalg_table[i].name) == 0) {
			*ret = keyalg_table[i].alg;
			return 0;
		}
	}
	return SIGIL_E_INVALID;
}

const char *ca_keyalg_name(sigil_keyalg alg)
{
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(keyalg_table); i++)
		if (keyalg_table[i].alg == alg)
			return keyalg_table[i].name;
	return "unknown";
}

bool ca_keyalg_is_rsa(sigil_keyalg alg)
{
	switch (alg) {
	case SIGIL_KEY_RSA2048:
	case SIGIL_KEY_RSA3072:
	case SIGIL_KEY_RSA4096:
		return true;
	case SIGIL_KEY_ECDSA_P256:
	case SIGIL_KEY_ECDSA_P384:
	case SIGIL_KEY_ED25519:
	case SIGIL_KEY__COUNT:
	default:
		return false;
	}
}

int ca_key_generate(sigil_keyalg alg, EVP_PKEY **ret, sigil_err *err)
{
	EVP_PKEY *key;

	switch (alg) {
	case SIGIL_KEY_RSA2048:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	case SIGIL_KEY_RSA3072:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
		break;
	case SIGIL_KEY_RSA4096:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
		break;
	case SIGIL_KEY_ECDSA_P256:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case SIGIL_KEY_ECDSA_P384:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case SIGIL_KEY_ED25519:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	case SIGIL_KEY__COUNT:
	default:
		return sigil_err_set(err, SIGIL_E_INVALID, "unknown key algorithm %d", (int)alg);
	}
	if (!key)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot generate %s key", ca_keyalg_name(alg));
	*ret = key;
	return 0;
}

/* NID of the named curve of an EC key, NID_undef for explicit parameters. */
static int key_curve_nid(const EVP_PKEY *key)
{
	char name[CA_MAX_GROUP_NAME];
	size_t name_len = 0;
	int nid;

	if (!EVP_PKEY_get_group_name(key, name, sizeof(name), &name_len))
		return NID_undef;
	nid = OBJ_sn2nid(name);
	if (nid == NID_undef)
		nid = EC_curve_nist2nid(name);
	return nid;
}

int ca_key_alg(const EVP_PKEY *key, sigil_keyalg *ret)
{
	if (!key)
		return SIGIL_E_INVALID;
	/* Plain RSA only: RSA-PSS keys carry parameter restrictions that our
	 * signing and keystore code does not honour. */
	if (EVP_PKEY_is_a(key, "RSA")) {
		switch (EVP_PKEY_get_bits(key)) {
		case 2048:
			*ret = SIGIL_KEY_RSA2048;
			return 0;
		case 3072:
			*ret = SIGIL_KEY_RSA3072;
			return 0;
		case 4096:
			*ret = SIGIL_KEY_RSA4096;
			return 0;
		default:
			return SIGIL_E_INVALID;
		}
	}
	if (EVP_PKEY_is_a(key, "EC")) {
		switch (key_curve_nid(key)) {
		case NID_X9_62_prime256v1:
			*ret = SIGIL_KEY_ECDSA_P256;
			return 0;
		case NID_secp384r1:
			*ret = SIGIL_KEY_ECDSA_P384;
			return 0;
		default:
			return SIGIL_E_INVALID;
		}
	}
	if (EVP_PKEY_is_a(key, "ED25519")) {
		*ret = SIGIL_KEY_ED25519;
		return 0;
	}
	return SIGIL_E_INVALID;
}

int ca_key_sign_digest(const EVP_PKEY *key, const EVP_MD **ret, sigil_err *err)
{
	char desc[64];

	if (!key)
		return sigil_err_set(err, SIGIL_E_INVALID, "no key");
	if (EVP_PKEY_is_a(key, "RSA")) {
		/* NIST SP 800-131A: nothing below 2048 bits signs anything. */
		if (EVP_PKEY_get_bits(key) < 2048)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s key is too weak to sign certificates (need >= 2048 bits)",
					     ca_key_describe(key, desc, sizeof(desc)));
		*ret = EVP_sha256();
		return 0;
	}
	if (EVP_PKEY_is_a(key, "EC")) {
		switch (key_curve_nid(key)) {
		case NID_X9_62_prime256v1:
			*ret = EVP_sha256();
			return 0;
		case NID_secp384r1:
			*ret = EVP_sha384();
			return 0;
		case NID_secp521r1:
			*ret = EVP_sha512();
			return 0;
		default:
			break;
		}
	} else if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448")) {
		/* RFC 8410 section 6: EdDSA signs the message itself, no digest. */
		*ret = NULL;
		return 0;
	}
	return sigil_err_set(err, SIGIL_E_INVALID,
			     "%s keys cannot sign certificates here (use RSA, ECDSA P-256/P-384/P-521 or Ed25519)",
			     ca_key_describe(key, desc, sizeof(desc)));
}

const char *ca_key_describe(const EVP_PKEY *key, char *buf, size_t len)
{
	sigil_keyalg alg;
	const char *type;

	if (!buf || len == 0)
		return "";
	if (!key) {
		snprintf(buf, len, "no key");
		return buf;
	}
	if (ca_key_alg(key, &alg) == 0) {
		for (size_t i = 0; i < SIGIL_ARRAY_SIZE(keyalg_table); i++)
			if (keyalg_table[i].alg == alg)
				snprintf(buf, len, "%s", keyalg_table[i].describe);
		return buf;
	}
	type = EVP_PKEY_get0_type_name(key);
	if (!type)
		type = "unknown";
	if (EVP_PKEY_is_a(key, "EC")) {
		int nid = key_curve_nid(key);
		const char *curve = nid != NID_undef ? OBJ_nid2sn(nid) : "explicit curve";
		snprintf(buf, len, "EC %s", curve ? curve : "unknown curve");
	} else if (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS") ||
		   EVP_PKEY_is_a(key, "DSA")) {
		snprintf(buf, len, "%s %d", type, EVP_PKEY_get_bits(key));
	} else {
		snprintf(buf, len, "%s", type);
	}
	return buf;
}

int ca_key_to_pkcs8_pem(EVP_PKEY *key, char **ret, size_t *len, sigil_err *err)
{
	/* The secure-memory BIO wipes its buffer when it grows and when freed. */
	_cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_secmem());
	char *data = NULL;
	long n;
	char *out;

	if (!key)
		return sigil_err_set(err, SIGIL_E_INVALID, "no key to encode");
	if (!bio)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "cannot allocate BIO");
	if (!PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot encode private key as PKCS#8");
	n = BIO_get_mem_data(bio, &data);
	if (n <= 0 || !data)
		return sigil_err_set(err, SIGIL_E_CRYPTO, "cannot encode private key as PKCS#8");
	out = malloc((size_t)n + 1);
	if (!out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*ret = out;
	*len = (size_t)n;
	return 0;
}

struct pw_state {
	const char *passphrase;
	bool asked;
};

/* Never prompts: OpenSSL's default callback would read from the terminal. */
static int key_pw_cb(char *buf, int size, int rwflag, void *u)
{
	struct pw_state *st = u;
	size_t n;

	(void)rwflag;
	st->asked = true;
	if (!st->passphrase || size <= 0)
		return -1;
	n = strlen(st->passphrase);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, st->passphrase, n);
	return (int)n;
}

int ca_key_from_pem(const char *pem, size_t len, const char *passphrase, EVP_PKEY **ret,
		    sigil_err *err)
{
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	struct pw_state st = { .passphrase = passphrase, .asked = false };
	EVP_PKEY *key;

	if (!pem || len == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "empty private key");
	if (len > CA_MAX_KEY_PEM)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "private key PEM of %zu bytes exceeds the limit of %u bytes", len,
				     CA_MAX_KEY_PEM);
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "cannot allocate BIO");
	ERR_clear_error();
	key = PEM_read_bio_PrivateKey(bio, NULL, key_pw_cb, &st);
	if (!key) {
		if (st.asked && !passphrase)
			return sigil_err_ssl(err, SIGIL_E_INVALID,
					     "private key is encrypted but no passphrase was given");
		if (st.asked)
			return sigil_err_ssl(err, SIGIL_E_UNAUTH,
					     "cannot decrypt private key: wrong passphrase?");
		return sigil_err_ssl(err, SIGIL_E_INVALID, "cannot read PEM private key");
	}
	ERR_clear_error();
	*ret = key;
	return 0;
}
