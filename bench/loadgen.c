/* A small HTTP/1.1 load generator for the nginx figures: keep-alive
 * connections, each in its own thread, counting answered and failed requests
 * in 100 ms buckets, which wrk does not report.
 *   loadgen PORT PATH CONNECTIONS SECONDS OUT [LATENCIES]
 * OUT gets one line a bucket: "start_ms answered failed". LATENCIES, if
 * given, one line an answered request: "sent_ms latency_us", for the tail
 * latency of a window (while opus patches, against idle). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKET_MS   100
#define MAX_BUCKETS 100000
#define MAX_SAMPLES (4u << 20)

static int port, seconds;
static const char *path;
static atomic_uint answered[MAX_BUCKETS], failed[MAX_BUCKETS];
static double t0;
struct sample {
	float sent_ms, latency_us;
};
static struct sample *samples;
static atomic_uint nsamples;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned bucket(void)
{
	unsigned b = (unsigned)((now_ms() - t0) / BUCKET_MS);

	return b < MAX_BUCKETS ? b : MAX_BUCKETS - 1;
}

static int connect_once(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

/* One request on fd; 0 when a full 200 answer came back, -2 when the
 * connection was closed before any byte of an answer (a keep-alive
 * connection the server retired: the request is sent again, as browsers
 * do), -1 otherwise. */
static int request(int fd, const char *req, size_t len)
{
	char buf[8192];
	size_t have = 0;
	long body = -1;
	char *end;

	if (write(fd, req, len) != (ssize_t)len)
		return -2;
	for (;;) {
		ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);

		if (r <= 0)
			return have == 0 ? -2 : -1;
		have += (size_t)r;
		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (!end)
			continue;
		if (body < 0) {
			char *cl = strstr(buf, "Content-Length: ");

			body = cl ? atol(cl + 16) : 0;
		}
		if (have >= (size_t)(end + 4 - buf) + (size_t)body)
			return strncmp(buf, "HTTP/1.1 200", 12) ? -1 : 0;
	}
}

static void *client(void *arg)
{
	char req[512];
	int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
	int fd = -1, fresh = 0;

	(void)arg;
	while (now_ms() - t0 < seconds * 1e3) {
		if (fd < 0 && (fd = connect_once()) < 0) {
			atomic_fetch_add(&failed[bucket()], 1);
			usleep(1000);
			continue;
		}
		double sent = now_ms();
		int r = request(fd, req, (size_t)len);

		if (r == -2 && fresh == 0) {
			close(fd);
			fd = -1;
			fresh = 1; /* retry once on a new connection */
			continue;
		}
		fresh = 0;
		if (r == 0) {
			unsigned i = samples ? atomic_fetch_add(&nsamples, 1) : MAX_SAMPLES;

			atomic_fetch_add(&answered[bucket()], 1);
			if (i < MAX_SAMPLES)
				samples[i] = (struct sample){(float)(sent - t0),
							     (float)((now_ms() - sent) * 1e3)};
		} else {
			atomic_fetch_add(&failed[bucket()], 1);
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[256];
	int n;
	FILE *out;

	if (argc != 6 && argc != 7)
		return fprintf(stderr,
			       "usage: loadgen PORT PATH CONNECTIONS SECONDS OUT [LATENCIES]\n"),
		       2;
	if (argc == 7 && !(samples = calloc(MAX_SAMPLES, sizeof(*samples))))
		return perror("loadgen"), 1;
	port = atoi(argv[1]);
	path = argv[2];
	n = atoi(argv[3]);
	seconds = atoi(argv[4]);
	if (n < 1 || n > 256)
		return fprintf(stderr, "loadgen: 1 to 256 connections\n"), 2;
	t0 = now_ms();
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, client, NULL);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	out = fopen(argv[5], "w");
	if (!out)
		return perror(argv[5]), 1;
	for (int b = 0; b < seconds * 1000 / BUCKET_MS; b++)
		fprintf(out, "%d %u %u\n", b * BUCKET_MS, answered[b], failed[b]);
	fclose(out);
	if (!samples)
		return 0;
	if (!(out = fopen(argv[6], "w")))
		return perror(argv[6]), 1;
	for (unsigned i = 0; i < nsamples && i < MAX_SAMPLES; i++)
		fprintf(out, "%.3f %.1f\n", samples[i].sent_ms, samples[i].latency_us);
	fclose(out);
	return 0;
}
