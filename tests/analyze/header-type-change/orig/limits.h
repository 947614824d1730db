
#ifndef LIMITS_H
#define LIMITS_H

struct limits {
	int max;
};

#endif
