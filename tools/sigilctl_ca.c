/* sigilctl ca / mint: work directly on a local CA state dir (the embedded
 * CA that sigil-csi uses standalone). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include "ca/caset.h"
#include "ca/issue.h"
#include "ca/key.h"
#include "keystore/keystore.h"
#include "tools/sigilctl.h"
#include "util/duration.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/parse.h"

#define MINT_MAX_NAMES 64

typedef struct ca_args {
	const char *state_dir;
	const char *class_name;
	sigil_keyalg ca_alg;
	int64_t ca_lifetime;
	int64_t retirement;
} ca_args;

static void fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int open_set(const ca_args *a, ca_store **ret_store, ca_set **ret_set)
{
	sigil_err err = {0};
	ca_store *store = NULL;
	ca_set *set = NULL;
	ca_set_config cfg = {
		.class_name = a->class_name,
		.key_alg = a->ca_alg,
		.ca_lifetime_secs = a->ca_lifetime,
		.retirement_secs = a->retirement,
		.auto_generate = true,
	};

	if (ca_store_dir_open(a->state_dir, &store, &err) < 0 ||
	    ca_set_open(store, &cfg, &set, &err) < 0) {
		fprintf(stderr, "sigilctl: %s\n", err.msg);
		ca_store_free(store);
		return -1;
	}
	*ret_store = store;
	*ret_set = set;
	return 0;
}

static int parse_ca_opt(int c, const char *arg, ca_args *a)
{
	sigil_err err = {0};

	switch (c) {
	case 's': a->state_dir = arg; return 0;
	case 'c': a->class_name = arg; return 0;
	case 'A':
		if (ca_keyalg_parse(arg, &a->ca_alg) < 0) {
			fprintf(stderr, "sigilctl: unknown CA key algorithm '%s'\n", arg);
			return -1;
		}
		return 0;
	case 'L':
		if (sigil_duration_parse(arg, &a->ca_lifetime, &err) < 0) {
			fprintf(stderr, "sigilctl: --ca-lifetime: %s\n", err.msg);
			return -1;
		}
		return 0;
	case 'R':
		if (sigil_duration_parse(arg, &a->retirement, &err) < 0) {
			fprintf(stderr, "sigilctl: --ca-retirement: %s\n", err.msg);
			return -1;
		}
		return 0;
	default:
		return 1; /* not a CA option */
	}
}

#define CA_LONGOPTS                                                                      \
	{"state-dir", required_argument, 0, 's'}, {"class", required_argument, 0, 'c'},  \
		{"ca-key-algorithm", required_argument, 0, 'A'},                         \
		{"ca-lifetime", required_argument, 0, 'L'},                              \
		{"ca-retirement", required_argument, 0, 'R'}

static void ca_args_init(ca_args *a)
{
	a->state_dir = NULL;
	a->class_name = "tls";
	a->ca_alg = SIGIL_KEY_ECDSA_P256;
	a->ca_lifetime = 365LL * 86400;
	a->retirement = 3600;
}

static void print_set(const ca_set *set)
{
	time_t now = time(NULL);

	printf("class %s: %zu CA generation(s), bundle version %llu\n", set->class_name, set->n,
	       (unsigned long long)set->version);
	for (size_t i = 0; i < set->n; i++) {
		char nb[32], na[32], kd[32], subj[256];
		X509 *x = set->cas[i]->cert;
		time_t t_na = ca_authority_not_after(set->cas[i]);

		fmt_time(ca_authority_not_before(set->cas[i]), nb, sizeof(nb));
		fmt_time(t_na, na, sizeof(na));
		ca_key_describe(set->cas[i]->key, kd, sizeof(kd));
		X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
		printf("  generation %llu: %s, %s, valid %s .. %s%s\n",
		       (unsigned long long)set->generations[i], subj, kd, nb, na,
		       t_na <= now ? " (expired)" : "");
	}
}

int sigilctl_cmd_ca(int argc, char **argv)
{
	static const struct option opts[] = {CA_LONGOPTS, {"help", no_argument, 0, 'h'}, {0}};
	ca_args a;
	const char *sub;
	ca_store *store = NULL;
	ca_set *set = NULL;
	int c, rc = SIGILCTL_EXIT_OK;

	ca_args_init(&a);
	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: sigilctl ca init|status|rotate --state-dir DIR [--class NAME]\n"
				"       [--ca-key-algorithm ALG] [--ca-lifetime DUR] [--ca-retirement DUR]\n");
		return SIGILCTL_EXIT_USAGE;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: sigilctl ca init|status|rotate --state-dir DIR [--class NAME]\n");
			return SIGILCTL_EXIT_OK;
		}
		if (parse_ca_opt(c, optarg, &a) != 0)
			return SIGILCTL_EXIT_USAGE;
	}
	if (!a.state_dir) {
		fprintf(stderr, "sigilctl ca: --state-dir is required\n");
		return SIGILCTL_EXIT_USAGE;
	}
	if (strcmp(sub, "init") && strcmp(sub, "status") && strcmp(sub, "rotate")) {
		fprintf(stderr, "sigilctl ca: unknown sub-command '%s'\n", sub);
		return SIGILCTL_EXIT_USAGE;
	}
	if (open_set(&a, &store, &set) < 0)
		return SIGILCTL_EXIT_FAIL;
	if (!strcmp(sub, "rotate")) {
		sigil_err err = {0};
		if (ca_set_rotate_now(set, &err) < 0) {
			fprintf(stderr, "sigilctl: rotate: %s\n", err.msg);
			rc = SIGILCTL_EXIT_FAIL;
		}
	}
	if (rc == SIGILCTL_EXIT_OK)
		print_set(set);
	ca_set_free(set);
	ca_store_free(store);
	return rc;
}

typedef struct mint_args {
	ca_args ca;
	const char *out;
	ks_format format;
	sigil_keyalg alg;
	const char *cn;
	const char *dns[MINT_MAX_NAMES];
	size_t n_dns;
	const char *ips[MINT_MAX_NAMES];
	size_t n_ips;
	const char *uris[MINT_MAX_NAMES];
	size_t n_uris;
	int64_t lifetime;
	double jitter;
	ks_options ks;
	bool public_only;
} mint_args;

static int add_name(const char **arr, size_t *n, const char *v)
{
	if (*n >= MINT_MAX_NAMES) {
		fprintf(stderr, "sigilctl mint: at most %d names of one kind\n", MINT_MAX_NAMES);
		return -1;
	}
	arr[(*n)++] = v;
	return 0;
}

static void mint_usage(FILE *f)
{
	fprintf(f,
		"usage: sigilctl mint --state-dir DIR --out DIR [options]\n"
		"  --class NAME              SecretClass (default tls)\n"
		"  --format FMT              tls-pem (default), tls-pkcs12, tls-jks\n"
		"  --key-algorithm ALG       leaf key: rsa-2048 rsa-3072 rsa-4096 ecdsa-p256 ecdsa-p384 ed25519\n"
		"  --cn NAME --dns NAME --ip ADDR --uri URI   names (repeatable)\n"
		"  --lifetime DUR            requested lifetime (default 24h)\n"
		"  --jitter F                0 <= F < 1 (default 0.2)\n"
		"  --password PW             store password (PKCS#12, JKS; default empty)\n"
		"  --pkcs12-legacy           SHA1/3DES PKCS#12 for old Java\n"
		"  --public-only             write only the trust bundle (provision-parts=public)\n");
}

/* The node-side pipeline of a TLS volume: the key is made here, only its
 * CSR goes to the CA, the CA decides the names and signs. */
static int mint(const mint_args *m)
{
	sigil_err err = {0};
	ca_store *store = NULL;
	ca_set *set = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	STACK_OF(X509) *trust = NULL;
	STACK_OF(X509) *chain = NULL;
	uint8_t *csr = NULL;
	size_t csr_len = 0;
	ks_fileset fs = {0};
	int rc = SIGILCTL_EXIT_FAIL;
	time_t now = time(NULL);

	if (open_set(&m->ca, &store, &set) < 0)
		return SIGILCTL_EXIT_FAIL;
	if (!m->public_only) {
		const ca_authority *signer;
		ca_leaf_request req = {
			.common_name = m->cn,
			.dns = m->dns, .n_dns = m->n_dns,
			.ips = m->ips, .n_ips = m->n_ips,
			.uris = m->uris, .n_uris = m->n_uris,
			.lifetime_secs = m->lifetime,
			.ca_retirement_secs = m->ca.retirement,
			.jitter_factor = m->jitter,
			.now = now,
		};
		if (ca_key_generate(m->alg, &key, &err) < 0 ||
		    ca_csr_create(key, m->cn, &csr, &csr_len, &err) < 0)
			goto out;
		signer = ca_set_signer(set, now + m->lifetime);
		if (ca_issue_from_csr(signer, csr, csr_len, &req, &leaf, &err) < 0)
			goto out;
		chain = signer->chain ? X509_chain_up_ref(signer->chain) : sk_X509_new_null();
		if (!chain) {
			sigil_err_set(&err, SIGIL_E_NOMEM, "out of memory");
			goto out;
		}
	}
	if (ca_set_trust_bundle(set, &trust, &err) < 0)
		goto out;
	ks_material mat = {.key = key, .leaf = leaf, .chain = chain, .trust = trust};
	if (ks_render(m->format, &mat, &m->ks, &fs, &err) < 0)
		goto out;
	if (sigil_fs_mkdir_p(m->out, 0750, &err) < 0)
		goto out;
	for (size_t i = 0; i < fs.n; i++) {
		_cleanup_free_ char *path = sigil_path_join(m->out, fs.files[i].name);
		char *slash;

		if (!path) {
			sigil_err_set(&err, SIGIL_E_NOMEM, "out of memory");
			goto out;
		}
		slash = strrchr(path, '/');
		if (slash && strchr(fs.files[i].name, '/')) {
			*slash = '\0';
			if (sigil_fs_mkdir_p(path, 0750, &err) < 0)
				goto out;
			*slash = '/';
		}
		if (sigil_fs_write_atomic(path, fs.files[i].data, fs.files[i].len, 0640, &err) < 0)
			goto out;
		printf("wrote %s (%zu bytes)\n", path, fs.files[i].len);
	}
	rc = SIGILCTL_EXIT_OK;
out:
	if (rc != SIGILCTL_EXIT_OK)
		fprintf(stderr, "sigilctl mint: %s\n", err.msg);
	ks_fileset_free(&fs);
	free(csr);
	sk_X509_pop_free(trust, X509_free);
	sk_X509_pop_free(chain, X509_free);
	X509_free(leaf);
	EVP_PKEY_free(key);
	ca_set_free(set);
	ca_store_free(store);
	return rc;
}

int sigilctl_cmd_mint(int argc, char **argv)
{
	static const struct option opts[] = {
		CA_LONGOPTS,
		{"out", required_argument, 0, 'o'},
		{"format", required_argument, 0, 'f'},
		{"key-algorithm", required_argument, 0, 'k'},
		{"cn", required_argument, 0, 'n'},
		{"dns", required_argument, 0, 'd'},
		{"ip", required_argument, 0, 'i'},
		{"uri", required_argument, 0, 'u'},
		{"lifetime", required_argument, 0, 'l'},
		{"jitter", required_argument, 0, 'j'},
		{"password", required_argument, 0, 'p'},
		{"pkcs12-legacy", no_argument, 0, 'P'},
		{"public-only", no_argument, 0, 'x'},
		{"help", no_argument, 0, 'h'},
		{0},
	};
	mint_args m;
	sigil_err err = {0};
	int c;

	memset(&m, 0, sizeof(m));
	ca_args_init(&m.ca);
	m.format = KS_FORMAT_PEM;
	m.alg = SIGIL_KEY_ECDSA_P256;
	m.lifetime = 24 * 3600;
	m.jitter = 0.2;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		int r = parse_ca_opt(c, optarg, &m.ca);
		if (r < 0)
			return SIGILCTL_EXIT_USAGE;
		if (r == 0)
			continue;
		switch (c) {
		case 'o': m.out = optarg; break;
		case 'f':
			if (ks_format_parse(optarg, &m.format) < 0) {
				fprintf(stderr, "sigilctl mint: unknown format '%s'\n", optarg);
				return SIGILCTL_EXIT_USAGE;
			}
			break;
		case 'k':
			if (ca_keyalg_parse(optarg, &m.alg) < 0) {
				fprintf(stderr, "sigilctl mint: unknown key algorithm '%s'\n", optarg);
				return SIGILCTL_EXIT_USAGE;
			}
			break;
		case 'n': m.cn = optarg; break;
		case 'd': if (add_name(m.dns, &m.n_dns, optarg) < 0) return SIGILCTL_EXIT_USAGE; break;
		case 'i': if (add_name(m.ips, &m.n_ips, optarg) < 0) return SIGILCTL_EXIT_USAGE; break;
		case 'u': if (add_name(m.uris, &m.n_uris, optarg) < 0) return SIGILCTL_EXIT_USAGE; break;
		case 'l':
			if (sigil_duration_parse(optarg, &m.lifetime, &err) < 0) {
				fprintf(stderr, "sigilctl mint: --lifetime: %s\n", err.msg);
				return SIGILCTL_EXIT_USAGE;
			}
			break;
		case 'j':
			if (sigil_parse_double(optarg, 0.0, 1.0, &m.jitter) < 0) {
				fprintf(stderr, "sigilctl mint: --jitter must be a number in [0, 1)\n");
				return SIGILCTL_EXIT_USAGE;
			}
			break;
		case 'p': m.ks.password = optarg; break;
		case 'P': m.ks.pkcs12_legacy = true; break;
		case 'x': m.public_only = true; break;
		case 'h': mint_usage(stdout); return SIGILCTL_EXIT_OK;
		default: mint_usage(stderr); return SIGILCTL_EXIT_USAGE;
		}
	}
	if (!m.ca.state_dir || !m.out) {
		fprintf(stderr, "sigilctl mint: --state-dir and --out are required\n");
		return SIGILCTL_EXIT_USAGE;
	}
	return mint(&m);
}
