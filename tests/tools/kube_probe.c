/* kube_probe: drives the Kubernetes client (kube/client.h) from the
 * command line, for tests/integration/test_kube_client.sh against the fake
 * apiserver.  Objects go to stdout as one JSON line; errors to stderr as
 * "error (<code name>): <message>" with exit status 1. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "kube/client.h"
#include "kube/config.h"
#include "util/clock.h"
#include "util/parse.h"

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: kube_probe (--kubeconfig FILE [--context NAME] | --in-cluster SA_DIR)\n"
	    "                  [--qps Q] [--burst N] [--timeout-ms N] [--max-response N]\n"
	    "                  [--retries N] [--backoff-ms N] COMMAND ARGS...\n"
	    "NS '-' means none (cluster-scoped, or all namespaces for list/watch).\n"
	    "commands:\n"
	    "  ns                                 default namespace of the configuration\n"
	    "  get RES NS NAME\n"
	    "  get2 RES NS NAME SIGNAL_FILE       get, wait for SIGNAL_FILE, get again\n"
	    "  repeat N RES NS NAME               N gets; prints {\"elapsedMs\":...}\n"
	    "  list RES NS [LIMIT [LABELSELECTOR [FIELDSELECTOR]]]\n"
	    "  list-page RES NS LIMIT [CONTINUE]\n"
	    "  create RES NS JSON | update RES NS JSON | patch RES NS NAME JSON\n"
	    "  delete RES NS NAME [PRECONDITION_RV]\n"
	    "  annotate RES NS NAME KEY VALUE     read-modify-write with conflict retry\n"
	    "  annotate-race RES NS NAME KEY VALUE  same, with a competing write on the first try\n"
	    "  evict NS NAME\n"
	    "  review TOKEN [AUDIENCE...]\n"
	    "  watch RES NS [--rv RV] [--events N] [--max-ms MS] [--timeout-s S] [--selector "
	    "SEL]\n");
	exit(2);
}

static int fail(int r, const sigil_err *err)
{
	fprintf(stderr, "error (%s): %s\n", kube_errcode_name(r), err->msg);
	return 1;
}

static const char *opt_ns(const char *s)
{
	return strcmp(s, "-") == 0 ? NULL : s;
}

static const kube_resource *res_arg(const char *s)
{
	const kube_resource *r = kube_resource_find(s);

	if (!r) {
		fprintf(stderr, "unknown resource %s\n", s);
		exit(2);
	}
	return r;
}

static long num_arg(const char *s, long min, long max)
{
	int64_t v;

	if (sigil_parse_int64(s, min, max, &v) < 0) {
		fprintf(stderr, "bad number %s\n", s);
		exit(2);
	}
	return (long)v;
}

static json_t *json_arg(const char *s)
{
	json_error_t jerr;
	json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);

	if (!j) {
		fprintf(stderr, "bad JSON argument: %s\n", jerr.text);
		exit(2);
	}
	return j;
}

static void print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	printf("%s\n", s ? s : "null");
	fflush(stdout);
	free(s);
}

/* ---- annotate (update with conflict retry) ---------------------------------- */

typedef struct annotate_ctx {
	kube_client *c;
	const kube_resource *res;
	const char *ns, *name, *key, *value;
	bool race;
	unsigned calls;
} annotate_ctx;

static int annotate_mutate(json_t *obj, void *ud, sigil_err *err)
{
	annotate_ctx *a = ud;
	json_t *md = json_object_get(obj, "metadata");
	json_t *ann = json_object_get(md, "annotations");
	const char *cur;

	a->calls++;
	if (!json_is_object(ann)) {
		ann = json_object();
		json_object_set_new(md, "annotations", ann);
	}
	cur = json_string_value(json_object_get(ann, a->key));
	if (cur && !strcmp(cur, a->value))
		return 1;
	json_object_set_new(ann, a->key, json_string(a->value));
	if (a->race && a->calls == 1) {
		/* Someone else writes between our read and our write. */
		json_t *p =
		    json_pack("{s:{s:{s:s}}}", "metadata", "annotations", "racer", "was-here");
		int r = kube_client_patch(a->c, a->res, a->ns, a->name, p, NULL, err);

		json_decref(p);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- watch ---------------------------------------------------------------- */

typedef struct watch_ctx {
	long want;
	long seen;
} watch_ctx;

static const char *const watch_type_names[] = {"SYNC", "ADDED", "MODIFIED", "DELETED"};

static int watch_cb(const kube_watch_event *ev, void *ud, sigil_err *err)
{
	watch_ctx *w = ud;
	json_t *line;

	if (ev->type == KUBE_WATCH_SYNC) {
		json_t *names = json_array();
		size_t i;
		json_t *it;

		json_array_foreach(json_object_get(ev->object, "items"), i, it)
		    json_array_append_new(names, json_string(kube_object_name(it)));
		line = json_pack("{s:s, s:o, s:s}", "type", "SYNC", "names", names, "rv",
		                 ev->resource_version);
	} else {
		line = json_pack(
		    "{s:s, s:s?, s:s, s:O?}", "type", watch_type_names[ev->type], "name",
		    kube_object_name(ev->object), "rv", ev->resource_version, "annotations",
		    json_object_get(json_object_get(ev->object, "metadata"), "annotations"));
	}
	print_json(line);
	json_decref(line);
	w->seen++;
	return w->want > 0 && w->seen >= w->want ? 1 : 0;
}

static int cmd_watch(kube_client *c, int argc, char **argv, sigil_err *err)
{
	kube_watch_opts o = {0};
	watch_ctx w = {0};
	char last[KUBE_MAX_RESOURCE_VERSION + 1] = "";
	const kube_resource *res;
	const char *ns;
	int r;

	if (argc < 2)
		usage();
	res = res_arg(argv[0]);
	ns = opt_ns(argv[1]);
	o.max_duration_ms = 20000;
	for (int i = 2; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--rv"))
			o.resource_version = argv[++i];
		else if (!strcmp(argv[i], "--events"))
			w.want = num_arg(argv[++i], 1, 100000);
		else if (!strcmp(argv[i], "--max-ms"))
			o.max_duration_ms = num_arg(argv[++i], 1, 600000);
		else if (!strcmp(argv[i], "--timeout-s"))
			o.timeout_seconds = (unsigned)num_arg(argv[++i], 1, 3600);
		else if (!strcmp(argv[i], "--selector"))
			o.label_selector = argv[++i];
		else
			usage();
	}
	o.last_rv = last;
	o.last_rv_size = sizeof(last);
	r = kube_client_watch(c, res, ns, &o, watch_cb, &w, err);
	if (r < 0)
		return fail(r, err);
	printf("{\"end\":true,\"events\":%ld,\"lastRv\":\"%s\"}\n", w.seen, last);
	return 0;
}

/* ---- main ------------------------------------------------------------------- */

static int run(kube_client *c, int argc, char **argv)
{
	sigil_err err = {0};
	const char *cmd = argv[0];
	json_t *obj = NULL;
	int r;

	argc--;
	argv++;
	if (!strcmp(cmd, "ns")) {
		printf("%s\n", kube_client_namespace(c));
		return 0;
	}
	if (!strcmp(cmd, "get") && argc == 3) {
		r = kube_client_get(c, res_arg(argv[0]), opt_ns(argv[1]), argv[2], &obj, &err);
		if (r < 0)
			return fail(r, &err);
		print_json(obj);
		json_decref(obj);
		return 0;
	}
	if (!strcmp(cmd, "get2") && argc == 4) {
		for (int i = 0; i < 2; i++) {
			r = kube_client_get(c, res_arg(argv[0]), opt_ns(argv[1]), argv[2], &obj,
			                    &err);
			if (r < 0)
				return fail(r, &err);
			printf("get %d ok rv=%s\n", i + 1, kube_object_resource_version(obj));
			fflush(stdout);
			json_decref(obj);
			for (int t = 0; i == 0 && t < 200 && access(argv[3], F_OK) < 0; t++)
				usleep(50000);
		}
		return 0;
	}
	if (!strcmp(cmd, "repeat") && argc == 4) {
		long n = num_arg(argv[0], 1, 10000);
		int64_t t0 = sigil_mono_ms();

		for (long i = 0; i < n; i++) {
			r = kube_client_get(c, res_arg(argv[1]), opt_ns(argv[2]), argv[3], &obj,
			                    &err);
			if (r < 0)
				return fail(r, &err);
			json_decref(obj);
		}
		printf("{\"requests\":%ld,\"elapsedMs\":%lld}\n", n,
		       (long long)(sigil_mono_ms() - t0));
		return 0;
	}
	if (!strcmp(cmd, "list") && argc >= 2 && argc <= 5) {
		kube_list_opts o = {0};
		json_t *names = json_array(), *it, *out;
		size_t i;

		if (argc >= 3)
			o.limit = (unsigned)num_arg(argv[2], 1, 100000);
		if (argc >= 4 && argv[3][0])
			o.label_selector = argv[3];
		if (argc >= 5 && argv[4][0])
			o.field_selector = argv[4];
		r = kube_client_list(c, res_arg(argv[0]), opt_ns(argv[1]), &o, &obj, &err);
		if (r < 0) {
			json_decref(names);
			return fail(r, &err);
		}
		json_array_foreach(json_object_get(obj, "items"), i, it)
		    json_array_append_new(names, json_string(kube_object_name(it)));
		out = json_pack(
		    "{s:O?, s:I, s:o, s:O?}", "kind", json_object_get(obj, "kind"), "count",
		    (json_int_t)json_array_size(names), "names", names, "resourceVersion",
		    json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
		print_json(out);
		json_decref(out);
		json_decref(obj);
		return 0;
	}
	if (!strcmp(cmd, "list-page") && (argc == 3 || argc == 4)) {
		kube_list_opts o = {.limit = (unsigned)num_arg(argv[2], 1, 100000)};

		r = kube_client_list_page(c, res_arg(argv[0]), opt_ns(argv[1]), &o,
		                          argc == 4 ? argv[3] : NULL, &obj, &err);
		if (r < 0)
			return fail(r, &err);
		print_json(obj);
		json_decref(obj);
		return 0;
	}
	if ((!strcmp(cmd, "create") || !strcmp(cmd, "update")) && argc == 3) {
		json_t *in = json_arg(argv[2]);

		if (!strcmp(cmd, "create"))
			r = kube_client_create(c, res_arg(argv[0]), opt_ns(argv[1]), in, &obj,
			                       &err);
		else
			r = kube_client_update(c, res_arg(argv[0]), opt_ns(argv[1]), in, &obj,
			                       &err);
		json_decref(in);
		if (r < 0)
			return fail(r, &err);
		print_json(obj);
		json_decref(obj);
		return 0;
	}
	if (!strcmp(cmd, "patch") && argc == 4) {
		json_t *in = json_arg(argv[3]);

		r = kube_client_patch(c, res_arg(argv[0]), opt_ns(argv[1]), argv[2], in, &obj,
		                      &err);
		json_decref(in);
		if (r < 0)
			return fail(r, &err);
		print_json(obj);
		json_decref(obj);
		return 0;
	}
	if (!strcmp(cmd, "delete") && (argc == 3 || argc == 4)) {
		r = kube_client_delete(c, res_arg(argv[0]), opt_ns(argv[1]), argv[2],
		                       argc == 4 ? argv[3] : NULL, &err);
		if (r < 0)
			return fail(r, &err);
		printf("deleted\n");
		return 0;
	}
	if ((!strcmp(cmd, "annotate") || !strcmp(cmd, "annotate-race")) && argc == 5) {
		annotate_ctx a = {.c = c,
		                  .res = res_arg(argv[0]),
		                  .ns = opt_ns(argv[1]),
		                  .name = argv[2],
		                  .key = argv[3],
		                  .value = argv[4],
		                  .race = !strcmp(cmd, "annotate-race")};

		r = kube_client_update_retry(c, a.res, a.ns, a.name, 4, annotate_mutate, &a, &obj,
		                             &err);
		if (r < 0)
			return fail(r, &err);
		printf("{\"attempts\":%u,\"rv\":\"%s\"}\n", a.calls,
		       kube_object_resource_version(obj));
		json_decref(obj);
		return 0;
	}
	if (!strcmp(cmd, "evict") && argc == 2) {
		r = kube_client_evict_pod(c, argv[0], argv[1], &err);
		if (r < 0)
			return fail(r, &err);
		printf("evicted\n");
		return 0;
	}
	if (!strcmp(cmd, "review") && argc >= 1) {
		kube_token_identity id;
		json_t *out;

		r = kube_client_review_token(c, argv[0], (const char *const *)argv + 1,
		                             (size_t)argc - 1, &id, &err);
		if (r < 0)
			return fail(r, &err);
		out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "username", id.username,
		                "uid", id.uid, "saNamespace", id.sa_namespace, "saName", id.sa_name,
		                "podName", id.pod_name, "podUid", id.pod_uid, "nodeName",
		                id.node_name);
		print_json(out);
		json_decref(out);
		return 0;
	}
	if (!strcmp(cmd, "watch"))
		return cmd_watch(c, argc, argv, &err);
	usage();
	return 2;
}

int main(int argc, char **argv)
{
	_cleanup_(kube_config_freep) kube_config *cfg = NULL;
	_cleanup_(kube_client_freep) kube_client *c = NULL;
	const char *kubeconfig = NULL, *context = NULL, *sa_dir = NULL;
	kube_client_opts o;
	sigil_err err = {0};
	int i, r;

	signal(SIGPIPE, SIG_IGN);
	kube_client_opts_init(&o);
	for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--kubeconfig"))
			kubeconfig = argv[i + 1];
		else if (!strcmp(argv[i], "--context"))
			context = argv[i + 1];
		else if (!strcmp(argv[i], "--in-cluster"))
			sa_dir = argv[i + 1];
		else if (!strcmp(argv[i], "--qps"))
			o.qps = (double)num_arg(argv[i + 1], 0, 100000);
		else if (!strcmp(argv[i], "--burst"))
			o.burst = (unsigned)num_arg(argv[i + 1], 1, 100000);
		else if (!strcmp(argv[i], "--timeout-ms"))
			o.timeout_ms = num_arg(argv[i + 1], 1, 600000);
		else if (!strcmp(argv[i], "--max-response"))
			o.max_response = (size_t)num_arg(argv[i + 1], 1, 1L << 30);
		else if (!strcmp(argv[i], "--retries"))
			o.max_retries = (unsigned)num_arg(argv[i + 1], 0, KUBE_MAX_RETRIES);
		else if (!strcmp(argv[i], "--backoff-ms")) {
			o.backoff_base_ms = num_arg(argv[i + 1], 0, 60000);
			o.backoff_max_ms = o.backoff_base_ms * 8;
		} else
			usage();
	}
	if (i >= argc || (!kubeconfig == !sa_dir))
		usage();
	if (kubeconfig)
		r = kube_config_load_kubeconfig(kubeconfig, context, &cfg, &err);
	else
		r = kube_config_load_in_cluster(sa_dir, &cfg, &err);
	if (r < 0)
		return fail(r, &err);
	r = kube_client_new(cfg, &o, &c, &err);
	if (r < 0)
		return fail(r, &err);
	return run(c, argc - i, argv + i);
}
