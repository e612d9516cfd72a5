import { createHmac } from "node:crypto";
import type { PromotionSealer, SealedFields } from "../core/decision/writes.js";

// The gate's record of what it promoted: an HMAC-SHA256, under a per-install key, over the
// backup's uid and its promoted-by and promoted-at annotations, written with the promotion as
// backup-gate.io/promotion-seal. The API server assigns the uid, so a seal copied to another
// backup, or onto a backup created anew, does not match; nor does one whose annotations changed.

const VERSION = "v1";

export class HmacSealer implements PromotionSealer {
  constructor(private readonly key: Buffer) {
    if (key.length < 32) throw new Error(`the promotion key has ${key.length} bytes; at least 32 are needed`);
  }

  seal({ uid, promotedBy, promotedAt }: SealedFields): string {
    const mac = createHmac("sha256", this.key).update([VERSION, uid, promotedBy, promotedAt].join("\n")).digest("base64url");
    return `${VERSION}.${mac}`;
  }
}
