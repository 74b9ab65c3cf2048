/*
 * mime_downgrade.h - 8-bit to 7-bit MIME conversion for servers without
 *		      8BITMIME (Postfix's disable_mime_output_conversion = no).
 */
#ifndef SLUICE_MIME_DOWNGRADE_H
#define SLUICE_MIME_DOWNGRADE_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/str.h"

/* Multipart nesting we walk; deeper is a parse problem (Postfix's
 * mime_nesting_limit default). */
#define MIME_DOWNGRADE_MAX_DEPTH	100
/* Boundary bytes kept for matching (mime_boundary_length_limit). */
#define MIME_DOWNGRADE_BOUNDARY_MAX	2048

enum mime_downgrade_status {
    MIME_DOWNGRADE_UNCHANGED,		/* nothing to convert: send the input */
    MIME_DOWNGRADE_DONE,		/* out holds the converted content */
    MIME_DOWNGRADE_ERROR,		/* structure not walkable; see why */
};

/* Converts canonical content (CRLF lines, not dot-stuffed). Appends to out
 * only with DONE (out is left as it was otherwise); with ERROR, why gets a
 * short reason. Every 8bit or binary leaf entity becomes quoted-printable;
 * an 8bit/binary multipart or message/rfc822 becomes 7bit. Entities without
 * such an encoding (7bit, none, base64, quoted-printable) and all headers
 * are kept byte for byte. */
enum mime_downgrade_status mime_downgrade(const char *data, size_t len,
					  STR *out, STR *why);

/* Whether any byte has the high bit set. */
bool    mime_downgrade_has_8bit(const char *data, size_t len);

#endif
