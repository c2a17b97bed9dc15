/* bench/ca: certificates issued per second in-process from CSRs, for an
 * ECDSA P-256 and an RSA-2048 CA, beside `openssl speed` sign and verify
 * figures for the same key types measured in the same run.
 *
 * One issuance = parse + verify a CSR, build and sign a leaf, DER-encode
 * it.  The openssl per-core limit for that work is one verify plus one
 * sign: 1 / (1/sign_per_s + 1/verify_per_s).  Not a test: prints figures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include "ca/authority.h"
#include "ca/issue.h"
#include "ca/key.h"
#include "util/clock.h"
#include "util/parse.h"

#define N_CSRS 64

typedef struct speed {
	double sign;
	double verify;
} speed;

/* Last two numbers on the first line containing needle. */
static int parse_speed(const char *out, const char *needle, speed *ret)
{
	const char *line = strstr(out, needle);
	const char *end;
	double v[8];
	int n = 0;

	if (!line)
		return -1;
	end = strchr(line, '\n');
	if (!end)
		end = line + strlen(line);
	for (const char *p = line; p < end && n < 8;) {
		char *q;
		double d = strtod(p, &q);
		if (q != p && (*q == ' ' || *q == '\n' || *q == '\0' || *q == '\t')) {
			v[n++] = d;
			p = q;
		} else {
			p++;
		}
	}
	if (n < 2)
		return -1;
	ret->sign = v[n - 2];
	ret->verify = v[n - 1];
	return 0;
}

static int run_openssl_speed(int secs, speed *ec, speed *rsa)
{
	char cmd[128];
	char *out = NULL;
	size_t cap = 0, len = 0;
	FILE *f;
	char buf[4096];
	size_t n;
	int r;

	snprintf(cmd, sizeof(cmd), "openssl speed -seconds %d ecdsap256 rsa2048 2>/dev/null", secs);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			char *no = realloc(out, cap);
			if (!no) {
				free(out);
				pclose(f);
				return -1;
			}
			out = no;
		}
		memcpy(out + len, buf, n);
		len += n;
		out[len] = '\0';
	}
	pclose(f);
	if (!out)
		return -1;
	r = parse_speed(out, "ecdsa (nistp256)", ec);
	if (r == 0)
		r = parse_speed(out, "rsa 2048 bits", rsa);
	free(out);
	return r;
}

static double bench_issue(sigil_keyalg alg, double secs, long *ret_count)
{
	sigil_err err = {0};
	ca_authority *ca = NULL;
	ca_create_opts co = {.alg = alg, .common_name = "bench CA", .now = time(NULL)};
	uint8_t *csrs[N_CSRS];
	size_t csr_lens[N_CSRS];
	const char *dns[] = {"web-0.web.default.svc.cluster.local", "web.default.svc.cluster.local"};
	const char *ips[] = {"10.244.1.7"};
	ca_leaf_request req = {
		.common_name = "web-0",
		.dns = dns, .n_dns = 2, .ips = ips, .n_ips = 1,
		.lifetime_secs = 86400, .ca_retirement_secs = 3600, .jitter_factor = 0.2,
		.now = time(NULL),
	};
	long count = 0;
	int64_t start, deadline;

	if (ca_authority_create(&co, &ca, &err) < 0) {
		fprintf(stderr, "bench_ca: %s\n", err.msg);
		exit(1);
	}
	for (int i = 0; i < N_CSRS; i++) {
		EVP_PKEY *k = NULL;
		if (ca_key_generate(alg, &k, &err) < 0 ||
		    ca_csr_create(k, "web-0", &csrs[i], &csr_lens[i], &err) < 0) {
			fprintf(stderr, "bench_ca: %s\n", err.msg);
			exit(1);
		}
		EVP_PKEY_free(k);
	}
	start = sigil_mono_ns();
	deadline = start + (int64_t)(secs * 1e9);
	while (sigil_mono_ns() < deadline) {
		for (int i = 0; i < 16; i++) {
			X509 *leaf = NULL;
			unsigned char *der = NULL;
			int dl;
			if (ca_issue_from_csr(ca, csrs[count % N_CSRS], csr_lens[count % N_CSRS], &req,
					      &leaf, &err) < 0) {
				fprintf(stderr, "bench_ca: %s\n", err.msg);
				exit(1);
			}
			dl = i2d_X509(leaf, &der);
			if (dl <= 0)
				exit(1);
			OPENSSL_free(der);
			X509_free(leaf);
			count++;
		}
	}
	double elapsed = (double)(sigil_mono_ns() - start) / 1e9;
	for (int i = 0; i < N_CSRS; i++)
		free(csrs[i]);
	ca_authority_free(ca);
	*ret_count = count;
	return (double)count / elapsed;
}

int main(int argc, char **argv)
{
	int64_t secs = 3;
	speed ec, rsa;
	long n_ec, n_rsa;
	double r_ec, r_rsa, lim_ec, lim_rsa;

	if (argc > 1 && sigil_parse_int64(argv[1], 1, 60, &secs) < 0) {
		fprintf(stderr, "usage: bench_ca [SECONDS per measurement, 1..60]\n");
		return 2;
	}
	printf("bench_ca: %lld s per measurement, one thread\n", (long long)secs);
	r_ec = bench_issue(SIGIL_KEY_ECDSA_P256, (double)secs, &n_ec);
	r_rsa = bench_issue(SIGIL_KEY_RSA2048, (double)secs, &n_rsa);
	if (run_openssl_speed((int)secs, &ec, &rsa) < 0) {
		fprintf(stderr, "bench_ca: could not run or parse `openssl speed`\n");
		return 1;
	}
	lim_ec = 1.0 / (1.0 / ec.sign + 1.0 / ec.verify);
	lim_rsa = 1.0 / (1.0 / rsa.sign + 1.0 / rsa.verify);
	printf("\n%-12s %12s %12s %12s %14s %12s %8s\n", "CA key", "sigil cert/s", "openssl sign/s",
	       "verify/s", "limit(s+v)/s", "issued", "ratio");
	printf("%-12s %12.0f %12.0f %12.0f %14.0f %12ld %7.0f%%\n", "ecdsa-p256", r_ec, ec.sign,
	       ec.verify, lim_ec, n_ec, 100.0 * r_ec / lim_ec);
	printf("%-12s %12.0f %12.0f %12.0f %14.0f %12ld %7.0f%%\n", "rsa-2048", r_rsa, rsa.sign,
	       rsa.verify, lim_rsa, n_rsa, 100.0 * r_rsa / lim_rsa);
	printf("\ntarget: >= 70%% of the openssl per-core limit (one CSR verify + one sign per certificate)\n");
	return 0;
}
