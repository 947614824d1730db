/* A server that says whether a point is on the map: BOX LON LAT answers
 * "in MIN..MAX" (the latitudes box() returned) or "out"; LAT answers
 * lat_range's; NORTH LAT "yes" if LAT is too far north, else "no";
 * NRANGE north_range's; WITHIN LON LAT "yes" or "no"; SW south_west's;
 * HELLO. */
#include "geobox.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void answer(const char *line, char *out, size_t len)
{
	struct range r[2];
	double lon, lat;

	if (sscanf(line, "BOX %lf %lf", &lon, &lat) == 2) {
		if (box(lon, lat, r))
			snprintf(out, len, "in %g..%g", r[1].min, r[1].max);
		else
			snprintf(out, len, "out");
	} else if (!strcmp(line, "LAT")) {
		lat_range(&r[0]);
		snprintf(out, len, "%g..%g", r[0].min, r[0].max);
	} else if (sscanf(line, "NORTH %lf", &lat) == 1) {
		snprintf(out, len, "%s", too_far_north(lat) ? "yes" : "no");
	} else if (!strcmp(line, "NRANGE")) {
		north_range(&r[0]);
		snprintf(out, len, "%g..%g", r[0].min, r[0].max);
	} else if (sscanf(line, "WITHIN %lf %lf", &lon, &lat) == 2) {
		snprintf(out, len, "%s", within(lon, lat) ? "yes" : "no");
	} else if (!strcmp(line, "SW")) {
		south_west(&r[0]);
		snprintf(out, len, "%g..%g", r[0].min, r[0].max);
	} else if (!strcmp(line, "HELLO")) {
		snprintf(out, len, "hello");
	} else {
		snprintf(out, len, "ERR");
	}
}

int main(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 16) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen))
		return perror("geobox"), 1;
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	for (;;) {
		char line[64] = "", out[64];
		int fd = accept(lfd, NULL, NULL);
		ssize_t n;

		if (fd < 0)
			continue;
		n = read(fd, line, sizeof(line) - 1);
		line[n > 0 ? n : 0] = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		answer(line, out, sizeof(out));
		strcat(out, "\n");
		if (write(fd, out, strlen(out)) < 0)
			perror("write");
		close(fd);
	}
}
