import type { PromotionSealer } from "../../../src/core/decision/writes.js";

/** A stand-in for the gate's key in core tables: deterministic, distinct per sealed field (the real HMAC has its own tests). */
export const testSealer: PromotionSealer = { seal: ({ uid, promotedBy, promotedAt }) => `test-seal:${uid}:${promotedBy}:${promotedAt}` };
