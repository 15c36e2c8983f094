#include <stdio.h>

#include "buildinfo.h"

const char *greeting(void);
const char *farewell(void);
const char *weather(void);

int main(void)
{
	printf("%s\n", greeting());
	printf("%s\n", weather());
	printf("%s\n", farewell());
	printf("built on %s in %s\n", BUILD_HOST, BUILD_DIR);
	return 0;
}
