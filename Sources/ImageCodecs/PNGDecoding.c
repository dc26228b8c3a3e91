// PNG decoding with libpng behind setjmp (see ImageCodecs.h).
#include "ImageCodecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <png.h>

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
    rapq_decoded_image *image;
} rapq_png_source;

static void rapq_png_read(png_structp png, png_bytep out, size_t count) {
    rapq_png_source *source = (rapq_png_source *)png_get_io_ptr(png);
    if (source->size - source->offset < count) png_error(png, "the file ends before the image data do (truncated)");
    memcpy(out, source->data + source->offset, count);
    source->offset += count;
}

// Fatal errors: keep libpng's message and return to the setjmp in rapq_decode_png.
static void rapq_png_error(png_structp png, png_const_charp text) {
    rapq_png_source *source = (rapq_png_source *)png_get_error_ptr(png);
    snprintf(source->image->message, sizeof source->image->message, "%s", text);
    png_longjmp(png, 1);
}

// Warnings (unknown or damaged ancillary chunks) do not stop PIL either.
static void rapq_png_warning(png_structp png, png_const_charp text) { (void)png; (void)text; }

rapq_image_status rapq_decode_png(const unsigned char *data, size_t size, rapq_decoded_image *image) {
    memset(image, 0, sizeof *image);
    rapq_png_source source = { data, size, 0, image };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, rapq_png_error, rapq_png_warning);
    if (!png) return RAPQ_IMAGE_TOO_LARGE;
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); return RAPQ_IMAGE_TOO_LARGE; }
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile rapq_image_status failure = RAPQ_IMAGE_DAMAGED;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rows);
        free(pixels);
        return failure;
    }
    png_set_read_fn(png, &source, rapq_png_read);
    // Dimensions up to PNG's limit; the 2 GiB check below bounds the memory.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    image->bit_depth = depth;
    image->color_type = type;
    if (depth == 16 && (type & PNG_COLOR_MASK_COLOR) == 0) {
        // PIL opens it as a 16-bit integer image, and convert('RGB') clips every value above 255 to 255
        // rather than scaling; no conversion would agree with the Python pipelines, so it is refused.
        snprintf(image->message, sizeof image->message, "a 16-bit grayscale PNG");
        failure = RAPQ_IMAGE_UNSUPPORTED;
        png_longjmp(png, 1);
    }
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    // 16-bit colour: keep the high byte of each sample, as PIL's "RGB;16B" and "RGBA;16B" unpacking does.
    if (depth == 16) png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    size_t row = png_get_rowbytes(png, info);
    if (row != (size_t)width * (size_t)channels || height == 0 || row * height > ((size_t)1 << 31)) {
        snprintf(image->message, sizeof image->message, "%u x %u pixels of %d channels is more than this tool decodes (2 GiB)", width, height, channels);
        failure = RAPQ_IMAGE_TOO_LARGE;
        png_longjmp(png, 1);
    }
    pixels = malloc(row * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!pixels || !rows) {
        snprintf(image->message, sizeof image->message, "no memory for %zu bytes of pixels", row * height);
        failure = RAPQ_IMAGE_TOO_LARGE;
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + row * y;
    png_read_image(png, rows);
    image->width = (int)width;
    image->height = (int)height;
    image->channels = channels;
    image->pixels = pixels;
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    return RAPQ_IMAGE_OK;
}
