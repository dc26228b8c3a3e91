// Decoding of JPEG and PNG files held in memory, with the system's libjpeg-turbo and libpng.
//
// Both libraries report errors by longjmp. A longjmp must never cross Swift frames, so the whole
// decode, from the library's first call to its last, runs in these C functions behind one setjmp,
// and an error comes back as a status and a message.
#ifndef RAPQ_IMAGE_CODECS_H
#define RAPQ_IMAGE_CODECS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What a decode returns.
typedef enum {
    RAPQ_IMAGE_OK = 0,
    /// The data are damaged or truncated; `message` says how.
    RAPQ_IMAGE_DAMAGED = 1,
    /// A valid image of a kind this tool does not convert; `message` names it.
    RAPQ_IMAGE_UNSUPPORTED = 2,
    /// The pixel buffer could not be allocated.
    RAPQ_IMAGE_TOO_LARGE = 3
} rapq_image_status;

/// Decoded pixels, rows top to bottom, channels interleaved, 8 bits per sample.
typedef struct {
    int width;
    int height;
    /// JPEG: 1 (gray), 3 (RGB) or 4 (CMYK). PNG: 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA).
    int channels;
    /// JPEG CMYK written with an Adobe APP14 marker: the samples are stored inverted (255 = no ink).
    int adobe_inverted;
    /// PNG: the bit depth and colour type in the file's header (for messages).
    int bit_depth;
    int color_type;
    /// width * height * channels bytes from malloc; release with rapq_image_release.
    unsigned char *pixels;
    char message[256];
} rapq_decoded_image;

/// Decodes a JPEG file's bytes (baseline or progressive) with libjpeg-turbo's defaults: accurate integer
/// IDCT and fancy upsampling, YCbCr converted to RGB by the library. A file that ends early is damaged.
rapq_image_status rapq_decode_jpeg(const unsigned char *data, size_t size, rapq_decoded_image *image);

/// Decodes a PNG file's bytes: palettes expanded to RGB (alpha from tRNS), gray below 8 bits scaled to
/// 0..255, 16-bit colour reduced to its high byte; no gamma or colour-space conversion (as PIL).
/// 16-bit grayscale is unsupported.
rapq_image_status rapq_decode_png(const unsigned char *data, size_t size, rapq_decoded_image *image);

/// Frees the pixels of a decoded image.
void rapq_image_release(rapq_decoded_image *image);

#ifdef __cplusplus
}
#endif

#endif
