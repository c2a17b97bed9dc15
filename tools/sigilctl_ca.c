/* sigilctl ca / mint: work directly on a local CA state dir (the embedded
 * CA that sigil-csi uses standalone), or, given --ca-endpoint, ask a
 * running sigil-ca over the issuer API (Status, Rotate). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "ca/caset.h"
#include "ca/issue.h"
#include "ca/key.h"
#include "keystore/keystore.h"
#include "proto/issuer.pb-c.h"
#include "rpc/client.h"
#include "tools/sigilctl.h"
#include "util/duration.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/parse.h"

#define MINT_MAX_NAMES 64
/* A bearer token file (service account JWTs are about 1 KiB). */
#define REMOTE_MAX_TOKEN 8192
/* One call to sigil-ca; a rotation generates a key, RSA-4096 takes seconds. */
#define REMOTE_TIMEOUT_MS 30000

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

/* ---- remote mode: the issuer API of a running sigil-ca ------------------------------ */

typedef struct remote_args {
	const char *endpoint;
	const char *bundle_file;
	const char *token_file;
	const char *server_name;
	bool json;
} remote_args;

/* One unary call with "authorization: Bearer <token file>".  0 with *st
 * filled once the call has a final status (any code); < 0 with err when it
 * could not be made at all (unreadable files, bad endpoint). */
static int remote_call(const remote_args *ra, const char *method, const ProtobufCMessage *req,
		       rpc_status *st, uint8_t **resp, size_t *resp_len, sigil_err *err)
{
	_cleanup_(rpc_client_freep) rpc_client *client = NULL;
	uint8_t *bundle = NULL, *tok = NULL, *buf = NULL;
	size_t blen = 0, tok_len = 0, n, auth_len = 0;
	char *auth = NULL;
	int r;

	r = sigil_fs_read_file(ra->bundle_file, SIGIL_MAX_FILE_SIZE, &bundle, &blen, err);
	if (r < 0)
		return sigil_err_prefix(err, "--ca-bundle: ");
	r = sigil_fs_read_file(ra->token_file, REMOTE_MAX_TOKEN, &tok, &tok_len, err);
	if (r < 0) {
		free(bundle);
		return sigil_err_prefix(err, "--token-file: ");
	}
	while (tok_len > 0 && (tok[tok_len - 1] == '\n' || tok[tok_len - 1] == '\r' ||
			       tok[tok_len - 1] == ' ' || tok[tok_len - 1] == '\t'))
		tok[--tok_len] = '\0';
	if (tok_len == 0) {
		r = sigil_err_set(err, SIGIL_E_INVALID, "--token-file: %s is empty", ra->token_file);
		goto out;
	}
	auth_len = tok_len + sizeof("Bearer ");
	auth = malloc(auth_len);
	n = protobuf_c_message_get_packed_size(req);
	buf = malloc(n ? n : 1);
	if (!auth || !buf) {
		r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		goto out;
	}
	snprintf(auth, auth_len, "Bearer %s", (const char *)tok);
	protobuf_c_message_pack(req, buf);
	rpc_client_config cc = {
		.target = ra->endpoint,
		.tls_root_pem = (const char *)bundle,
		.tls_server_name = ra->server_name,
	};
	r = rpc_client_new(&cc, &client, err);
	if (r < 0) {
		sigil_err_prefix(err, "--ca-endpoint %s: ", ra->endpoint);
		goto out;
	}
	rpc_metadata md = {"authorization", auth};
	r = rpc_client_call(client, method, buf, n, &md, 1, REMOTE_TIMEOUT_MS, st, resp, resp_len,
			    err);
out:
	free(buf);
	if (auth)
		sigil_freezero(auth, auth_len);
	sigil_freezero(tok, tok_len + 1);
	free(bundle);
	return r;
}

/* One line on stderr that says what failed and what to do about it. */
static void remote_report(const char *sub, const remote_args *ra, const rpc_status *st)
{
	const char *code = rpc_code_name(st->code);

	switch (st->code) {
	case RPC_UNAVAILABLE:
		fprintf(stderr,
			"sigilctl ca %s: sigil-ca at %s is unavailable (%s): %s\n"
			"  check that sigil-ca runs and listens there, and that --ca-bundle holds "
			"the CA of its TLS certificate\n",
			sub, ra->endpoint, code, st->msg);
		break;
	case RPC_DEADLINE_EXCEEDED:
		fprintf(stderr, "sigilctl ca %s: sigil-ca at %s did not answer in %d s (%s)\n", sub,
			ra->endpoint, REMOTE_TIMEOUT_MS / 1000, code);
		break;
	case RPC_UNAUTHENTICATED:
		fprintf(stderr, "sigilctl ca %s: sigil-ca did not accept the token in %s (%s): %s\n",
			sub, ra->token_file, code, st->msg);
		break;
	case RPC_PERMISSION_DENIED:
		fprintf(stderr, "sigilctl ca %s: permission denied by sigil-ca (%s): %s\n", sub,
			code, st->msg);
		break;
	default:
		fprintf(stderr, "sigilctl ca %s: sigil-ca answered %s: %s\n", sub, code, st->msg);
		break;
	}
}

static void fmt_time_or_dash(int64_t t, char *buf, size_t len)
{
	if (t <= 0)
		snprintf(buf, len, "-");
	else
		fmt_time((time_t)t, buf, len);
}

static const char *gen_state(const Sigil__V1__CaGeneration *g, time_t now)
{
	if (g->not_after > 0 && g->not_after <= (int64_t)now)
		return "expired";
	return g->retired ? "retired" : "active";
}

static void print_status_text(const Sigil__V1__StatusResponse *sr)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < sr->n_classes; i++) {
		const Sigil__V1__ClassStatus *c = sr->classes[i];

		printf("%sclass %s (%s): %zu CA generation(s), bundle version %llu\n", i ? "\n" : "",
		       c->name, c->backend, c->n_generations,
		       (unsigned long long)c->bundle_version);
		if (c->n_generations == 0)
			continue;
		printf("  %-10s %-8s %-14s %-20s %-20s %s\n", "GENERATION", "STATE", "KEY",
		       "NOT BEFORE", "NOT AFTER", "SUBJECT");
		for (size_t j = 0; j < c->n_generations; j++) {
			const Sigil__V1__CaGeneration *g = c->generations[j];
			char nb[32], na[32];

			fmt_time_or_dash(g->not_before, nb, sizeof(nb));
			fmt_time_or_dash(g->not_after, na, sizeof(na));
			printf("  %-10llu %-8s %-14s %-20s %-20s %s\n",
			       (unsigned long long)g->generation, gen_state(g, now), g->key_type, nb,
			       na, g->subject);
		}
	}
}

/* Versions are 64-bit: JSON numbers lose precision above 2^53 in most
 * readers, so they go out as decimal strings (as Kubernetes does with
 * resourceVersion). */
static json_t *u64_json(uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return json_string(buf);
}

static json_t *status_json(const Sigil__V1__StatusResponse *sr)
{
	json_t *classes = json_array();
	time_t now = time(NULL);

	for (size_t i = 0; classes && i < sr->n_classes; i++) {
		const Sigil__V1__ClassStatus *c = sr->classes[i];
		json_t *gens = json_array();

		for (size_t j = 0; gens && j < c->n_generations; j++) {
			const Sigil__V1__CaGeneration *g = c->generations[j];
			char nb[32], na[32];

			fmt_time_or_dash(g->not_before, nb, sizeof(nb));
			fmt_time_or_dash(g->not_after, na, sizeof(na));
			json_array_append_new(
			    gens, json_pack("{s:I, s:s, s:s, s:s, s:s, s:b, s:s}", "generation",
					    (json_int_t)g->generation, "subject", g->subject, "keyType",
					    g->key_type, "notBefore", nb, "notAfter", na, "retired",
					    g->retired, "state", gen_state(g, now)));
		}
		json_array_append_new(classes,
				      json_pack("{s:s, s:s, s:o, s:o*}", "name", c->name, "backend",
						c->backend, "bundleVersion", u64_json(c->bundle_version),
						"generations", gens));
	}
	return classes;
}

static int print_json(json_t *doc)
{
	int r;

	if (!doc) {
		fprintf(stderr, "sigilctl ca: out of memory\n");
		return -1;
	}
	r = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(doc);
	return r;
}

/* Status of one class (class_name non-empty) or of every class the token
 * may see.  *ret is unpacked (free with ..._free_unpacked). */
static int remote_status(const char *sub, const remote_args *ra, const char *class_name,
			 Sigil__V1__StatusResponse **ret)
{
	Sigil__V1__StatusRequest req = SIGIL__V1__STATUS_REQUEST__INIT;
	Sigil__V1__StatusResponse *sr;
	rpc_status st = {0};
	sigil_err err = {0};
	uint8_t *resp = NULL;
	size_t rl = 0;

	req.class_name = (char *)(class_name ? class_name : "");
	if (remote_call(ra, "/sigil.v1.Issuer/Status", &req.base, &st, &resp, &rl, &err) < 0) {
		fprintf(stderr, "sigilctl ca %s: %s\n", sub, err.msg);
		return -1;
	}
	if (st.code != RPC_OK) {
		remote_report(sub, ra, &st);
		return -1;
	}
	sr = sigil__v1__status_response__unpack(NULL, rl, resp);
	sigil_freezero(resp, rl);
	if (!sr) {
		fprintf(stderr, "sigilctl ca %s: sigil-ca sent a malformed Status answer\n", sub);
		return -1;
	}
	if (class_name && *class_name && sr->n_classes == 0) {
		fprintf(stderr,
			"sigilctl ca %s: sigil-ca has no class %s (or this token may not use it)\n",
			sub, class_name);
		sigil__v1__status_response__free_unpacked(sr, NULL);
		return -1;
	}
	*ret = sr;
	return 0;
}

static int remote_ca(const char *sub, const remote_args *ra, const char *class_name)
{
	Sigil__V1__StatusResponse *sr = NULL;
	uint64_t version = 0;
	int rc;

	if (!strcmp(sub, "rotate")) {
		Sigil__V1__RotateRequest req = SIGIL__V1__ROTATE_REQUEST__INIT;
		Sigil__V1__RotateResponse *rr;
		rpc_status st = {0};
		sigil_err err = {0};
		uint8_t *resp = NULL;
		size_t rl = 0;

		req.class_name = (char *)class_name;
		if (remote_call(ra, "/sigil.v1.Issuer/Rotate", &req.base, &st, &resp, &rl, &err) <
		    0) {
			fprintf(stderr, "sigilctl ca rotate: %s\n", err.msg);
			return SIGILCTL_EXIT_FAIL;
		}
		if (st.code != RPC_OK) {
			remote_report(sub, ra, &st);
			return SIGILCTL_EXIT_FAIL;
		}
		rr = sigil__v1__rotate_response__unpack(NULL, rl, resp);
		sigil_freezero(resp, rl);
		if (!rr) {
			fprintf(stderr, "sigilctl ca rotate: sigil-ca sent a malformed answer\n");
			return SIGILCTL_EXIT_FAIL;
		}
		version = rr->bundle_version;
		sigil__v1__rotate_response__free_unpacked(rr, NULL);
		if (!ra->json)
			printf("rotated class %s: bundle version %llu\n", class_name,
			       (unsigned long long)version);
	}
	if (remote_status(sub, ra, class_name, &sr) < 0)
		return SIGILCTL_EXIT_FAIL;
	if (ra->json) {
		json_t *doc = json_pack("{s:o}", "classes", status_json(sr));

		if (doc && !strcmp(sub, "rotate")) {
			json_object_set_new(doc, "rotated", json_string(class_name));
			json_object_set_new(doc, "bundleVersion", u64_json(version));
		}
		rc = print_json(doc) < 0 ? SIGILCTL_EXIT_FAIL : SIGILCTL_EXIT_OK;
	} else {
		print_status_text(sr);
		rc = SIGILCTL_EXIT_OK;
	}
	sigil__v1__status_response__free_unpacked(sr, NULL);
	return rc;
}

static void ca_usage(FILE *f)
{
	fprintf(f,
		"usage: sigilctl ca init|status|rotate --state-dir DIR [--class NAME]\n"
		"                [--ca-key-algorithm ALG] [--ca-lifetime DUR] [--ca-retirement DUR]\n"
		"       sigilctl ca status|rotate --ca-endpoint HOST:PORT --ca-bundle FILE\n"
		"                --token-file FILE [--class NAME] [--server-name NAME] [--json]\n"
		"\n"
		"With --state-dir: the CA set kept in a local state dir (sigil-csi's embedded CA).\n"
		"With --ca-endpoint: a running sigil-ca over TLS.  status shows every class the\n"
		"token may see (or --class), rotate forces a new CA generation of --class\n"
		"(default tls) and needs an admin token.\n");
}

int sigilctl_cmd_ca(int argc, char **argv)
{
	static const struct option opts[] = {
		CA_LONGOPTS,
		{"ca-endpoint", required_argument, 0, 'E'},
		{"ca-bundle", required_argument, 0, 'B'},
		{"token-file", required_argument, 0, 'T'},
		{"server-name", required_argument, 0, 'N'},
		{"json", no_argument, 0, 'J'},
		{"help", no_argument, 0, 'h'},
		{0},
	};
	ca_args a;
	remote_args ra = {0};
	bool class_given = false;
	const char *sub;
	ca_store *store = NULL;
	ca_set *set = NULL;
	int c, rc = SIGILCTL_EXIT_OK;

	ca_args_init(&a);
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		ca_usage(stdout);
		return SIGILCTL_EXIT_OK;
	}
	if (argc < 2 || argv[1][0] == '-') {
		ca_usage(stderr);
		return SIGILCTL_EXIT_USAGE;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': ca_usage(stdout); return SIGILCTL_EXIT_OK;
		case 'E': ra.endpoint = optarg; continue;
		case 'B': ra.bundle_file = optarg; continue;
		case 'T': ra.token_file = optarg; continue;
		case 'N': ra.server_name = optarg; continue;
		case 'J': ra.json = true; continue;
		case 'c': class_given = true; break;
		default: break;
		}
		if (parse_ca_opt(c, optarg, &a) != 0) {
			ca_usage(stderr);
			return SIGILCTL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sigilctl ca: unexpected argument '%s'\n", argv[optind]);
		return SIGILCTL_EXIT_USAGE;
	}
	if (strcmp(sub, "init") && strcmp(sub, "status") && strcmp(sub, "rotate")) {
		fprintf(stderr, "sigilctl ca: unknown sub-command '%s'\n", sub);
		return SIGILCTL_EXIT_USAGE;
	}
	if (ra.endpoint) {
		if (a.state_dir) {
			fprintf(stderr, "sigilctl ca: give either --state-dir or --ca-endpoint\n");
			return SIGILCTL_EXIT_USAGE;
		}
		if (!strcmp(sub, "init")) {
			fprintf(stderr, "sigilctl ca init: sigil-ca makes its CAs itself; init is for "
					"a local --state-dir\n");
			return SIGILCTL_EXIT_USAGE;
		}
		if (!ra.bundle_file || !ra.token_file) {
			fprintf(stderr, "sigilctl ca %s: --ca-endpoint needs --ca-bundle and "
					"--token-file\n",
				sub);
			return SIGILCTL_EXIT_USAGE;
		}
		/* status without --class: every class; rotate: the default one. */
		return remote_ca(sub, &ra,
				 class_given || !strcmp(sub, "rotate") ? a.class_name : NULL);
	}
	if (ra.bundle_file || ra.token_file || ra.server_name || ra.json) {
		fprintf(stderr, "sigilctl ca: --ca-bundle, --token-file, --server-name and --json "
				"go with --ca-endpoint\n");
		return SIGILCTL_EXIT_USAGE;
	}
	if (!a.state_dir) {
		fprintf(stderr, "sigilctl ca: --state-dir or --ca-endpoint is required\n");
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
