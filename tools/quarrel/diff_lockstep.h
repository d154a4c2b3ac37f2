/* Runs one batch through two contexts op for op (`quarrel diff`): side a decodes in a
 * worker thread, side b in the caller's, and each of a's op outputs waits in its callback
 * until b reaches the same (layer, op) and compares the two. Only one side computes at a
 * time, and nothing is copied: memory stays that of the two contexts.
 *
 * Ops are matched by (layer, op name). When the two sides' next ops differ, the one that
 * comes earlier in the forward pass's op order (include/quarrel.h: embd, per layer
 * attn_norm q k v attn attn_out ffn_inp ffn_norm ffn_act ffn_out l_out, result_norm,
 * logits; an op name outside that list counts as earliest) is recorded as unmatched and
 * the other waits for its partner. */
#ifndef QR_TOOLS_DIFF_LOCKSTEP_H
#define QR_TOOLS_DIFF_LOCKSTEP_H

#include "diff_table.h"
#include "quarrel.h"

/* Decodes b on both contexts; comparisons go to t (t->step and t->pos0 set by the caller).
 * Returns 0, or -1 with err naming the side whose decode failed. */
int diff_lockstep_decode(qr_ctx *ca, qr_ctx *cb, int32_t n_layer, const qr_batch *b, diff_table *t, char *err,
                         size_t err_size);

#endif
