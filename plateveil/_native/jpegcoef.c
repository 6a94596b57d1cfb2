/* plateveil's small libjpeg(-turbo) extension: read a JPEG's layout, decode one MCU-aligned region of it at full
 * resolution, and rewrite it with some 8x8 blocks' DCT coefficients replaced and every other block's coefficients
 * kept as they were (jpegtran's way: jpeg_read_coefficients -> edit -> jpeg_write_coefficients; no pixel of an
 * untouched block is decoded or re-quantised). Built by plateveil/_native/build.py with cffi (API mode). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

#define PV_ERRLEN 200

struct pv_err {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char *msg;
  int msglen;
  int warnings;
};

static void pv_error_exit(j_common_ptr cinfo) {
  struct pv_err *e = (struct pv_err *)cinfo->err;
  char buf[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, buf);
  if (e->msg && e->msglen > 0) snprintf(e->msg, (size_t)e->msglen, "libjpeg: %s", buf);
  longjmp(e->jump, 1);
}

static void pv_emit_message(j_common_ptr cinfo, int level) {
  struct pv_err *e = (struct pv_err *)cinfo->err;
  if (level < 0) { /* a warning (corrupt data...): counted, the caller decides */
    if (e->warnings == 0 && e->msg && e->msglen > 0) {
      char buf[JMSG_LENGTH_MAX];
      (*cinfo->err->format_message)(cinfo, buf);
      snprintf(e->msg, (size_t)e->msglen, "libjpeg warning: %s", buf);
    }
    e->warnings++;
  }
}

static void pv_init_err(struct pv_err *e, char *msg, int msglen) {
  jpeg_std_error(&e->pub);
  e->pub.error_exit = pv_error_exit;
  e->pub.emit_message = pv_emit_message;
  e->msg = msg;
  e->msglen = msglen;
  e->warnings = 0;
  if (msg && msglen > 0) msg[0] = 0;
}

/* info[]: 0 width, 1 height, 2 components, 3 jpeg_color_space (J_COLOR_SPACE), 4 progressive, 5 arithmetic,
 * 6 data_precision, 7 max_h, 8 max_v, 9 restart_interval, 10 saw_Adobe, 11 Adobe_transform, 12 saw_JFIF,
 * 13 density_unit, 14 X_density, 15 Y_density, 16.. per component (4 max) 4 ints each: h, v, quant_tbl_no,
 * component_id. quant[4*64]: the quantisation tables in natural order (0 where absent). Returns 0 or -1. */
int pv_info(const unsigned char *data, unsigned long len, int *info, unsigned short *quant, char *err, int errlen) {
  struct jpeg_decompress_struct cinfo;
  struct pv_err jerr;
  int ci, i, t;
  pv_init_err(&jerr, err, errlen);
  cinfo.err = &jerr.pub;
  if (setjmp(jerr.jump)) { jpeg_destroy_decompress(&cinfo); return -1; }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, len);
  jpeg_read_header(&cinfo, TRUE);
  info[0] = (int)cinfo.image_width; info[1] = (int)cinfo.image_height; info[2] = cinfo.num_components;
  info[3] = (int)cinfo.jpeg_color_space; info[4] = cinfo.progressive_mode; info[5] = cinfo.arith_code;
  info[6] = cinfo.data_precision; info[7] = cinfo.max_h_samp_factor; info[8] = cinfo.max_v_samp_factor;
  info[9] = (int)cinfo.restart_interval; info[10] = cinfo.saw_Adobe_marker; info[11] = cinfo.Adobe_transform;
  info[12] = cinfo.saw_JFIF_marker; info[13] = cinfo.density_unit; info[14] = cinfo.X_density;
  info[15] = cinfo.Y_density;
  for (ci = 0; ci < cinfo.num_components && ci < 4; ci++) {
    info[16 + 4 * ci] = cinfo.comp_info[ci].h_samp_factor;
    info[17 + 4 * ci] = cinfo.comp_info[ci].v_samp_factor;
    info[18 + 4 * ci] = cinfo.comp_info[ci].quant_tbl_no;
    info[19 + 4 * ci] = cinfo.comp_info[ci].component_id;
  }
  for (t = 0; t < 4; t++)
    for (i = 0; i < 64; i++)
      quant[64 * t + i] = cinfo.quant_tbl_ptrs[t] ? cinfo.quant_tbl_ptrs[t]->quantval[i] : 0;
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

/* Decode rows [y, y+h) and columns [x, x+w) of the photo at full resolution into out (h*w*3 bytes, BGR; a grey
 * JPEG is given as B=G=R), with libjpeg's defaults (islow IDCT, fancy upsampling), as a full decode gives them.
 * Only the rows down to y+h are entropy-decoded; rows above y are skipped without IDCT and columns outside the
 * iMCU-aligned crop are not reconstructed. Returns 0, 1 (decoded, with libjpeg warnings: corrupt data) or -1. */
int pv_decode_region(const unsigned char *data, unsigned long len, int x, int y, int w, int h, unsigned char *out,
                     char *err, int errlen) {
  struct jpeg_decompress_struct cinfo;
  struct pv_err jerr;
  JSAMPARRAY row = NULL;
  JDIMENSION xoff, cw;
  int r;
  pv_init_err(&jerr, err, errlen);
  cinfo.err = &jerr.pub;
  if (setjmp(jerr.jump)) { jpeg_destroy_decompress(&cinfo); return -1; }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, len);
  jpeg_read_header(&cinfo, TRUE);
  if (x < 0 || y < 0 || w <= 0 || h <= 0 || (JDIMENSION)(x + w) > cinfo.image_width ||
      (JDIMENSION)(y + h) > cinfo.image_height) {
    snprintf(err, (size_t)errlen, "region %d,%d %dx%d outside the %ux%u photo", x, y, w, h, cinfo.image_width,
             cinfo.image_height);
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  cinfo.out_color_space = JCS_EXT_BGR;
  jpeg_start_decompress(&cinfo);
  /* libjpeg-turbo's crop upsamples chroma at the crop's own edges without the neighbouring columns: crop one
   * 32-pixel margin wider on each side (clipped to the photo) so that the columns asked for are exact */
  xoff = (JDIMENSION)(x > 32 ? x - 32 : 0);
  cw = (JDIMENSION)(x + w + 32) < cinfo.output_width ? (JDIMENSION)(x + w + 32) - xoff : cinfo.output_width - xoff;
  if (!(xoff == 0 && cw == cinfo.output_width)) jpeg_crop_scanline(&cinfo, &xoff, &cw);
  row = (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE, cw * 3, 1);
  if (y > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)y);
  for (r = 0; r < h; r++) {
    if (jpeg_read_scanlines(&cinfo, row, 1) != 1) {
      snprintf(err, (size_t)errlen, "libjpeg gave no row %d", y + r);
      jpeg_destroy_decompress(&cinfo);
      return -1;
    }
    memcpy(out + (size_t)r * w * 3, row[0] + (size_t)(x - (int)xoff) * 3, (size_t)w * 3);
  }
  jpeg_abort_decompress(&cinfo);
  r = jerr.warnings ? 1 : 0;
  jpeg_destroy_decompress(&cinfo);
  return r;
}

/* Whether Huffman table t holds a code for every symbol an 8-bit baseline encoder may need. */
static int huff_complete(JHUFF_TBL *t, int is_dc) {
  unsigned char have[256];
  int i, n = 0, r, s;
  if (!t) return 0;
  memset(have, 0, sizeof(have));
  for (i = 1; i <= 16; i++) n += t->bits[i];
  if (n > 256) return 0;
  for (i = 0; i < n; i++) have[t->huffval[i]] = 1;
  if (is_dc) {
    for (s = 0; s <= 11; s++) if (!have[s]) return 0;
    return 1;
  }
  if (!have[0x00] || !have[0xF0]) return 0;
  for (r = 0; r < 16; r++)
    for (s = 1; s <= 10; s++) if (!have[(r << 4) | s]) return 0;
  return 1;
}

/* Rewrite the JPEG with n blocks replaced: block k is component comp[k], block row brow[k], block column bcol[k]
 * (in that component's blocks), coefficients coefs[64*k..] in natural order, quantised. Every other block keeps
 * its coefficients. The frame (size, sampling, quantisation tables), the restart interval and the JFIF density
 * are kept; the source's Huffman tables are reused when each one in use codes every symbol (the standard tables
 * do), else optimal tables are computed for the result. No other marker is written. *out is malloc'ed by libjpeg
 * (free with pv_free). flags[0] = 1 when the Huffman tables were optimised. Returns 0 or -1. */
int pv_replace_blocks(const unsigned char *data, unsigned long len, int n, const int *comp, const int *brow,
                      const int *bcol, const short *coefs, unsigned char **out, unsigned long *outlen, int *flags,
                      char *err, int errlen) {
  struct jpeg_decompress_struct src;
  struct jpeg_compress_struct dst;
  struct pv_err jerr_src, jerr_dst;
  jvirt_barray_ptr *arrays;
  int k, ci, i, complete = 1;
  volatile int dst_created = 0;
  struct { unsigned char *buf; unsigned long size; } res = {NULL, 0};
  pv_init_err(&jerr_src, err, errlen);
  pv_init_err(&jerr_dst, err, errlen);
  src.err = &jerr_src.pub;
  dst.err = &jerr_dst.pub;
  *out = NULL;
  *outlen = 0;
  flags[0] = 0;
  if (setjmp(jerr_src.jump)) goto fail;
  if (setjmp(jerr_dst.jump)) goto fail;
  jpeg_create_decompress(&src);
  jpeg_mem_src(&src, data, len);
  jpeg_read_header(&src, TRUE);
  if (src.progressive_mode || src.arith_code || src.data_precision != 8) {
    snprintf(err, (size_t)errlen, "only 8-bit baseline Huffman JPEGs are rewritten here");
    goto fail;
  }
  arrays = jpeg_read_coefficients(&src);
  for (k = 0; k < n; k++) {
    jpeg_component_info *c;
    JBLOCKARRAY rows;
    ci = comp[k];
    if (ci < 0 || ci >= src.num_components) {
      snprintf(err, (size_t)errlen, "block %d: no component %d", k, ci);
      goto fail;
    }
    c = &src.comp_info[ci];
    if (brow[k] < 0 || bcol[k] < 0 || (JDIMENSION)brow[k] >= c->height_in_blocks ||
        (JDIMENSION)bcol[k] >= c->width_in_blocks) {
      snprintf(err, (size_t)errlen, "block %d: (%d, %d) outside component %d's %ux%u blocks", k, brow[k], bcol[k],
               ci, c->height_in_blocks, c->width_in_blocks);
      goto fail;
    }
    rows = (*src.mem->access_virt_barray)((j_common_ptr)&src, arrays[ci], (JDIMENSION)brow[k], 1, TRUE);
    for (i = 0; i < DCTSIZE2; i++) rows[0][bcol[k]][i] = (JCOEF)coefs[64 * k + i];
  }
  jpeg_create_compress(&dst);
  dst_created = 1;
  jpeg_copy_critical_parameters(&src, &dst);
  dst.restart_interval = src.restart_interval;
  dst.density_unit = src.density_unit;
  dst.X_density = src.X_density;
  dst.Y_density = src.Y_density;
  for (ci = 0; ci < src.num_components; ci++) {
    int dc = src.comp_info[ci].dc_tbl_no, ac = src.comp_info[ci].ac_tbl_no;
    if (!huff_complete(src.dc_huff_tbl_ptrs[dc], 1) || !huff_complete(src.ac_huff_tbl_ptrs[ac], 0)) complete = 0;
  }
  if (complete) {
    for (i = 0; i < NUM_HUFF_TBLS; i++) {
      if (src.dc_huff_tbl_ptrs[i]) {
        if (!dst.dc_huff_tbl_ptrs[i]) dst.dc_huff_tbl_ptrs[i] = jpeg_alloc_huff_table((j_common_ptr)&dst);
        memcpy(dst.dc_huff_tbl_ptrs[i]->bits, src.dc_huff_tbl_ptrs[i]->bits, sizeof(src.dc_huff_tbl_ptrs[i]->bits));
        memcpy(dst.dc_huff_tbl_ptrs[i]->huffval, src.dc_huff_tbl_ptrs[i]->huffval,
               sizeof(src.dc_huff_tbl_ptrs[i]->huffval));
      }
      if (src.ac_huff_tbl_ptrs[i]) {
        if (!dst.ac_huff_tbl_ptrs[i]) dst.ac_huff_tbl_ptrs[i] = jpeg_alloc_huff_table((j_common_ptr)&dst);
        memcpy(dst.ac_huff_tbl_ptrs[i]->bits, src.ac_huff_tbl_ptrs[i]->bits, sizeof(src.ac_huff_tbl_ptrs[i]->bits));
        memcpy(dst.ac_huff_tbl_ptrs[i]->huffval, src.ac_huff_tbl_ptrs[i]->huffval,
               sizeof(src.ac_huff_tbl_ptrs[i]->huffval));
      }
    }
    for (ci = 0; ci < src.num_components; ci++) {
      dst.comp_info[ci].dc_tbl_no = src.comp_info[ci].dc_tbl_no;
      dst.comp_info[ci].ac_tbl_no = src.comp_info[ci].ac_tbl_no;
    }
    dst.optimize_coding = FALSE;
  } else {
    dst.optimize_coding = TRUE;
    flags[0] = 1;
  }
  jpeg_mem_dest(&dst, &res.buf, &res.size);
  jpeg_write_coefficients(&dst, arrays);
  jpeg_finish_compress(&dst);
  jpeg_finish_decompress(&src);
  jpeg_destroy_compress(&dst);
  jpeg_destroy_decompress(&src);
  *out = res.buf;
  *outlen = res.size;
  return 0;
fail:
  if (dst_created) jpeg_destroy_compress(&dst);
  jpeg_destroy_decompress(&src);
  if (res.buf) free(res.buf);
  return -1;
}

void pv_free(unsigned char *p) { free(p); }

/* Every block of component ci (height_in_blocks x width_in_blocks x 64 coefficients, natural order) into out, which
 * holds cap shorts. Returns the number of shorts written, or -1 (for tests and checks). */
long pv_read_blocks(const unsigned char *data, unsigned long len, int ci, short *out, long cap, char *err,
                    int errlen) {
  struct jpeg_decompress_struct src;
  struct pv_err jerr;
  jvirt_barray_ptr *arrays;
  jpeg_component_info *c;
  JDIMENSION r, k;
  long pos = 0;
  int i;
  pv_init_err(&jerr, err, errlen);
  src.err = &jerr.pub;
  if (setjmp(jerr.jump)) { jpeg_destroy_decompress(&src); return -1; }
  jpeg_create_decompress(&src);
  jpeg_mem_src(&src, data, len);
  jpeg_read_header(&src, TRUE);
  arrays = jpeg_read_coefficients(&src);
  if (ci < 0 || ci >= src.num_components) { snprintf(err, (size_t)errlen, "no component %d", ci); goto fail; }
  c = &src.comp_info[ci];
  if ((long)c->height_in_blocks * c->width_in_blocks * DCTSIZE2 > cap) {
    snprintf(err, (size_t)errlen, "buffer too small");
    goto fail;
  }
  for (r = 0; r < c->height_in_blocks; r++) {
    JBLOCKARRAY rows = (*src.mem->access_virt_barray)((j_common_ptr)&src, arrays[ci], r, 1, FALSE);
    for (k = 0; k < c->width_in_blocks; k++)
      for (i = 0; i < DCTSIZE2; i++) out[pos++] = rows[0][k][i];
  }
  jpeg_finish_decompress(&src);
  jpeg_destroy_decompress(&src);
  return pos;
fail:
  jpeg_destroy_decompress(&src);
  return -1;
}
