/* ca/external.c against real peers on loopback: a real `cfssl serve`
 * (golang-cfssl; plain HTTP and HTTPS) signing with a throwaway
 * root -> intermediate CA made here with the openssl CLI, and the Vault PKI
 * fake (tests/fakes/vault_fake.py over HTTPS) whose role names choose how
 * it misbehaves.  Every child process dies with this test (PDEATHSIG) and
 * is stopped in the group teardown. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "ca/external.h"
#include "ca/issue.h"
#include "ca/names.h"
#include "tests/helpers/ca_fixtures.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/parse.h"

#define CFSSL "/usr/bin/cfssl"
#define OPENSSL "/usr/bin/openssl"
#define PYTHON "/usr/bin/python3"
#define READY_TIMEOUT_MS 20000
#define GOOD_HMAC_HEX "00112233445566778899aabbccddeeff"
#define WRONG_HMAC_HEX "ffeeddccbbaa99887766554433221100"
#define GOOD_TOKEN "s.sigil-test-token"
#define DAY 86400LL

typedef struct world {
	char *dir;
	pid_t cfssl_pid, cfssl_tls_pid, vault_pid;
	char cfssl_url[64], cfssl_tls_url[64], vault_url[64], dead_url[64];
	X509 *root, *inter;
	EVP_PKEY *key;      /* the node's key */
	uint8_t *csr;
	size_t csr_len;
} world;

static char *path_in(const world *w, const char *name)
{
	char *p = sigil_path_join(w->dir, name);

	assert_non_null(p);
	return p;
}

/* Runs argv to completion with output in dir/cmd.log; fails the test on a
 * non-zero exit. */
static void run(const world *w, const char *const argv[])
{
	_cleanup_free_ char *log = path_in(w, "cmd.log");
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("%s %s failed (status %d), see %s", argv[0], argv[1], status, log);
}

/* Starts a server process that dies with us. */
static pid_t spawn(const world *w, const char *logname, const char *const argv[])
{
	_cleanup_free_ char *log = path_in(w, logname);
	pid_t parent = getpid();
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static void stop(pid_t *pid)
{
	int status;

	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (int i = 0; i < 50; i++) {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = 0;
			return;
		}
		usleep(100 * 1000);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, &status, 0);
	*pid = 0;
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port;

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void wait_port(pid_t pid, int port, const char *what)
{
	int status;

	for (int waited = 0; waited < READY_TIMEOUT_MS; waited += 50) {
		if (port_open(port))
			return;
		if (waitpid(pid, &status, WNOHANG) == pid)
			fail_msg("%s exited before listening (status %d)", what, status);
		usleep(50 * 1000);
	}
	fail_msg("%s did not listen on port %d", what, port);
}

static int wait_port_file(const world *w, pid_t pid, const char *name)
{
	_cleanup_free_ char *p = path_in(w, name);
	int status;

	for (int waited = 0; waited < READY_TIMEOUT_MS; waited += 50) {
		uint8_t *data = NULL;
		size_t len;
		sigil_err err = { 0 };
		if (sigil_fs_read_file(p, 64, &data, &len, &err) == 0) {
			int64_t port = 0;
			while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
				data[--len] = '\0';
			int r = sigil_parse_int64((char *)data, 1, 65535, &port);
			free(data);
			if (r == 0)
				return (int)port;
		}
		if (waitpid(pid, &status, WNOHANG) == pid)
			fail_msg("vault fake exited before listening (status %d)", status);
		usleep(50 * 1000);
	}
	fail_msg("vault fake wrote no port file");
	return -1;
}

static const char *source_dir(char *buf, size_t len)
{
	const char *env = getenv("SIGIL_SOURCE_DIR");
	const char *me = __FILE__;
	const char *tail = strstr(me, "/tests/unit/");

	if (env && *env)
		return env;
	assert_non_null(tail);
	snprintf(buf, len, "%.*s", (int)(tail - me), me);
	return buf;
}

static X509 *read_cert(const world *w, const char *name)
{
	_cleanup_free_ char *p = path_in(w, name);
	FILE *f = fopen(p, "r");
	X509 *x;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static void write_text(const world *w, const char *name, const char *text)
{
	free(fx_write(w->dir, name, text, strlen(text)));
}

/* A CA made with the openssl CLI: name.key, name.crt; signed by parent
 * (NULL: self-signed).  ext is the extension section text. */
static void make_cert(const world *w, const char *name, const char *cn, const char *parent,
		      const char *ext)
{
	char key[64], csr[64], crt[64], extf[64], subj[128], pcrt[64], pkey[64];
	_cleanup_free_ char *pk = NULL, *pc = NULL, *pe = NULL, *pr = NULL, *ppc = NULL,
			    *ppk = NULL;

	snprintf(key, sizeof(key), "%s.key", name);
	snprintf(csr, sizeof(csr), "%s.csr", name);
	snprintf(crt, sizeof(crt), "%s.crt", name);
	snprintf(extf, sizeof(extf), "%s.ext", name);
	snprintf(subj, sizeof(subj), "/CN=%s", cn);
	write_text(w, extf, ext);
	pk = path_in(w, key);
	pc = path_in(w, crt);
	pe = path_in(w, extf);
	pr = path_in(w, csr);
	const char *genreq[] = { OPENSSL, "req", "-new", "-newkey", "ec", "-pkeyopt",
				 "ec_paramgen_curve:P-256", "-nodes", "-keyout", pk, "-out", pr,
				 "-subj", subj, NULL };
	run(w, genreq);
	if (!parent) {
		const char *self[] = { OPENSSL, "x509", "-req", "-in", pr, "-key", pk, "-days", "3",
				       "-set_serial", "1", "-extfile", pe, "-extensions", "v3",
				       "-out", pc, NULL };
		run(w, self);
		return;
	}
	snprintf(pcrt, sizeof(pcrt), "%s.crt", parent);
	snprintf(pkey, sizeof(pkey), "%s.key", parent);
	ppc = path_in(w, pcrt);
	ppk = path_in(w, pkey);
	const char *sign[] = { OPENSSL, "x509", "-req", "-in", pr, "-CA", ppc, "-CAkey", ppk,
			       "-days", "2", "-set_serial", "2", "-extfile", pe, "-extensions",
			       "v3", "-out", pc, NULL };
	run(w, sign);
}

static const char cfssl_config_json[] =
	"{\"signing\":{"
	"\"default\":{\"usages\":[\"digital signature\",\"key encipherment\",\"server auth\","
	"\"client auth\"],\"expiry\":\"24h\"},"
	"\"profiles\":{\"authed\":{\"usages\":[\"digital signature\",\"server auth\","
	"\"client auth\"],\"expiry\":\"12h\",\"auth_key\":\"k1\"}}},"
	"\"auth_keys\":{\"k1\":{\"type\":\"standard\",\"key\":\"" GOOD_HMAC_HEX "\"}}}";

static pid_t start_cfssl(world *w, const char *log, bool tls, int *ret_port)
{
	char port[16];
	_cleanup_free_ char *ca = path_in(w, "int.crt"), *cakey = path_in(w, "int.key"),
			    *cfg = path_in(w, "cfssl.json"), *tc = path_in(w, "tls.crt"),
			    *tk = path_in(w, "tls.key");
	int p = free_port();
	pid_t pid;

	snprintf(port, sizeof(port), "%d", p);
	if (tls) {
		const char *argv[] = { CFSSL,	   "serve", "-address", "127.0.0.1", "-port", port,
				       "-ca",	   ca,	    "-ca-key",	cakey,	     "-config", cfg,
				       "-tls-cert", tc,	    "-tls-key", tk,	     NULL };
		pid = spawn(w, log, argv);
	} else {
		const char *argv[] = { CFSSL, "serve",  "-address", "127.0.0.1", "-port",   port,
				       "-ca", ca,	"-ca-key",  cakey,	 "-config", cfg,
				       NULL };
		pid = spawn(w, log, argv);
	}
	wait_port(pid, p, "cfssl serve");
	*ret_port = p;
	return pid;
}

static int setup_world(void **state)
{
	world *w = calloc(1, sizeof(*w));
	char src[512], fake[600];
	int port;

	assert_non_null(w);
	*state = w;
	if (access(CFSSL, X_OK) != 0)
		fail_msg("%s is missing: install the Debian package golang-cfssl", CFSSL);
	if (access(OPENSSL, X_OK) != 0 || access(PYTHON, X_OK) != 0)
		fail_msg("%s and %s are needed", OPENSSL, PYTHON);
	w->dir = fx_tmpdir();
	make_cert(w, "root", "Sigil Test Root", NULL,
		  "[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
		  "subjectKeyIdentifier=hash\n");
	make_cert(w, "int", "Sigil Test Intermediate", "root",
		  "[v3]\nbasicConstraints=critical,CA:TRUE,pathlen:0\n"
		  "keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n"
		  "authorityKeyIdentifier=keyid\n");
	make_cert(w, "tls", "localhost", "root",
		  "[v3]\nbasicConstraints=critical,CA:FALSE\n"
		  "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
		  "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
	make_cert(w, "other", "Some Other Root", NULL,
		  "[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n");
	w->root = read_cert(w, "root.crt");
	w->inter = read_cert(w, "int.crt");
	write_text(w, "cfssl.json", cfssl_config_json);
	write_text(w, "hmac.good", GOOD_HMAC_HEX "\n");
	write_text(w, "hmac.wrong", WRONG_HMAC_HEX "\n");
	write_text(w, "hmac.nothex", "not a hex key at all\n");
	write_text(w, "hmac.odd", "abc\n");
	write_text(w, "empty", "\n\n");
	write_text(w, "token.good", GOOD_TOKEN "\n");
	write_text(w, "token.wrong", "s.not-the-token\n");
	write_text(w, "token.spaced", "s.two words\n");

	w->key = fx_make_key(SIGIL_KEY_ECDSA_P256);
	w->csr = fx_make_csr(w->key, "node-csr", &w->csr_len);

	w->cfssl_pid = start_cfssl(w, "cfssl.log", false, &port);
	snprintf(w->cfssl_url, sizeof(w->cfssl_url), "http://127.0.0.1:%d", port);
	w->cfssl_tls_pid = start_cfssl(w, "cfssl-tls.log", true, &port);
	snprintf(w->cfssl_tls_url, sizeof(w->cfssl_tls_url), "https://localhost:%d/", port);
	snprintf(w->dead_url, sizeof(w->dead_url), "http://127.0.0.1:%d", free_port());

	snprintf(fake, sizeof(fake), "%s/tests/fakes/vault_fake.py",
		 source_dir(src, sizeof(src)));
	{
		_cleanup_free_ char *ca = path_in(w, "int.crt"), *cakey = path_in(w, "int.key"),
				    *parent = path_in(w, "root.crt"),
				    *tok = path_in(w, "token.good"), *pf = path_in(w, "vault.port"),
				    *tc = path_in(w, "tls.crt"), *tk = path_in(w, "tls.key");
		const char *argv[] = { PYTHON,	      fake,	    "--ca-cert",   ca,
				       "--ca-key",    cakey,	    "--parent",	   parent,
				       "--token-file", tok,	    "--port-file", pf,
				       "--tls-cert",  tc,	    "--tls-key",   tk,
				       "--slow-secs", "3",	    NULL };
		w->vault_pid = spawn(w, "vault.log", argv);
		port = wait_port_file(w, w->vault_pid, "vault.port");
		wait_port(w->vault_pid, port, "vault fake");
	}
	snprintf(w->vault_url, sizeof(w->vault_url), "https://localhost:%d", port);
	return 0;
}

static int teardown_world(void **state)
{
	world *w = *state;

	if (!w)
		return 0;
	stop(&w->cfssl_pid);
	stop(&w->cfssl_tls_pid);
	stop(&w->vault_pid);
	X509_free(w->root);
	X509_free(w->inter);
	EVP_PKEY_free(w->key);
	free(w->csr);
	fx_rmdir(w->dir);
	free(w);
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static void cfssl_config(const world *w, ca_external_config *c, const char *url)
{
	memset(c, 0, sizeof(*c));
	c->kind = CA_EXTERNAL_CFSSL;
	snprintf(c->url, sizeof(c->url), "%s", url ? url : w->cfssl_url);
}

static void vault_config(const world *w, ca_external_config *c, const char *role)
{
	_cleanup_free_ char *ca = path_in(w, "root.crt"), *tok = path_in(w, "token.good");

	memset(c, 0, sizeof(*c));
	c->kind = CA_EXTERNAL_VAULT;
	snprintf(c->url, sizeof(c->url), "%s", w->vault_url);
	snprintf(c->ca_file, sizeof(c->ca_file), "%s", ca);
	snprintf(c->token_file, sizeof(c->token_file), "%s", tok);
	snprintf(c->role, sizeof(c->role), "%s", role);
}

static void set_file(const world *w, char *dst, size_t len, const char *name)
{
	_cleanup_free_ char *p = path_in(w, name);

	snprintf(dst, len, "%s", p);
}

static const char *const names_dns[] = { "app.example.test", "app.ns.svc.cluster.local" };
static const char *const names_ip[] = { "10.1.2.3" };

static ca_external_request std_request(const world *w)
{
	ca_external_request r = {
		.csr_der = w->csr,
		.csr_len = w->csr_len,
		.common_name = "app.example.test",
		.dns = names_dns,
		.n_dns = SIGIL_ARRAY_SIZE(names_dns),
		.ips = names_ip,
		.n_ips = SIGIL_ARRAY_SIZE(names_ip),
		.lifetime_secs = 2 * DAY,
	};
	return r;
}

static int verify_chain(const world *w, X509 *leaf, STACK_OF(X509) *chain)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok;

	assert_non_null(st);
	assert_non_null(ctx);
	assert_int_equal(X509_STORE_add_cert(st, w->root), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, chain), 1);
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
	ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	return ok;
}

/* The answer is for our key, carries our names, and chains to the root
 * through exactly the intermediate. */
static void check_good(const world *w, X509 *leaf, STACK_OF(X509) *chain)
{
	assert_non_null(leaf);
	assert_non_null(chain);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), w->key), 1);
	assert_int_equal(sk_X509_num(chain), 1);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), w->inter), 0);
	assert_int_equal(X509_verify(leaf, X509_get0_pubkey(w->inter)), 1);
	assert_int_equal(verify_chain(w, leaf, chain), 1);
	assert_int_equal(X509_check_host(leaf, "app.example.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(leaf, "app.ns.svc.cluster.local", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(leaf, "10.1.2.3", 0), 1);
	assert_int_equal(X509_check_ca(leaf), 0);
}

static void free_result(X509 **leaf, STACK_OF(X509) **chain)
{
	X509_free(*leaf);
	sk_X509_pop_free(*chain, X509_free);
	*leaf = NULL;
	*chain = NULL;
}

/* Expects failure with code and a message containing want (and never the
 * secrets). */
static void expect_fail(const ca_external_config *c, const ca_external_request *req, int code,
			const char *want)
{
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	sigil_err err = { 0 };
	int r = ca_external_sign(c, req, &leaf, &chain, &err);

	print_message("  %s: %s\n", sigil_errcode_name(r), err.msg);
	if (r != code || !strstr(err.msg, want))
		fail_msg("got %d (%s) \"%s\", want %d (%s) \"%s\"", r, sigil_errcode_name(r),
			 err.msg, code, sigil_errcode_name(code), want);
	assert_int_equal(err.code, code);
	assert_null(leaf);
	assert_null(chain);
	assert_null(strstr(err.msg, GOOD_HMAC_HEX));
	assert_null(strstr(err.msg, WRONG_HMAC_HEX));
	assert_null(strstr(err.msg, GOOD_TOKEN));
}

static double days_left(X509 *x)
{
	int d = 0, s = 0;

	assert_int_equal(ASN1_TIME_diff(&d, &s, NULL, X509_get0_notAfter(x)), 1);
	return d + s / 86400.0;
}

/* ---- cfssl ------------------------------------------------------------------- */

static void test_cfssl_sign(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	sigil_err err = { 0 };
	char cn[128];

	cfssl_config(w, &c, NULL);
	assert_int_equal(ca_external_sign(&c, &req, &leaf, &chain, &err), 0);
	check_good(w, leaf, chain);
	/* The request's CN wins over the CSR's ("node-csr"). */
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn,
					      sizeof(cn)) > 0);
	assert_string_equal(cn, "app.example.test");
	/* cfssl has no lifetime field: the default profile's 24h decides. */
	assert_true(days_left(leaf) > 0.9 && days_left(leaf) < 1.01);
	free_result(&leaf, &chain);
}

static void test_cfssl_sign_https(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	sigil_err err = { 0 };

	cfssl_config(w, &c, w->cfssl_tls_url);
	set_file(w, c.ca_file, sizeof(c.ca_file), "root.crt");
	if (ca_external_sign(&c, &req, &leaf, &chain, &err) != 0)
		fail_msg("%s", err.msg);
	check_good(w, leaf, chain);
	free_result(&leaf, &chain);

	/* The same server is refused when its certificate is not trusted. */
	set_file(w, c.ca_file, sizeof(c.ca_file), "other.crt");
	expect_fail(&c, &req, SIGIL_E_UNAVAIL, "does not verify");
	/* No CA file: the system store does not know our throwaway root. */
	c.ca_file[0] = '\0';
	expect_fail(&c, &req, SIGIL_E_UNAVAIL, "does not verify");
}

static void test_cfssl_authsign(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	sigil_err err = { 0 };

	cfssl_config(w, &c, NULL);
	snprintf(c.profile, sizeof(c.profile), "authed");
	set_file(w, c.auth_key_file, sizeof(c.auth_key_file), "hmac.good");
	if (ca_external_sign(&c, &req, &leaf, &chain, &err) != 0)
		fail_msg("%s", err.msg);
	check_good(w, leaf, chain);
	/* The "authed" profile's 12h expiry proves the profile was used. */
	assert_true(days_left(leaf) > 0.4 && days_left(leaf) < 0.51);
	free_result(&leaf, &chain);
}

static void test_cfssl_authsign_refused(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);

	cfssl_config(w, &c, NULL);
	snprintf(c.profile, sizeof(c.profile), "authed");
	set_file(w, c.auth_key_file, sizeof(c.auth_key_file), "hmac.wrong");
	expect_fail(&c, &req, SIGIL_E_PERM, "invalid token");
	/* A profile that requires authentication, asked without a key. */
	c.auth_key_file[0] = '\0';
	expect_fail(&c, &req, SIGIL_E_PERM, "authentication required");
}

static void test_cfssl_key_files(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);

	cfssl_config(w, &c, NULL);
	snprintf(c.profile, sizeof(c.profile), "authed");
	set_file(w, c.auth_key_file, sizeof(c.auth_key_file), "hmac.missing");
	expect_fail(&c, &req, SIGIL_E_NOTFOUND, "cfssl auth key file");
	set_file(w, c.auth_key_file, sizeof(c.auth_key_file), "hmac.nothex");
	expect_fail(&c, &req, SIGIL_E_INVALID, "hex");
	set_file(w, c.auth_key_file, sizeof(c.auth_key_file), "hmac.odd");
	expect_fail(&c, &req, SIGIL_E_INVALID, "even number of hex digits");
	set_file(w, c.auth_key_file, sizeof(c.auth_key_file), "empty");
	expect_fail(&c, &req, SIGIL_E_INVALID, "is empty");
	/* Oversized: beyond CA_EXTERNAL_MAX_SECRET_FILE. */
	{
		size_t n = CA_EXTERNAL_MAX_SECRET_FILE + 2;
		char *big = malloc(n);
		assert_non_null(big);
		memset(big, 'a', n);
		free(fx_write(w->dir, "hmac.big", big, n));
		free(big);
	}
	set_file(w, c.auth_key_file, sizeof(c.auth_key_file), "hmac.big");
	expect_fail(&c, &req, SIGIL_E_LIMIT, "too large");
	/* A directory is not a key file. */
	snprintf(c.auth_key_file, sizeof(c.auth_key_file), "%s", w->dir);
	expect_fail(&c, &req, SIGIL_E_INVALID, "not a regular file");
}

static void test_cfssl_down(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);

	cfssl_config(w, &c, w->dead_url);
	expect_fail(&c, &req, SIGIL_E_UNAVAIL, w->dead_url);
	expect_fail(&c, &req, SIGIL_E_UNAVAIL, "cannot reach");
	/* A server that is not cfssl: the Vault fake refuses the missing
	 * token with 403, and that refusal is quoted. */
	snprintf(c.url, sizeof(c.url), "%s", w->vault_url);
	set_file(w, c.ca_file, sizeof(c.ca_file), "root.crt");
	expect_fail(&c, &req, SIGIL_E_PERM, "permission denied");
}

static void test_cfssl_stopped_mid_test(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	sigil_err err = { 0 };
	int port;

	/* Start a private cfssl, use it, stop it: the same URL is now down. */
	pid_t pid = start_cfssl(w, "cfssl-private.log", false, &port);
	char url[64];
	snprintf(url, sizeof(url), "http://localhost:%d", port);
	cfssl_config(w, &c, url);
	if (ca_external_sign(&c, &req, &leaf, &chain, &err) != 0) {
		stop(&pid);
		fail_msg("%s", err.msg);
	}
	free_result(&leaf, &chain);
	stop(&pid);
	expect_fail(&c, &req, SIGIL_E_UNAVAIL, url);
}

/* ---- Vault ---------------------------------------------------------------------- */

static void test_vault_sign(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	sigil_err err = { 0 };

	vault_config(w, &c, "ok");
	if (ca_external_sign(&c, &req, &leaf, &chain, &err) != 0)
		fail_msg("%s", err.msg);
	check_good(w, leaf, chain);
	/* ttl "172800s" reached the fake (it rounds to whole days). */
	assert_true(days_left(leaf) > 1.9 && days_left(leaf) < 2.01);
	free_result(&leaf, &chain);

	/* An old Vault that ignores remove_roots_from_chain: the root is
	 * still not handed out. */
	vault_config(w, &c, "keeproot");
	if (ca_external_sign(&c, &req, &leaf, &chain, &err) != 0)
		fail_msg("%s", err.msg);
	check_good(w, leaf, chain);
	free_result(&leaf, &chain);

	/* The chain may travel in "certificate" after the leaf. */
	vault_config(w, &c, "bundle");
	if (ca_external_sign(&c, &req, &leaf, &chain, &err) != 0)
		fail_msg("%s", err.msg);
	check_good(w, leaf, chain);
	free_result(&leaf, &chain);

	/* Explicit default mount, a base URL with a trailing slash, and no
	 * names or lifetime at all. */
	vault_config(w, &c, "ok");
	snprintf(c.mount, sizeof(c.mount), "pki");
	snprintf(c.url, sizeof(c.url), "%s/", w->vault_url);
	req.common_name = NULL;
	req.n_dns = req.n_ips = 0;
	req.lifetime_secs = 0;
	if (ca_external_sign(&c, &req, &leaf, &chain, &err) != 0)
		fail_msg("%s", err.msg);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), w->key), 1);
	assert_int_equal(verify_chain(w, leaf, chain), 1);
	free_result(&leaf, &chain);
}

static void test_vault_refused(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);

	vault_config(w, &c, "ok");
	set_file(w, c.token_file, sizeof(c.token_file), "token.wrong");
	expect_fail(&c, &req, SIGIL_E_PERM, "permission denied");
	vault_config(w, &c, "no-such-role");
	expect_fail(&c, &req, SIGIL_E_INVALID, "unknown role: no-such-role");
	vault_config(w, &c, "ok");
	snprintf(c.mount, sizeof(c.mount), "pki-other");
	expect_fail(&c, &req, SIGIL_E_INVALID, "no handler for route");
	vault_config(w, &c, "sealed");
	expect_fail(&c, &req, SIGIL_E_UNAVAIL, "Vault is sealed");
	vault_config(w, &c, "html502");
	expect_fail(&c, &req, SIGIL_E_UNAVAIL, "HTTP 502): \"<html><body>502 Bad Gateway");
	vault_config(w, &c, "slow");
	c.timeout_ms = 600;
	expect_fail(&c, &req, SIGIL_E_UNAVAIL, "timed out");
}

static void test_vault_token_files(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);

	vault_config(w, &c, "ok");
	set_file(w, c.token_file, sizeof(c.token_file), "token.missing");
	expect_fail(&c, &req, SIGIL_E_NOTFOUND, "Vault token file");
	set_file(w, c.token_file, sizeof(c.token_file), "token.spaced");
	expect_fail(&c, &req, SIGIL_E_INVALID, "white space");
	set_file(w, c.token_file, sizeof(c.token_file), "empty");
	expect_fail(&c, &req, SIGIL_E_INVALID, "is empty");
	c.token_file[0] = '\0';
	expect_fail(&c, &req, SIGIL_E_INVALID, "no Vault token file");
	free(fx_write(w->dir, "token.nul", "s.ab\0cd\n", 8));
	set_file(w, c.token_file, sizeof(c.token_file), "token.nul");
	expect_fail(&c, &req, SIGIL_E_INVALID, "NUL");
}

/* Answers that must not be believed. */
static void test_vault_bad_answers(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);
	static const struct {
		const char *role;
		int code;
		const char *msg;
	} cases[] = {
		{ "garbage", SIGIL_E_INVALID, "not a JSON object" },
		{ "truncjson", SIGIL_E_INVALID, "not a JSON object" },
		{ "nodata", SIGIL_E_INVALID, "no \"data\" object" },
		{ "textcert", SIGIL_E_INVALID, "\"certificate\" in the response" },
		{ "truncpem", SIGIL_E_INVALID, "truncated PEM" },
		{ "badpem", SIGIL_E_INVALID, "cannot be parsed" },
		{ "otherkey", SIGIL_E_INVALID, "different public key" },
		{ "badchain", SIGIL_E_INVALID, "does not link" },
		{ "cacert", SIGIL_E_INVALID, "CA certificate" },
		{ "expired", SIGIL_E_INVALID, "expired" },
		{ "huge", SIGIL_E_LIMIT, "exceeds 1048576 bytes" },
		{ "hugestream", SIGIL_E_LIMIT, "exceeds 1048576 bytes" },
	};

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		print_message("role %s\n", cases[i].role);
		vault_config(w, &c, cases[i].role);
		expect_fail(&c, &req, cases[i].code, cases[i].msg);
	}
}

/* ---- configuration and request checks (no traffic) ---------------------------- */

static void test_config_checks(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req = std_request(w);
	static const struct {
		const char *url;
		const char *msg;
	} urls[] = {
		{ "", "URL is empty" },
		{ "http://192.0.2.1:8200", "must use https://" },
		{ "http://ca.example.com", "must use https://" },
		{ "ftp://localhost/", "must use https://" },
		{ "localhost:8200", "not an absolute URL" },
		{ "https://user:secretpw@localhost:1/", "user info" },
		{ "https://:secretpw@localhost:1/", "password" },
		{ "https://localhost:1/?x=1", "query" },
		{ "https://localhost:1/#frag", "fragment" },
		{ "https://local host/", "space" },
		{ "not a url", "space" },
	};
	static const struct {
		const char *mount, *role, *msg;
	} paths[] = {
		{ "pki", "", "role is empty" },
		{ "pki/../sys", "r", "\"..\" component" },
		{ "pki", "./r", "component" },
		{ "/pki", "r", "empty" },
		{ "pki", "r/", "empty" },
		{ "pki//x", "r", "empty" },
		{ "pki", "r?x", "may only contain" },
		{ "pki", "r%2f", "may only contain" },
		{ "pki\n", "r", "may only contain" },
	};

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(urls); i++) {
		cfssl_config(w, &c, urls[i].url);
		expect_fail(&c, &req, SIGIL_E_INVALID, urls[i].msg);
	}
	/* A password in the URL is not echoed. */
	{
		X509 *leaf = NULL;
		STACK_OF(X509) *chain = NULL;
		sigil_err err = { 0 };
		cfssl_config(w, &c, "https://user:secretpw@localhost:1/");
		assert_int_equal(ca_external_sign(&c, &req, &leaf, &chain, &err), SIGIL_E_INVALID);
		assert_null(strstr(err.msg, "secretpw"));
	}
	/* Oversized (unterminated) URL. */
	cfssl_config(w, &c, NULL);
	memset(c.url, 'a', sizeof(c.url));
	expect_fail(&c, &req, SIGIL_E_LIMIT, "exceeds");

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(paths); i++) {
		vault_config(w, &c, paths[i].role);
		snprintf(c.mount, sizeof(c.mount), "%s", paths[i].mount);
		expect_fail(&c, &req, SIGIL_E_INVALID, paths[i].msg);
	}
	vault_config(w, &c, "ok");
	memset(c.role, 'r', sizeof(c.role));
	expect_fail(&c, &req, SIGIL_E_LIMIT, "exceeds");

	vault_config(w, &c, "ok");
	c.timeout_ms = CA_EXTERNAL_MAX_TIMEOUT_MS + 1;
	expect_fail(&c, &req, SIGIL_E_LIMIT, "timeout");
	vault_config(w, &c, "ok");
	c.kind = (ca_external_kind)42;
	expect_fail(&c, &req, SIGIL_E_INVALID, "unknown external CA kind");
	cfssl_config(w, &c, NULL);
	snprintf(c.profile, sizeof(c.profile), "bad\tprofile");
	expect_fail(&c, &req, SIGIL_E_INVALID, "cfssl profile");
	{
		X509 *leaf = NULL;
		STACK_OF(X509) *chain = NULL;
		assert_int_equal(ca_external_sign(NULL, &req, &leaf, &chain, NULL), SIGIL_E_INVALID);
		cfssl_config(w, &c, NULL);
		assert_int_equal(ca_external_sign(&c, NULL, &leaf, &chain, NULL), SIGIL_E_INVALID);
	}
}

static void test_request_checks(void **state)
{
	world *w = *state;
	ca_external_config c;
	ca_external_request req;
	static const char *const bad_dns[] = { "a.example,b.example" };
	static const char *const bad_ip[] = { "10.0.0.256" };
	static const char *many[CA_MAX_SANS + 1];
	uint8_t garbage[64];

	cfssl_config(w, &c, w->dead_url);

	req = std_request(w);
	req.csr_len = w->csr_len - 7; /* truncated */
	expect_fail(&c, &req, SIGIL_E_INVALID, "CSR");
	req = std_request(w);
	memset(garbage, 0x5a, sizeof(garbage));
	req.csr_der = garbage;
	req.csr_len = sizeof(garbage);
	expect_fail(&c, &req, SIGIL_E_INVALID, "CSR");
	req = std_request(w);
	req.csr_len = CA_MAX_CSR_DER + 1; /* oversized */
	expect_fail(&c, &req, SIGIL_E_LIMIT, "CSR");
	req = std_request(w);
	req.csr_der = NULL;
	req.csr_len = 0;
	expect_fail(&c, &req, SIGIL_E_INVALID, "empty CSR");

	req = std_request(w);
	req.dns = bad_dns;
	req.n_dns = 1;
	expect_fail(&c, &req, SIGIL_E_INVALID, "a.example,b.example");
	req = std_request(w);
	req.ips = bad_ip;
	req.n_ips = 1;
	expect_fail(&c, &req, SIGIL_E_INVALID, "10.0.0.256");
	req = std_request(w);
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(many); i++)
		many[i] = "x.example";
	req.dns = many;
	req.n_dns = SIGIL_ARRAY_SIZE(many);
	expect_fail(&c, &req, SIGIL_E_LIMIT, "limit");
	req = std_request(w);
	req.common_name = "bad\ncn";
	expect_fail(&c, &req, SIGIL_E_INVALID, "control character");
	req = std_request(w);
	req.common_name = "a-common-name-that-is-much-longer-than-sixty-four-bytes-allowed-by-rfc5280";
	expect_fail(&c, &req, SIGIL_E_LIMIT, "common name");
	req = std_request(w);
	req.common_name = "caf\xe9"; /* Latin-1, not UTF-8 */
	expect_fail(&c, &req, SIGIL_E_INVALID, "not valid UTF-8");
	req = std_request(w);
	req.n_dns = 1;
	req.dns = NULL;
	expect_fail(&c, &req, SIGIL_E_INVALID, "without name lists");

	/* All of the above were refused before any traffic: the dead URL
	 * would have said "cannot reach".  A good request does reach it. */
	req = std_request(w);
	expect_fail(&c, &req, SIGIL_E_UNAVAIL, "cannot reach");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cfssl_sign),
		cmocka_unit_test(test_cfssl_sign_https),
		cmocka_unit_test(test_cfssl_authsign),
		cmocka_unit_test(test_cfssl_authsign_refused),
		cmocka_unit_test(test_cfssl_key_files),
		cmocka_unit_test(test_cfssl_down),
		cmocka_unit_test(test_cfssl_stopped_mid_test),
		cmocka_unit_test(test_vault_sign),
		cmocka_unit_test(test_vault_refused),
		cmocka_unit_test(test_vault_token_files),
		cmocka_unit_test(test_vault_bad_answers),
		cmocka_unit_test(test_config_checks),
		cmocka_unit_test(test_request_checks),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup_world, teardown_world);
}
