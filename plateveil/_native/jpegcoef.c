/* plateveil's small libjpeg(-turbo) extension: read a JPEG's layout; entropy-decode its coefficients once
 * (pv_open: jpeg_read_coefficients) and then, from those coefficients, decode the photo or a rectangle of it at any
 * of libjpeg's DCT scales (pv_decode), replace some 8x8 blocks' coefficients (pv_set_blocks) and write the stream
 * again with every other block's coefficients kept as they were (pv_write: jpegtran's way, jpeg_write_coefficients;
 * no pixel of an untouched block is decoded or re-quantised). Built by plateveil/_native/build.py with cffi (API
 * mode).
 *
 * Decoding from coefficients: libjpeg has no public call for it, so pv_decode runs an ordinary decompression of the
 * same stream (header, scaling, cropping, skipping, IDCT, upsampling, colour conversion: all libjpeg's own, so the
 * pixels are those of a plain decode) and, once it has started, points its entropy decoder's decode_mcu at a
 * function that copies each MCU's blocks from the coefficients pv_open read instead of Huffman-decoding them again
 * (the entropy decoder is a replaceable module in libjpeg's design, jpegint.h). This is done for single-scan
 * (baseline, every component in the one scan) JPEGs only, where libjpeg asks for every MCU exactly once, in order,
 * also when it skips rows (jpeg_skip_scanlines) or crops columns (jpeg_crop_scanline). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#ifndef LIBJPEG_TURBO_VERSION
#error "plateveil's JPEG extension is written for libjpeg-turbo (its crop/skip calls and entropy decoder module)"
#endif
#if defined(__has_include)
#if __has_include(<jpegint.h>)
#define PV_HAVE_JPEGINT 1
#endif
#endif
#ifdef PV_HAVE_JPEGINT
#include <jpegint.h> /* struct jpeg_entropy_decoder: decoding from coefficients already read (pv_decode) */
#else
/* libjpeg-turbo's entropy decoder module (jpegint.h, not installed by every packaging of it): unchanged from 1.x to
 * 3.x */
struct jpeg_entropy_decoder {
  void (*start_pass)(j_decompress_ptr cinfo);
  boolean (*decode_mcu)(j_decompress_ptr cinfo, JBLOCKROW *MCU_data);
  boolean insufficient_data;
};
#endif

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


/* ---------------------------------------------------------------------------------------------------------------- */
/* A JPEG whose coefficients were read once. */

typedef struct pv_jpeg {
  struct jpeg_decompress_struct src; /* holds the coefficient arrays (and their memory) */
  struct pv_err jerr;
  jvirt_barray_ptr *arrays;
  const unsigned char *data;         /* the caller keeps it alive while the handle lives */
  unsigned long len;
  int ncomp;
  JBLOCKROW *rows[MAX_COMPONENTS];   /* every block row of each component, padded to whole MCUs */
  JDIMENSION nrows[MAX_COMPONENTS];
  int warnings;                      /* libjpeg warnings while reading (corrupt data) */
} pv_jpeg;

void pv_close(pv_jpeg *h) {
  int ci;
  if (!h) return;
  for (ci = 0; ci < MAX_COMPONENTS; ci++) free(h->rows[ci]);
  jpeg_destroy_decompress(&h->src);
  free(h);
}

/* Read the coefficients of a baseline (8-bit, Huffman, sequential) JPEG. NULL on error (err says why). */
pv_jpeg *pv_open(const unsigned char *data, unsigned long len, char *err, int errlen) {
  pv_jpeg *h = (pv_jpeg *)calloc(1, sizeof(pv_jpeg));
  int ci;
  JDIMENSION r;
  if (!h) { snprintf(err, (size_t)errlen, "out of memory"); return NULL; }
  pv_init_err(&h->jerr, err, errlen);
  h->src.err = &h->jerr.pub;
  h->data = data;
  h->len = len;
  if (setjmp(h->jerr.jump)) { pv_close(h); return NULL; }
  jpeg_create_decompress(&h->src);
  jpeg_mem_src(&h->src, data, len);
  jpeg_read_header(&h->src, TRUE);
  if (h->src.progressive_mode || h->src.arith_code || h->src.data_precision != 8) {
    snprintf(err, (size_t)errlen, "only 8-bit baseline Huffman JPEGs are read here");
    pv_close(h);
    return NULL;
  }
  h->arrays = jpeg_read_coefficients(&h->src);
  h->ncomp = h->src.num_components;
  for (ci = 0; ci < h->ncomp; ci++) {
    jpeg_component_info *c = &h->src.comp_info[ci];
    JDIMENSION n = (JDIMENSION)(((c->height_in_blocks + c->v_samp_factor - 1) / c->v_samp_factor) *
                                c->v_samp_factor);
    h->rows[ci] = (JBLOCKROW *)malloc(sizeof(JBLOCKROW) * (n ? n : 1));
    if (!h->rows[ci]) { snprintf(err, (size_t)errlen, "out of memory"); pv_close(h); return NULL; }
    h->nrows[ci] = n;
    /* the arrays are whole in memory (libjpeg-turbo has no backing store): each row's address is stable */
    for (r = 0; r < n; r++)
      h->rows[ci][r] = (*h->src.mem->access_virt_barray)((j_common_ptr)&h->src, h->arrays[ci], r, 1, TRUE)[0];
  }
  h->warnings = h->jerr.warnings;
  return h;
}

int pv_warnings(pv_jpeg *h) { return h->warnings; }

/* The entropy decoder that copies blocks from a pv_jpeg. */
struct pv_feed {
  struct jpeg_entropy_decoder pub;
  pv_jpeg *h;
  JDIMENSION next; /* MCUs handed out so far, in scan order */
};

static void pv_feed_start(j_decompress_ptr cinfo) { (void)cinfo; }

static boolean pv_feed_mcu(j_decompress_ptr cinfo, JBLOCKROW *MCU_data) {
  struct pv_feed *f = (struct pv_feed *)cinfo->entropy;
  JDIMENSION k = f->next++, mrow, mcol;
  int ci, blkn = 0, yy, xx;
  if (MCU_data == NULL) return TRUE; /* jpeg_skip_scanlines: the MCU is not needed */
  if (cinfo->comps_in_scan == 1) { /* non-interleaved: one block per MCU */
    jpeg_component_info *c = cinfo->cur_comp_info[0];
    mrow = k / c->width_in_blocks;
    mcol = k % c->width_in_blocks;
    memcpy(MCU_data[0], f->h->rows[c->component_index][mrow] + mcol, sizeof(JBLOCK));
    return TRUE;
  }
  mrow = k / cinfo->MCUs_per_row;
  mcol = k % cinfo->MCUs_per_row;
  for (ci = 0; ci < cinfo->comps_in_scan; ci++) {
    jpeg_component_info *c = cinfo->cur_comp_info[ci];
    JBLOCKROW *rows = f->h->rows[c->component_index] + mrow * (JDIMENSION)c->MCU_height;
    for (yy = 0; yy < c->MCU_height; yy++)
      for (xx = 0; xx < c->MCU_width; xx++)
        memcpy(MCU_data[blkn++], rows[yy] + mcol * (JDIMENSION)c->MCU_width + (JDIMENSION)xx, sizeof(JBLOCK));
  }
  return TRUE;
}

/* Decode rows [y, y+hh) and columns [x, x+w) of the photo scaled by num/8 in the DCT (num 1..16: libjpeg's
 * scale_num/scale_denom; 8 = full resolution) into out (hh*w*3 bytes, BGR; a grey JPEG as B=G=R), with libjpeg's
 * defaults (islow IDCT, fancy upsampling): the pixels a plain decode at that scale gives there. The blocks come
 * from h (no entropy decoding), as last set by pv_set_blocks. Rows above y are skipped without IDCT and columns
 * outside the iMCU-aligned crop are not reconstructed. Returns 0 or -1. */
int pv_decode(pv_jpeg *h, int num, int x, int y, int w, int hh, unsigned char *out, char *err, int errlen) {
  struct jpeg_decompress_struct cinfo;
  struct pv_err jerr;
  struct pv_feed feed;
  JSAMPARRAY row = NULL;
  JDIMENSION xoff, cw;
  int r, margin;
  pv_init_err(&jerr, err, errlen);
  cinfo.err = &jerr.pub;
  if (setjmp(jerr.jump)) { jpeg_destroy_decompress(&cinfo); return -1; }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, h->data, h->len);
  jpeg_read_header(&cinfo, TRUE);
  if (num < 1 || num > 16) {
    snprintf(err, (size_t)errlen, "scale %d/8 not in 1/8..16/8", num);
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  cinfo.scale_num = (unsigned int)num;
  cinfo.scale_denom = 8;
  cinfo.out_color_space = JCS_EXT_BGR;
  jpeg_calc_output_dimensions(&cinfo);
  if (x < 0 || y < 0 || w <= 0 || hh <= 0 || (JDIMENSION)(x + w) > cinfo.output_width ||
      (JDIMENSION)(y + hh) > cinfo.output_height) {
    snprintf(err, (size_t)errlen, "region %d,%d %dx%d outside the %ux%u photo (scale %d/8)", x, y, w, hh,
             cinfo.output_width, cinfo.output_height, num);
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  jpeg_start_decompress(&cinfo);
  if (cinfo.comps_in_scan == cinfo.num_components && cinfo.num_components == h->ncomp) {
    /* one scan (baseline): from here on, MCUs come from h's coefficients; else libjpeg has already read every
     * scan of the file in jpeg_start_decompress and decodes from its own buffer */
    feed.pub.start_pass = pv_feed_start;
    feed.pub.decode_mcu = pv_feed_mcu;
    feed.pub.insufficient_data = FALSE;
    feed.h = h;
    feed.next = 0;
    cinfo.entropy = &feed.pub;
  }
  /* libjpeg-turbo's crop upsamples chroma at the crop's own edges without the neighbouring columns: crop one
   * margin (32 output pixels at full scale) wider on each side, clipped to the photo, so that the columns asked for
   * are exact */
  margin = (32 * num + 7) / 8;
  xoff = (JDIMENSION)(x > margin ? x - margin : 0);
  cw = (JDIMENSION)(x + w + margin) < cinfo.output_width ? (JDIMENSION)(x + w + margin) - xoff
                                                         : cinfo.output_width - xoff;
  if (!(xoff == 0 && cw == cinfo.output_width)) jpeg_crop_scanline(&cinfo, &xoff, &cw);
  if (xoff == 0 && cw == (JDIMENSION)w && x == 0) {
    /* whole rows: straight into out */
    if (y > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)y);
    for (r = 0; r < hh;) {
      JSAMPROW rows[16];
      int k, n = hh - r < 16 ? hh - r : 16;
      for (k = 0; k < n; k++) rows[k] = out + (size_t)(r + k) * w * 3;
      k = (int)jpeg_read_scanlines(&cinfo, rows, (JDIMENSION)n);
      if (k <= 0) break;
      r += k;
    }
    if (r < hh) {
      snprintf(err, (size_t)errlen, "libjpeg gave no row %d", y + r);
      jpeg_destroy_decompress(&cinfo);
      return -1;
    }
  } else {
    row = (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE, cw * 3, 1);
    if (y > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)y);
    for (r = 0; r < hh; r++) {
      if (jpeg_read_scanlines(&cinfo, row, 1) != 1) {
        snprintf(err, (size_t)errlen, "libjpeg gave no row %d", y + r);
        jpeg_destroy_decompress(&cinfo);
        return -1;
      }
      memcpy(out + (size_t)r * w * 3, row[0] + (size_t)(x - (int)xoff) * 3, (size_t)w * 3);
    }
  }
  jpeg_abort_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

/* Replace n blocks of h: block k is component comp[k], block row brow[k], block column bcol[k] (in that
 * component's blocks), coefficients coefs[64*k..] in natural order, quantised. Returns 0 or -1. */
int pv_set_blocks(pv_jpeg *h, int n, const int *comp, const int *brow, const int *bcol, const short *coefs,
                  char *err, int errlen) {
  int k, i;
  for (k = 0; k < n; k++) {
    jpeg_component_info *c;
    int ci = comp[k];
    if (ci < 0 || ci >= h->ncomp) {
      snprintf(err, (size_t)errlen, "block %d: no component %d", k, ci);
      return -1;
    }
    c = &h->src.comp_info[ci];
    if (brow[k] < 0 || bcol[k] < 0 || (JDIMENSION)brow[k] >= c->height_in_blocks ||
        (JDIMENSION)bcol[k] >= c->width_in_blocks) {
      snprintf(err, (size_t)errlen, "block %d: (%d, %d) outside component %d's %ux%u blocks", k, brow[k], bcol[k],
               ci, c->height_in_blocks, c->width_in_blocks);
      return -1;
    }
  }
  for (k = 0; k < n; k++)
    for (i = 0; i < DCTSIZE2; i++) h->rows[comp[k]][brow[k]][bcol[k]][i] = (JCOEF)coefs[64 * k + i];
  return 0;
}

/* Write h's coefficients as a JPEG. The frame (size, sampling, quantisation tables), the restart interval and the
 * JFIF density are kept; the source's Huffman tables are reused when each one in use codes every symbol (the
 * standard tables do), else optimal tables are computed (libjpeg-turbo's encoder does not check that a table codes
 * every symbol it meets: reusing an optimised table blindly could corrupt the output). No other marker is written.
 * *out is malloc'ed by libjpeg (free with pv_free). flags[0] = 1 when the Huffman tables were optimised. Returns 0
 * or -1. */
int pv_write(pv_jpeg *h, unsigned char **out, unsigned long *outlen, int *flags, char *err, int errlen) {
  struct jpeg_compress_struct dst;
  struct pv_err jerr;
  struct jpeg_decompress_struct *src = &h->src;
  int ci, i, complete = 1;
  struct { unsigned char *buf; unsigned long size; } res = {NULL, 0};
  pv_init_err(&jerr, err, errlen);
  dst.err = &jerr.pub;
  *out = NULL;
  *outlen = 0;
  flags[0] = 0;
  h->jerr.msg = err; /* the source's memory manager is used too (its arrays) */
  h->jerr.msglen = errlen;
  jpeg_create_compress(&dst);
  if (setjmp(h->jerr.jump)) goto fail;
  if (setjmp(jerr.jump)) goto fail;
  jpeg_copy_critical_parameters(src, &dst);
  dst.restart_interval = src->restart_interval;
  dst.density_unit = src->density_unit;
  dst.X_density = src->X_density;
  dst.Y_density = src->Y_density;
  for (ci = 0; ci < src->num_components; ci++) {
    int dc = src->comp_info[ci].dc_tbl_no, ac = src->comp_info[ci].ac_tbl_no;
    if (!huff_complete(src->dc_huff_tbl_ptrs[dc], 1) || !huff_complete(src->ac_huff_tbl_ptrs[ac], 0)) complete = 0;
  }
  if (complete) {
    for (i = 0; i < NUM_HUFF_TBLS; i++) {
      if (src->dc_huff_tbl_ptrs[i]) {
        if (!dst.dc_huff_tbl_ptrs[i]) dst.dc_huff_tbl_ptrs[i] = jpeg_alloc_huff_table((j_common_ptr)&dst);
        memcpy(dst.dc_huff_tbl_ptrs[i]->bits, src->dc_huff_tbl_ptrs[i]->bits, sizeof(src->dc_huff_tbl_ptrs[i]->bits));
        memcpy(dst.dc_huff_tbl_ptrs[i]->huffval, src->dc_huff_tbl_ptrs[i]->huffval,
               sizeof(src->dc_huff_tbl_ptrs[i]->huffval));
      }
      if (src->ac_huff_tbl_ptrs[i]) {
        if (!dst.ac_huff_tbl_ptrs[i]) dst.ac_huff_tbl_ptrs[i] = jpeg_alloc_huff_table((j_common_ptr)&dst);
        memcpy(dst.ac_huff_tbl_ptrs[i]->bits, src->ac_huff_tbl_ptrs[i]->bits, sizeof(src->ac_huff_tbl_ptrs[i]->bits));
        memcpy(dst.ac_huff_tbl_ptrs[i]->huffval, src->ac_huff_tbl_ptrs[i]->huffval,
               sizeof(src->ac_huff_tbl_ptrs[i]->huffval));
      }
    }
    for (ci = 0; ci < src->num_components; ci++) {
      dst.comp_info[ci].dc_tbl_no = src->comp_info[ci].dc_tbl_no;
      dst.comp_info[ci].ac_tbl_no = src->comp_info[ci].ac_tbl_no;
    }
    dst.optimize_coding = FALSE;
  } else {
    dst.optimize_coding = TRUE;
    flags[0] = 1;
  }
  jpeg_mem_dest(&dst, &res.buf, &res.size);
  jpeg_write_coefficients(&dst, h->arrays);
  jpeg_finish_compress(&dst);
  jpeg_destroy_compress(&dst);
  *out = res.buf;
  *outlen = res.size;
  return 0;
fail:
  jpeg_destroy_compress(&dst);
  if (res.buf) free(res.buf);
  return -1;
}

void pv_free(unsigned char *p) { free(p); }

/* Every block of component ci (height_in_blocks x width_in_blocks x 64 coefficients, natural order) into out, which
 * holds cap shorts. Returns the number of shorts written, or -1 (for tests and checks). */
long pv_get_blocks(pv_jpeg *h, int ci, short *out, long cap, char *err, int errlen) {
  jpeg_component_info *c;
  JDIMENSION r, k;
  long pos = 0;
  int i;
  if (ci < 0 || ci >= h->ncomp) { snprintf(err, (size_t)errlen, "no component %d", ci); return -1; }
  c = &h->src.comp_info[ci];
  if ((long)c->height_in_blocks * c->width_in_blocks * DCTSIZE2 > cap) {
    snprintf(err, (size_t)errlen, "buffer too small");
    return -1;
  }
  for (r = 0; r < c->height_in_blocks; r++)
    for (k = 0; k < c->width_in_blocks; k++)
      for (i = 0; i < DCTSIZE2; i++) out[pos++] = h->rows[ci][r][k][i];
  return pos;
}
