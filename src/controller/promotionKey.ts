import { randomBytes } from "node:crypto";
import { createRequester, statusOf, type KubeAccess, type Requester } from "../kube/http.js";
import type { PromotionSealer } from "../core/decision/writes.js";
import type { Logger } from "../logging/logger.js";
import { HmacSealer } from "./promotionSeal.js";

// The per-install key that seals the gate's promotions, kept in one Secret in the gate's own
// namespace: every replica (and the next leader) reads the same key, so a promotion sealed by
// one is recognised by all. The first replica to start makes it; the others read it. This is
// the only Secret the gate reads or writes.

export const PROMOTION_KEY_SECRET = "backup-gate-promotion-key";
const DATA_KEY = "key";

export interface PromotionKeyOptions {
  readonly namespace: string;
  readonly log: Logger;
  /** Try again this often while the key cannot be read or made. */
  readonly retryMs?: number;
}

export class PromotionKey {
  private sealer?: PromotionSealer;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly api: Requester;
  private readonly secrets: string;

  constructor(
    kc: KubeAccess,
    private readonly o: PromotionKeyOptions,
  ) {
    this.api = createRequester(kc);
    this.secrets = `/api/v1/namespaces/${encodeURIComponent(o.namespace)}/secrets`;
  }

  /** The sealer, once the key is loaded; until then the controller promotes nothing. */
  current(): PromotionSealer | undefined {
    return this.sealer;
  }

  /** Loads (or makes) the key; on failure logs why and keeps trying in the background. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.attempt();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async attempt(): Promise<void> {
    try {
      this.sealer = new HmacSealer(await this.readOrCreate());
      this.o.log.info({ secret: `${this.o.namespace}/${PROMOTION_KEY_SECRET}` }, "promotion key loaded");
    } catch (e) {
      this.o.log.error(
        { err: String(e), secret: `${this.o.namespace}/${PROMOTION_KEY_SECRET}` },
        "cannot read or create the promotion key Secret; the queue promotes nothing until it can (RBAC: get and create on this Secret in the gate's namespace)",
      );
      if (this.stopped) return;
      this.timer = setTimeout(() => void this.attempt(), this.o.retryMs ?? 10_000);
      this.timer.unref?.();
    }
  }

  private async readOrCreate(): Promise<Buffer> {
    const { namespace } = this.o;
    const read = async () => keyOf((await this.api.send("GET", `${this.secrets}/${PROMOTION_KEY_SECRET}`)) as Secret);
    try {
      return await read();
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
    try {
      const body = {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: PROMOTION_KEY_SECRET, namespace, labels: { "app.kubernetes.io/name": "backup-gate" } },
        type: "Opaque",
        immutable: true,
        data: { [DATA_KEY]: randomBytes(32).toString("base64") },
      };
      return keyOf((await this.api.send("POST", this.secrets, { body })) as Secret);
    } catch (e) {
      // Another replica made it first: use theirs.
      if (statusOf(e) !== 409) throw e;
      return await read();
    }
  }
}

type Secret = { data?: Record<string, string> } | undefined;

function keyOf(secret: Secret): Buffer {
  const value = secret?.data?.[DATA_KEY];
  if (!value) throw new Error(`Secret ${PROMOTION_KEY_SECRET} has no data.${DATA_KEY}`);
  return Buffer.from(value, "base64");
}
