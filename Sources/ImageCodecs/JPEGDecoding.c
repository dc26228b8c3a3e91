// JPEG decoding with libjpeg-turbo behind setjmp (see ImageCodecs.h).
#include "ImageCodecs.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    rapq_decoded_image *image;
} rapq_jpeg_errors;

// Fatal errors: keep the library's message and return to the setjmp in rapq_decode_jpeg.
static void rapq_jpeg_error_exit(j_common_ptr info) {
    rapq_jpeg_errors *errors = (rapq_jpeg_errors *)info->err;
    char text[JMSG_LENGTH_MAX];
    (*info->err->format_message)(info, text);
    snprintf(errors->image->message, sizeof errors->image->message, "%s", text);
    longjmp(errors->jump, 1);
}

// Warnings: the library pads a file that ends early with gray and goes on (JWRN_JPEG_EOF); PIL refuses
// such a file ("image file is truncated"), and so do we. Other warnings (extraneous bytes) are ignored,
// as PIL ignores them.
static void rapq_jpeg_emit_message(j_common_ptr info, int level) {
    if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) {
        rapq_jpeg_errors *errors = (rapq_jpeg_errors *)info->err;
        snprintf(errors->image->message, sizeof errors->image->message, "the file ends before the image data do (truncated)");
        longjmp(errors->jump, 1);
    }
}

rapq_image_status rapq_decode_jpeg(const unsigned char *data, size_t size, rapq_decoded_image *image) {
    memset(image, 0, sizeof *image);
    struct jpeg_decompress_struct info;
    rapq_jpeg_errors errors;
    // Locals changed after setjmp and read after a longjmp must be volatile.
    unsigned char *volatile pixels = NULL;
    volatile rapq_image_status failure = RAPQ_IMAGE_DAMAGED;
    info.err = jpeg_std_error(&errors.manager);
    errors.manager.error_exit = rapq_jpeg_error_exit;
    errors.manager.emit_message = rapq_jpeg_emit_message;
    errors.image = image;
    if (setjmp(errors.jump)) {
        jpeg_destroy_decompress(&info);
        free(pixels);
        return failure;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    switch (info.jpeg_color_space) {
    case JCS_GRAYSCALE: info.out_color_space = JCS_GRAYSCALE; break;
    case JCS_YCbCr: case JCS_RGB: info.out_color_space = JCS_RGB; break;
    case JCS_CMYK: case JCS_YCCK: info.out_color_space = JCS_CMYK; break;
    default:
        snprintf(image->message, sizeof image->message, "a JPEG with %d colour components of an unknown colour space", info.num_components);
        failure = RAPQ_IMAGE_UNSUPPORTED;
        longjmp(errors.jump, 1);
    }
    jpeg_start_decompress(&info);
    size_t row = (size_t)info.output_width * (size_t)info.output_components;
    size_t total = row * (size_t)info.output_height;
    if (total == 0 || total > ((size_t)1 << 31)) {
        snprintf(image->message, sizeof image->message, "%u x %u pixels is more than this tool decodes (2 GiB)", info.output_width, info.output_height);
        failure = RAPQ_IMAGE_TOO_LARGE;
        longjmp(errors.jump, 1);
    }
    pixels = malloc(total);
    if (!pixels) {
        snprintf(image->message, sizeof image->message, "no memory for %zu bytes of pixels", total);
        failure = RAPQ_IMAGE_TOO_LARGE;
        longjmp(errors.jump, 1);
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW rows[1] = { pixels + row * info.output_scanline };
        jpeg_read_scanlines(&info, rows, 1);
    }
    jpeg_finish_decompress(&info);
    image->width = (int)info.output_width;
    image->height = (int)info.output_height;
    image->channels = info.output_components;
    image->adobe_inverted = info.out_color_space == JCS_CMYK && info.saw_Adobe_marker;
    image->pixels = pixels;
    jpeg_destroy_decompress(&info);
    return RAPQ_IMAGE_OK;
}

void rapq_image_release(rapq_decoded_image *image) {
    free(image->pixels);
    image->pixels = NULL;
}
