// glibc malloc tuning (mallopt), used once at start-up by the executables.
#include <malloc.h>
