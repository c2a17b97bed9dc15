/* Alertmanager v2 webhook: a bounded queue drained by one libcurl thread.
 * Alertmanager OpenAPI (api/v2/openapi.yaml): `POST /api/v2/alerts` takes
 * postableAlerts, an array of {labels, annotations, startsAt, endsAt,
 * generatorURL}; labels and annotations are string maps; times are RFC 3339
 * date-times; an alert with endsAt in the past is resolved. */
#include "metrics/webhook.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/fs.h"
#include "util/mem.h"

#define ALERTS_PATH "/api/v2/alerts"
/* What we read of a receiver's answer: nothing of it is used. */
#define WEBHOOK_MAX_RESPONSE (64u * 1024)

typedef struct wh_item {
	struct wh_item *next;
	json_t *alert;
} wh_item;

struct metrics_webhook {
	char *url;
	char *token_file;
	char *ca_file;
	char *generator_url;
	unsigned timeout_ms, max_queue, max_attempts, backoff_ms;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* queue changed, stop asked, or a batch finished */
	wh_item *head, *tail;
	size_t queued;
	bool in_flight;
	bool thread_started;
	atomic_bool stopping;
	metrics_webhook_stats stats;
	pthread_t thread;

	metrics_family *m_sent, *m_failed, *m_dropped;
};

typedef enum post_result { POST_OK, POST_RETRY, POST_FAIL, POST_STOPPED } post_result;

static pthread_once_t wh_curl_once = PTHREAD_ONCE_INIT;
static CURLcode wh_curl_init_rc;

static void wh_curl_global_init(void)
{
	/* curl_global_init is not thread-safe on every libcurl: run it once. */
	wh_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- building alerts (caller's thread) --------------------------------------- */

static bool text_ok(const char *s)
{
	/* jansson refuses strings that are not UTF-8: say so before. */
	size_t n;

	if (!s)
		return false;
	n = strnlen(s, METRICS_WEBHOOK_MAX_VALUE + 1);
	return n <= METRICS_WEBHOOK_MAX_VALUE && metrics_utf8_ok(s, n);
}

static int format_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return SIGIL_E_INVALID;
	return 0;
}

static int set_string(json_t *obj, const char *key, const char *value)
{
	json_t *s = json_stringn(value, strlen(value));

	if (!s || json_object_set_new(obj, key, s) < 0)
		return SIGIL_E_NOMEM;
	return 0;
}

/* Year 1970..9999: RFC 3339 has four-digit years. */
#define WEBHOOK_MAX_TIME 253402300799LL

static int alert_to_json(const metrics_webhook *wh, const metrics_alert *a, json_t **ret,
			 sigil_err *err)
{
	json_t *obj = NULL, *labels = NULL, *ann = NULL;
	char ts[32];
	bool have_name = false;
	int r = SIGIL_E_NOMEM;

	if (!a || (a->n_labels && !a->labels))
		return sigil_err_set(err, SIGIL_E_INVALID, "alert without labels");
	if (a->n_labels > METRICS_WEBHOOK_MAX_LABELS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "alert has more than %d labels",
				     METRICS_WEBHOOK_MAX_LABELS);
	if (a->starts_at < 0 || a->starts_at > WEBHOOK_MAX_TIME || a->ends_at < 0 ||
	    a->ends_at > WEBHOOK_MAX_TIME)
		return sigil_err_set(err, SIGIL_E_INVALID, "alert times out of range");
	obj = json_object();
	labels = json_object();
	ann = json_object();
	if (!obj || !labels || !ann)
		goto fail;
	for (size_t i = 0; i < a->n_labels; i++) {
		const metrics_label *l = &a->labels[i];

		if (!metrics_label_name_ok(l->name)) {
			r = sigil_err_set(err, SIGIL_E_INVALID, "alert label name \"%.64s\" is invalid",
					  l->name ? l->name : "");
			goto fail;
		}
		if (!text_ok(l->value) || !l->value[0]) {
			r = sigil_err_set(err, SIGIL_E_INVALID,
					  "alert label %s: value must be non-empty UTF-8 of at "
					  "most %d bytes",
					  l->name, METRICS_WEBHOOK_MAX_VALUE);
			goto fail;
		}
		if (json_object_get(labels, l->name)) {
			r = sigil_err_set(err, SIGIL_E_INVALID, "alert label %s given twice",
					  l->name);
			goto fail;
		}
		if (set_string(labels, l->name, l->value) < 0)
			goto fail;
		if (strcmp(l->name, "alertname") == 0)
			have_name = true;
	}
	if (!have_name) {
		r = sigil_err_set(err, SIGIL_E_INVALID, "alert has no alertname label");
		goto fail;
	}
	if ((a->summary && !text_ok(a->summary)) || (a->description && !text_ok(a->description))) {
		r = sigil_err_set(err, SIGIL_E_INVALID,
				  "alert annotations must be UTF-8 of at most %d bytes",
				  METRICS_WEBHOOK_MAX_VALUE);
		goto fail;
	}
	if ((a->summary && set_string(ann, "summary", a->summary) < 0) ||
	    (a->description && set_string(ann, "description", a->description) < 0))
		goto fail;
	if (json_object_set_new(obj, "labels", labels) < 0) {
		labels = NULL;
		goto fail;
	}
	labels = NULL;
	if (json_object_set_new(obj, "annotations", ann) < 0) {
		ann = NULL;
		goto fail;
	}
	ann = NULL;
	if (format_time(a->starts_at ? a->starts_at : (int64_t)time(NULL), ts, sizeof(ts)) < 0 ||
	    set_string(obj, "startsAt", ts) < 0)
		goto fail;
	if (a->ends_at &&
	    (format_time(a->ends_at, ts, sizeof(ts)) < 0 || set_string(obj, "endsAt", ts) < 0))
		goto fail;
	if (wh->generator_url && set_string(obj, "generatorURL", wh->generator_url) < 0)
		goto fail;
	*ret = obj;
	return 0;
fail:
	json_decref(labels);
	json_decref(ann);
	json_decref(obj);
	if (r == SIGIL_E_NOMEM)
		sigil_err_set(err, r, "out of memory building an alert");
	return r;
}

/* ---- sending (webhook thread) ------------------------------------------------- */

static size_t discard_cb(char *p, size_t size, size_t nmemb, void *userdata)
{
	size_t *seen = userdata;
	size_t n = size * nmemb;

	/* A receiver that streams forever is cut off. */
	if (n > WEBHOOK_MAX_RESPONSE - *seen)
		return 0;
	*seen += n;
	return n;
}

static int progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	metrics_webhook *wh = userdata;

	return atomic_load(&wh->stopping) ? 1 : 0;
}

static void slist_free_secret(struct curl_slist *l)
{
	/* The Authorization header holds the token: wipe it first. */
	for (struct curl_slist *p = l; p; p = p->next)
		if (p->data)
			sigil_wipe(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

/* Appends "Authorization: Bearer <token>" read from the token file. */
static int add_token_header(const metrics_webhook *wh, struct curl_slist **hdrs)
{
	uint8_t *tok = NULL;
	size_t len = 0, n = 0;
	char *line = NULL;
	struct curl_slist *nl;
	int r;

	r = sigil_fs_read_file(wh->token_file, METRICS_WEBHOOK_MAX_TOKEN, &tok, &len, NULL);
	if (r < 0)
		return r;
	/* Token files end with a newline more often than not. */
	while (len > 0 && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
		len--;
	r = SIGIL_E_INVALID;
	if (len == 0)
		goto out;
	for (size_t i = 0; i < len; i++)
		if (tok[i] <= 0x20 || tok[i] >= 0x7f)
			goto out; /* would break the header line */
	n = sizeof("Authorization: Bearer ") + len;
	line = malloc(n);
	r = SIGIL_E_NOMEM;
	if (!line)
		goto out;
	snprintf(line, n, "Authorization: Bearer %.*s", (int)len, (const char *)tok);
	nl = curl_slist_append(*hdrs, line);
	if (!nl)
		goto out;
	*hdrs = nl;
	r = 0;
out:
	sigil_freezero(tok, len + 1);
	if (line)
		sigil_freezero(line, n);
	return r;
}

static post_result post_batch(metrics_webhook *wh, const char *body, size_t body_len)
{
	struct curl_slist *hdrs = NULL, *nl;
	size_t seen = 0;
	long status = 0;
	CURLcode cc;
	CURL *c;
	post_result pr;

	c = curl_easy_init();
	if (!c)
		return POST_RETRY;
	nl = curl_slist_append(NULL, "Content-Type: application/json");
	if (!nl)
		goto retry;
	hdrs = nl;
	/* "Expect: 100-continue" would cost a round trip on every batch. */
	nl = curl_slist_append(hdrs, "Expect:");
	if (!nl)
		goto retry;
	hdrs = nl;
	/* A token that cannot be read now may be there on the next attempt
	 * (a projected token being rotated). */
	if (wh->token_file && add_token_header(wh, &hdrs) < 0)
		goto retry;
	if (curl_easy_setopt(c, CURLOPT_URL, wh->url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)wh->timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)wh->timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_cb) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, &seen) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_XFERINFODATA, wh) != CURLE_OK ||
	    (wh->ca_file && curl_easy_setopt(c, CURLOPT_CAINFO, wh->ca_file) != CURLE_OK))
		goto retry;
	cc = curl_easy_perform(c);
	if (cc == CURLE_ABORTED_BY_CALLBACK) {
		pr = POST_STOPPED;
		goto out;
	}
	if (cc != CURLE_OK) {
		/* Connection refused, DNS, TLS, timeout: the receiver may come back. */
		pr = POST_RETRY;
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300)
		pr = POST_OK;
	else if (status >= 500 || status == 429 || status == 408)
		pr = POST_RETRY;
	else
		pr = POST_FAIL; /* 4xx: the same body would be refused again */
	goto out;
retry:
	pr = POST_RETRY;
out:
	slist_free_secret(hdrs);
	curl_easy_cleanup(c);
	return pr;
}

static void count(metrics_webhook *wh, uint64_t *stat, metrics_family *fam, size_t n)
{
	/* With wh->lock held; metrics_inc takes only the family's own lock. */
	*stat += n;
	metrics_inc(fam, NULL, (double)n);
}

/* Waits ms or until stop; with wh->lock held.  Returns false on stop. */
static bool backoff_wait(metrics_webhook *wh, unsigned ms)
{
	struct timespec dl;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	while (!atomic_load(&wh->stopping)) {
		if (pthread_cond_timedwait(&wh->cond, &wh->lock, &dl) == ETIMEDOUT)
			break;
	}
	return !atomic_load(&wh->stopping);
}

static void *webhook_thread(void *arg)
{
	metrics_webhook *wh = arg;

	pthread_mutex_lock(&wh->lock);
	for (;;) {
		json_t *batch;
		size_t n = 0;
		char *body;
		unsigned delay = wh->backoff_ms;
		post_result pr = POST_RETRY;

		while (!wh->head && !atomic_load(&wh->stopping))
			pthread_cond_wait(&wh->cond, &wh->lock);
		if (atomic_load(&wh->stopping))
			break;
		batch = json_array();
		while (batch && wh->head && n < METRICS_WEBHOOK_MAX_BATCH) {
			wh_item *it = wh->head;

			/* (json_array_append_new would free the alert on failure.) */
			if (json_array_append(batch, it->alert) < 0)
				break;
			json_decref(it->alert);
			wh->head = it->next;
			if (!wh->head)
				wh->tail = NULL;
			wh->queued--;
			free(it);
			n++;
		}
		if (n == 0) {
			/* Out of memory: wait and try again rather than spin. */
			json_decref(batch);
			(void)backoff_wait(wh, wh->backoff_ms);
			continue;
		}
		wh->in_flight = true;
		pthread_mutex_unlock(&wh->lock);

		body = json_dumps(batch, JSON_COMPACT);
		json_decref(batch);
		for (unsigned attempt = 1; body; attempt++) {
			pthread_mutex_lock(&wh->lock);
			wh->stats.attempts++;
			pthread_mutex_unlock(&wh->lock);
			pr = post_batch(wh, body, strlen(body));
			if (pr != POST_RETRY || attempt >= wh->max_attempts)
				break;
			pthread_mutex_lock(&wh->lock);
			bool go_on = backoff_wait(wh, delay);
			pthread_mutex_unlock(&wh->lock);
			if (!go_on) {
				pr = POST_STOPPED;
				break;
			}
			delay = delay > METRICS_WEBHOOK_MAX_BACKOFF_MS / 2 ? METRICS_WEBHOOK_MAX_BACKOFF_MS
									   : delay * 2;
		}
		free(body);

		pthread_mutex_lock(&wh->lock);
		switch (pr) {
		case POST_OK:
			count(wh, &wh->stats.sent, wh->m_sent, n);
			break;
		case POST_STOPPED:
			count(wh, &wh->stats.dropped, wh->m_dropped, n);
			break;
		case POST_RETRY: /* attempts exhausted, or no memory for the body */
		case POST_FAIL:
		default:
			count(wh, &wh->stats.failed, wh->m_failed, n);
			break;
		}
		wh->in_flight = false;
		pthread_cond_broadcast(&wh->cond);
	}
	pthread_mutex_unlock(&wh->lock);
	return NULL;
}

/* ---- public API ---------------------------------------------------------------- */

static int webhook_url(const char *base, char **ret, sigil_err *err)
{
	size_t n, sl = strlen(ALERTS_PATH);
	char *u;

	if (!base || !base[0])
		return sigil_err_set(err, SIGIL_E_INVALID, "alert webhook URL is empty");
	n = strnlen(base, METRICS_WEBHOOK_MAX_URL + 1);
	if (n > METRICS_WEBHOOK_MAX_URL)
		return sigil_err_set(err, SIGIL_E_LIMIT, "alert webhook URL longer than %d bytes",
				     METRICS_WEBHOOK_MAX_URL);
	if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "alert webhook URL \"%s\" must start with http:// or https://",
				     base);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)base[i] <= 0x20 || (unsigned char)base[i] >= 0x7f)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "alert webhook URL has spaces or control characters");
	if (n >= sl && strcmp(base + n - sl, ALERTS_PATH) == 0) {
		u = strdup(base);
	} else {
		/* "http://am:9093/" + "/api/v2/alerts" without a double slash */
		size_t bl = n;

		while (bl > 0 && base[bl - 1] == '/')
			bl--;
		u = malloc(bl + sl + 1);
		if (u) {
			memcpy(u, base, bl);
			memcpy(u + bl, ALERTS_PATH, sl + 1);
		}
	}
	if (!u)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	*ret = u;
	return 0;
}

static void webhook_free(metrics_webhook *wh)
{
	wh_item *it;

	if (!wh)
		return;
	it = wh->head;
	while (it) {
		wh_item *next = it->next;

		json_decref(it->alert);
		free(it);
		it = next;
	}
	pthread_mutex_destroy(&wh->lock);
	pthread_cond_destroy(&wh->cond);
	free(wh->url);
	free(wh->token_file);
	free(wh->ca_file);
	free(wh->generator_url);
	free(wh);
}

static int register_counters(metrics_webhook *wh, metrics_registry *reg, sigil_err *err)
{
	int r;

	if (!reg)
		return 0;
	r = metrics_counter(reg, "sigil_alert_webhook_sent_total",
			    "Alerts delivered to the alert webhook.", NULL, 0, &wh->m_sent, err);
	if (r == 0)
		r = metrics_counter(reg, "sigil_alert_webhook_failed_total",
				    "Alerts the alert webhook refused or that failed every retry.",
				    NULL, 0, &wh->m_failed, err);
	if (r == 0)
		r = metrics_counter(reg, "sigil_alert_webhook_dropped_total",
				    "Alerts dropped because the webhook queue was full or the "
				    "process stopped.",
				    NULL, 0, &wh->m_dropped, err);
	return r;
}

int metrics_webhook_start(const metrics_webhook_config *cfg, metrics_webhook **ret,
			  sigil_err *err)
{
	pthread_condattr_t ca;
	metrics_webhook *wh;
	int r;

	if (!cfg)
		return sigil_err_set(err, SIGIL_E_INVALID, "no alert webhook configuration");
	if (cfg->max_queue > METRICS_WEBHOOK_MAX_QUEUE ||
	    cfg->max_attempts > METRICS_WEBHOOK_MAX_ATTEMPTS ||
	    cfg->backoff_ms > METRICS_WEBHOOK_MAX_BACKOFF_MS || cfg->timeout_ms > 600000)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "alert webhook limits: queue <= %d, attempts <= %d, "
				     "backoff <= %d ms, timeout <= 600000 ms",
				     METRICS_WEBHOOK_MAX_QUEUE, METRICS_WEBHOOK_MAX_ATTEMPTS,
				     METRICS_WEBHOOK_MAX_BACKOFF_MS);
	if (cfg->generator_url && (!cfg->generator_url[0] ||
				   strnlen(cfg->generator_url, METRICS_WEBHOOK_MAX_URL + 1) >
					   METRICS_WEBHOOK_MAX_URL ||
				   !metrics_label_value_ok(cfg->generator_url)))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "alert generator URL must be UTF-8 of 1..%d bytes",
				     METRICS_WEBHOOK_MAX_URL);
	pthread_once(&wh_curl_once, wh_curl_global_init);
	if (wh_curl_init_rc != CURLE_OK)
		return sigil_err_set(err, SIGIL_E_INTERNAL, "curl_global_init: %s",
				     curl_easy_strerror(wh_curl_init_rc));
	wh = calloc(1, sizeof(*wh));
	if (!wh)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	pthread_mutex_init(&wh->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wh->cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&wh->stopping, false);
	wh->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : METRICS_WEBHOOK_DEFAULT_TIMEOUT_MS;
	wh->max_queue = cfg->max_queue ? cfg->max_queue : METRICS_WEBHOOK_DEFAULT_QUEUE;
	wh->max_attempts = cfg->max_attempts ? cfg->max_attempts
					     : METRICS_WEBHOOK_DEFAULT_ATTEMPTS;
	wh->backoff_ms = cfg->backoff_ms ? cfg->backoff_ms : METRICS_WEBHOOK_DEFAULT_BACKOFF_MS;
	r = webhook_url(cfg->url, &wh->url, err);
	if (r < 0)
		goto fail;
	if ((cfg->token_file && !(wh->token_file = strdup(cfg->token_file))) ||
	    (cfg->ca_file && !(wh->ca_file = strdup(cfg->ca_file))) ||
	    (cfg->generator_url && !(wh->generator_url = strdup(cfg->generator_url)))) {
		r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		goto fail;
	}
	r = register_counters(wh, cfg->registry, err);
	if (r < 0)
		goto fail;
	r = pthread_create(&wh->thread, NULL, webhook_thread, wh);
	if (r != 0) {
		r = sigil_err_errno(err, r, "starting the alert webhook thread");
		goto fail;
	}
	wh->thread_started = true;
	*ret = wh;
	return 0;
fail:
	webhook_free(wh);
	return r;
}

int metrics_webhook_send(metrics_webhook *wh, const metrics_alert *alert, sigil_err *err)
{
	json_t *obj = NULL;
	wh_item *it;
	int r;

	if (!wh)
		return sigil_err_set(err, SIGIL_E_INVALID, "no alert webhook");
	r = alert_to_json(wh, alert, &obj, err);
	if (r < 0)
		return r;
	it = calloc(1, sizeof(*it));
	if (!it) {
		json_decref(obj);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory queueing an alert");
	}
	it->alert = obj;
	pthread_mutex_lock(&wh->lock);
	if (wh->queued >= wh->max_queue || atomic_load(&wh->stopping)) {
		count(wh, &wh->stats.dropped, wh->m_dropped, 1);
		pthread_mutex_unlock(&wh->lock);
		json_decref(obj);
		free(it);
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "alert webhook queue is full (%u alerts): alert dropped",
				     wh->max_queue);
	}
	if (wh->tail)
		wh->tail->next = it;
	else
		wh->head = it;
	wh->tail = it;
	wh->queued++;
	pthread_cond_broadcast(&wh->cond);
	pthread_mutex_unlock(&wh->lock);
	return 0;
}

int metrics_webhook_flush(metrics_webhook *wh, unsigned timeout_ms)
{
	struct timespec dl;
	int r = 0;

	if (!wh)
		return SIGIL_E_INVALID;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&wh->lock);
	while (wh->head || wh->in_flight) {
		if (pthread_cond_timedwait(&wh->cond, &wh->lock, &dl) == ETIMEDOUT) {
			r = (wh->head || wh->in_flight) ? SIGIL_E_TIMEOUT : 0;
			break;
		}
	}
	pthread_mutex_unlock(&wh->lock);
	return r;
}

void metrics_webhook_get_stats(metrics_webhook *wh, metrics_webhook_stats *ret)
{
	if (!wh) {
		memset(ret, 0, sizeof(*ret));
		return;
	}
	pthread_mutex_lock(&wh->lock);
	*ret = wh->stats;
	pthread_mutex_unlock(&wh->lock);
}

void metrics_webhook_stop(metrics_webhook *wh)
{
	if (!wh)
		return;
	pthread_mutex_lock(&wh->lock);
	atomic_store(&wh->stopping, true);
	pthread_cond_broadcast(&wh->cond);
	pthread_mutex_unlock(&wh->lock);
	if (wh->thread_started)
		pthread_join(wh->thread, NULL);
	/* What never left is counted as dropped. */
	count(wh, &wh->stats.dropped, wh->m_dropped, wh->queued);
	webhook_free(wh);
}
