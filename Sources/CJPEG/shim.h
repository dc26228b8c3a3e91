// The JPEG library of the system: libjpeg-turbo (Debian: libjpeg62-turbo-dev).
// jpeglib.h needs size_t and FILE declared before it is included.
#include <stddef.h>
#include <stdio.h>
#include <jpeglib.h>
