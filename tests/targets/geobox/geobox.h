#ifndef GEOBOX_H
#define GEOBOX_H

struct range {
	double min, max;
};

void lat_range(struct range *r);
int box(double lon, double lat, struct range *r);
void north_range(struct range *r);
int too_far_north(double lat);
void south_west(struct range *r);
int within(double lon, double lat);

#endif
