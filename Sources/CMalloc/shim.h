// glibc's allocator tuning interface (mallopt). Empty where <malloc.h> does not offer it.
#if defined(__linux__) && __has_include(<malloc.h>)
#include <malloc.h>
#endif
