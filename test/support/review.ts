/**
 * AdmissionReviews as the API server sends them for Backups, and one way to post one straight
 * to a gate's webhook path: the one builder every suite uses (unit, hostile clients, guard, chaos).
 */
import { request } from "node:https";

export interface ReviewOptions {
  readonly operation?: string;
  /** The object; null (as the API server sends on DELETE) when absent. */
  readonly object?: unknown;
  readonly oldObject?: unknown;
  readonly username?: string;
  /** Defaults to "velero", Velero's namespace in every suite. */
  readonly namespace?: string;
  /** Defaults to the object's name. */
  readonly name?: string;
  readonly resource?: object;
  readonly dryRun?: boolean;
  readonly uid?: string;
}

export interface ReviewResponse {
  uid: string;
  allowed: boolean;
  patch?: string;
  patchType?: string;
  warnings?: string[];
  status?: { code: number; message: string; reason?: string };
}

let uidSeq = 0;

export function admissionReview(o: ReviewOptions) {
  const meta = (o.object as { metadata?: { name?: string } } | null | undefined)?.metadata;
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: o.uid ?? `review-${process.pid}-${++uidSeq}`,
      kind: { group: "velero.io", version: "v1", kind: "Backup" },
      resource: o.resource ?? { group: "velero.io", version: "v1", resource: "backups" },
      name: o.name ?? meta?.name,
      namespace: o.namespace ?? "velero",
      operation: o.operation ?? "CREATE",
      userInfo: { username: o.username ?? "alice" },
      object: o.object ?? null,
      oldObject: o.oldObject ?? null,
      dryRun: o.dryRun ?? false,
    },
  };
}

export interface Posted {
  /** HTTP status; 0 when the connection failed or timed out. */
  readonly status: number;
  /** The review's response when the body parsed as one. */
  readonly response?: ReviewResponse;
  /** The `Connection` header, e.g. "close" from a replica that does not lead. */
  readonly connection?: string;
}

/**
 * POSTs a review to `gateUrl + path` over HTTPS. The certificate is not checked here: suites
 * that need it checked send their creates through the API server, which checks it.
 */
export function postReview(gateUrl: string, path: string, review: unknown, timeoutMs = 5_000): Promise<Posted> {
  return new Promise((resolve) => {
    const req = request(
      `${gateUrl}${path}`,
      { method: "POST", rejectUnauthorized: false, timeout: timeoutMs, headers: { "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => {
          let response: ReviewResponse | undefined;
          try {
            response = (JSON.parse(text) as { response?: ReviewResponse }).response;
          } catch {
            response = undefined;
          }
          resolve({
            status: res.statusCode ?? 0,
            ...(response ? { response } : {}),
            ...(res.headers.connection ? { connection: res.headers.connection } : {}),
          });
        });
      },
    );
    req.on("error", () => resolve({ status: 0 }));
    req.on("timeout", () => req.destroy());
    req.end(JSON.stringify(review));
  });
}
