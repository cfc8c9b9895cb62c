// glibc declarations the Swift Glibc module lacks: malloc tuning (mallopt), used once at
// start-up by the executables, and sync_file_range (a GNU extension), which LocalFileOutput uses
// to start writeback behind a long write.
#include <malloc.h>
#include <sys/types.h>

extern int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags);
#define AI_SHELL_SYNC_FILE_RANGE_WRITE 2
